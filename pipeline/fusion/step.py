"""The fusion node's logic: face, speech, voice and text in; ``affect.frame`` and ``affect.utterance`` out.

Frames. Every ``video.frame`` gives one ``affect.frame`` (same ``frame_index`` and ``t_capture``),
published in capture order and never twice:

- when that frame's ``face.tracks`` arrives (the usual case: latency is the face node's);
- or, if it has not come ``fusion.frame_wait_s`` after the video frame, without waiting further;
  the newest face estimate is then used if its capture time is within ``fusion.face_timeout_s``
  of the frame's (never older), else the face is missing and the notes say why;
- at once, when the face node is not producing: nothing from it for ``face_timeout_s`` (its
  values could not be used anyway), or ``system.health`` says it is down, or it is disabled.

The face's reasons tell the cases apart: "no face in view" (face.tracks with ``faces: []``),
"face node down: no face.tracks for N s", "face.tracks late" (they come, but too old: the face
node is slow), "no face.tracks yet" (starting), "no camera"/"disabled" (config). A face.tracks
whose video frame never reached fusion (a latest-only queue dropped it) is published on its own.

No video at all (``sources.video = none``): there are no frames to be "per", so no
``affect.frame`` is published; ``affect.utterance`` still is. Video configured but its source down
or its host unreachable (``system.health``): frames with ``frame_index`` -1 go out at most once a
frame period, stamped with the time they are made, the face missing and why (``_no_video_frame``).

Utterances. Two ``affect.utterance`` records per utterance, for the same ``utterance_id``. Stage
``acoustic``: once its end is known (speech.vad end, or the final audio piece, transcript or
voice.affect) and its voice.affect has come, or ``fusion.acoustic_wait_s`` after the end; face,
voice and speaker, no words. Stage ``final``: when its final transcript, voice.affect and
text.affect have all come; or ``fusion.utterance_wait_s`` after the end with what did come, the rest
named in ``missing`` with the reason ("ASR failed or slow", "voice node down", ...). What the
config leaves out (no microphone, a node disabled) is not waited for. An utterance decided before its
first record went out (the end of the input, or lossless fusion's watermark) gets only the final one.

Liveness is judged from arrival times on the step's clock (injected, so tests drive time), and
from ``system.health`` when the step receives it. Work is due both on messages and on ``idle``:
``run_step`` only calls ``idle`` when no message came for its poll period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from moodwire.engines.engine import Stopwatch
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.config import Config, FusionConfig
from moodwire.pipeline.core.flow import END
from moodwire.pipeline.core.messages import (AffectUtterance, FaceTracks, Message, SpeechEvent, SystemHealth,
                                             TextAffect, Transcript, UtteranceAudio, VideoFrame, VoiceAffect)
from moodwire.pipeline.core.node import Outputs
from moodwire.pipeline.fusion.frame import FrameInputs, LabelHold, PersonFilters, Slot, Smoother, build_frame
from moodwire.pipeline.fusion.model import Estimate, FusionModel
from moodwire.pipeline.fusion.state import FaceState, Liveness, SpeechState, Utterance
from moodwire.pipeline.fusion.utterance import ACOUSTIC, Context, build_utterance

NS = 1_000_000_000
NO_VIDEO_FRAME = -1  # the frame_index of an affect.frame sent while the video source is down or unreachable
MAX_PENDING = 64  # video frames waiting for their face.tracks (about 2 s at 30 fps)
INPUTS = ("video.frame", "face.tracks", "speech.vad", "speech.audio", "speech.transcript", "voice.affect",
          "text.affect", "system.health")


@dataclass(frozen=True)
class Absence:
    """What the config leaves out of this run: modality -> why, and whether a transcript can come."""

    reasons: dict[str, str]
    transcripts: bool

    @classmethod
    def from_config(cls, config: Config) -> "Absence":
        s, n = config.sources, config.nodes
        no_speech = ("no microphone (sources.audio = none)" if s.audio == "none"
                     else "" if n.vad else "VAD disabled (nodes.vad = false)")
        no_asr = no_speech or ("" if n.asr else "ASR disabled (nodes.asr = false)")
        reasons = {
            "face": ("no camera (sources.video = none)" if s.video == "none"
                     else "" if n.face else "face node disabled (nodes.face = false)"),
            "voice": no_speech or ("" if n.voice else "voice node disabled (nodes.voice = false)"),
            "text": no_asr or ("" if n.text else "text node disabled (nodes.text = false)"),
        }
        return cls({m: why for m, why in reasons.items() if why}, transcripts=not no_asr)


@dataclass
class _Pending:
    frame_index: int
    t_capture: int
    arrived: int


class FusionStep:
    inputs = INPUTS

    def __init__(self, model: FusionModel, config: FusionConfig | None = None, absence: Absence | None = None,
                 clock: Callable[[], int] = now_ns) -> None:
        self.model = model
        self.config = config or FusionConfig()
        self.absence = absence or Absence({}, transcripts=True)
        self.clock = clock
        self.utterance_wait_ns = int(self.config.utterance_wait_s * NS)
        self.acoustic_wait_ns = int(self.config.acoustic_wait_s * NS)
        self.faces, self.speech, self.live = FaceState(), SpeechState(), Liveness()
        self.filters = PersonFilters(Smoother(self.config.smoothing_tau_s), LabelHold(self.config.label_hold_s))
        self.pending: dict[int, _Pending] = {}  # by capture time, oldest first
        self.last_published = -1  # capture time of the newest affect.frame
        self.last_no_video = 0  # when the newest frame without video went out (_no_video_frame)
        self.frame_period_ns = NS // 30
        self.watch = Stopwatch()  # milliseconds of the last affect.frame built

    def fresh(self) -> "FusionStep":
        """For another stream: the same model, its own faces, utterances, speakers and pending frames."""
        return FusionStep(self.model, self.config, self.absence, self.clock)

    # ------------------------------------------------------------ step interface

    def process(self, topic: str, msg: Message) -> Outputs:
        now = self.clock()
        self.live.seen(topic, now)
        out = list(self._handle(msg, now))
        out.extend(self.idle(now))
        return out

    def idle(self, now: int) -> Outputs:
        out = [self._publish_frame(p.frame_index, p.t_capture, now) for p in self._expired(now)]
        out.extend(self._no_video_frame(now))
        out.extend(("affect.utterance", self._acoustic(u, now)) for u in self._acoustic_ready(now))
        out.extend(("affect.utterance", self._utterance(u, now)) for u in self._ready(now))
        self.speech.prune(now)
        return out

    def advance(self, watermark: int) -> Outputs:
        """Live mode: at the end of the input (pipeline/core/flow.py, every producer has said ``END``) every
        frame still waiting and every ended utterance goes out at once, with what came."""
        return self.flush(self.clock()) if watermark >= END else []

    def flush(self, now: int) -> list[tuple[str, Message]]:
        """Publish every pending frame and every utterance whose end is known, now."""
        out = [self._publish_frame(p.frame_index, p.t_capture, now) for p in list(self.pending.values())]
        return out + self.decide_utterances(END, now)

    def decide_utterances(self, before: int, now: int) -> list[tuple[str, Message]]:
        """Publish the utterances that ended before ``before`` (every result about them is in), complete or
        not, in the order they started."""
        due = sorted((u for u in self.speech.open.values() if u.ended_at is not None and u.t_end < before),
                     key=lambda u: u.utterance_id)
        return [("affect.utterance", self._utterance(u, now)) for u in due]

    def _handle(self, msg: Message, now: int) -> Outputs:
        if isinstance(msg, VideoFrame):
            return self._on_video(msg, now)
        if isinstance(msg, FaceTracks):
            return self._on_face(msg, now)
        if isinstance(msg, SpeechEvent):
            self.speech.on_vad(msg, now)
        elif isinstance(msg, UtteranceAudio):
            self.speech.on_audio(msg, now)
        elif isinstance(msg, Transcript):
            self.speech.on_transcript(msg, now)
        elif isinstance(msg, VoiceAffect):
            self.speech.on_voice(msg, now)
        elif isinstance(msg, TextAffect):
            self.speech.on_text(msg, now)
        elif isinstance(msg, SystemHealth):
            self.live.on_health(msg, now)
        return ()

    # ------------------------------------------------------------ frames

    def _on_video(self, msg: VideoFrame, now: int) -> Outputs:
        if msg.fps_nominal > 0:
            self.frame_period_ns = int(NS / msg.fps_nominal)
        if msg.t_capture <= self.last_published:
            return  # its face.tracks came first, or it is older than a frame already out
        if self._face_producing(now) and self.config.frame_wait_s > 0:
            self.pending[msg.t_capture] = _Pending(msg.frame_index, msg.t_capture, now)
            while len(self.pending) > MAX_PENDING:
                oldest = next(iter(self.pending.values()))
                yield self._publish_frame(oldest.frame_index, oldest.t_capture, now)
            return
        yield self._publish_frame(msg.frame_index, msg.t_capture, now)

    def _on_face(self, msg: FaceTracks, now: int) -> Outputs:
        self.faces.update(msg)
        for p in [p for t, p in self.pending.items() if t <= msg.t_capture]:
            yield self._publish_frame(p.frame_index, p.t_capture, now)  # earlier ones: the face node skipped them
        if msg.t_capture > self.last_published:
            yield self._publish_frame(msg.frame_index, msg.t_capture, now)

    def _face_producing(self, now: int) -> bool:
        silent = self.live.silent_for("face.tracks", now)
        return ("face" not in self.absence.reasons and silent is not None
                and silent <= self.config.face_timeout_s and not self.live.node_down("face", now))

    def _expired(self, now: int) -> list[_Pending]:
        wait_ns = self.config.frame_wait_s * NS
        if not self._face_producing(now):
            return list(self.pending.values())
        out = []
        for p in self.pending.values():
            if now - p.arrived < wait_ns:
                break
            out.append(p)
        return out

    def _publish_frame(self, frame_index: int, t_capture: int, now: int) -> tuple[str, Message]:
        for t in [t for t in self.pending if t <= t_capture]:
            del self.pending[t]
        self.last_published = t_capture
        with self.watch:
            faces, face_reason = self._faces_for(t_capture, now)
            voice, text = self.speech.voice, self.speech.text
            inputs = FrameInputs(
                frame_index, t_capture, faces, face_reason,
                self._speech_slot("voice", voice, t_capture, now), self._speech_slot("text", text, t_capture, now),
                {"voice": self.speech.speakers.get(voice.utterance_id) if voice else None,
                 "text": self.speech.speakers.get(text.utterance_id) if text else None})
            frame = build_frame(inputs, self.model, self.filters, self.clock)
        return "affect.frame", frame

    def _no_video_frame(self, now: int) -> Outputs:
        """While ``system.health`` says the video source is down or unreachable (not finished), the stream
        goes on: a frame with ``frame_index`` -1, stamped now, at most one per frame period, whose face
        reason says what is wrong; voice and text are used as they would be for a frame."""
        down = self.live.node_down("video_source", now)
        if "face" in self.absence.reasons or down in ("", "finished"):
            return
        latest = max(self.live.last.get("video.frame", 0), self.last_no_video)
        if now - latest < self.frame_period_ns:
            return
        self.last_no_video = now
        silent = self.live.silent_for("video.frame", now)
        since = "" if silent is None else f" for {silent:.1f} s"
        inputs = FrameInputs(NO_VIDEO_FRAME, now, {}, f"no video.frame{since}: video_source is {down}",
                             self._speech_slot("voice", self.speech.voice, now, now),
                             self._speech_slot("text", self.speech.text, now, now))
        yield "affect.frame", build_frame(inputs, self.model, self.filters, self.clock)

    def _faces_for(self, t_capture: int, now: int) -> tuple[dict[int, Estimate], str]:
        """The face estimates to use for a frame captured at ``t_capture``, or why there are none."""
        if "face" in self.absence.reasons:
            return {}, self.absence.reasons["face"]
        latest, down = self.faces.latest, self.live.node_down("face", now)
        silent = self.live.silent_for("face.tracks", now)
        if latest is None:
            return {}, f"face node down ({down})" if down else "no face.tracks yet: face node starting or down"
        age_ns = t_capture - latest.t_capture
        if abs(age_ns) > self.config.face_timeout_s * NS:
            if down or silent is None or silent > self.config.face_timeout_s:
                return {}, f"face node down: no face.tracks for {silent:.1f} s" + (f" ({down})" if down else "")
            if age_ns < 0:  # the newest face.tracks is ahead of this frame: fusion itself is behind
                return {}, f"face.tracks {-age_ns / 1e6:.0f} ms newer than this frame (fusion behind)"
            return {}, f"face.tracks late: the newest is {age_ns / 1e6:.0f} ms older than this frame (face node slow)"
        if not latest.valid:
            return {}, "face.tracks not valid (its video frame was not)"
        if not latest.tracks:
            return {}, "no face in view"
        if age_ns == 0:
            return latest.tracks, ""
        note = (f"face.tracks of this frame not in: using frame {latest.frame_index}, "
                f"{age_ns / 1e6:+.0f} ms from this one")
        return {tid: replace(est, note=note) for tid, est in latest.tracks.items()}, ""

    def _speech_slot(self, modality: str, est: Estimate | None, t_capture: int, now: int) -> Slot:
        """The newest voice or text estimate, decayed with its age; or why there is none."""
        if modality in self.absence.reasons:
            return self.absence.reasons[modality]
        age_s = (t_capture - est.t_capture) / NS if est is not None else math.inf
        if age_s <= self.config.speech_hold_s:
            factor = math.exp(-max(age_s, 0.0) / self.config.speech_decay_s)
            note = f"from the utterance that ended {age_s:.1f} s ago: confidence x{factor:.2f}"
            return est.decayed(factor, note)
        down = self.live.node_down(modality, now) or (self.live.node_down("asr", now) if modality == "text" else "")
        if down:
            return f"{modality} path down ({down})"
        failed_at, failure = self.speech.failed.get(modality, (None, ""))
        if failed_at is not None and (t_capture - failed_at) / NS <= self.config.speech_hold_s:
            return f"the last utterance gave none: {failure}"
        why = "silence: no speech heard yet" if est is None else \
            f"silence: the last utterance ended {age_s:.1f} s ago (hold {self.config.speech_hold_s:g} s)"
        return why + ("; an utterance is in progress: its estimate comes at its end" if self.speech.in_progress() else "")

    # ------------------------------------------------------------ utterances

    def _ready(self, now: int) -> list[Utterance]:
        ended = [u for u in self.speech.open.values() if u.ended_at is not None]
        return sorted((u for u in ended if self._complete(u, now) or now - u.ended_at >= self.utterance_wait_ns),
                      key=lambda u: u.utterance_id)

    def _complete(self, utt: Utterance, now: int) -> bool:
        gone = self.absence.reasons
        voice = self._voice_settled(utt, now)
        text = utt.text is not None or "text" in gone or bool(self.live.node_down("text", now))
        words = utt.transcript is not None or not self.absence.transcripts or bool(self.live.node_down("asr", now))
        return voice and text and words

    def _voice_settled(self, utt: Utterance, now: int) -> bool:
        """Its voice estimate is in, or is not coming (voice absent from the config, or its node down)."""
        return utt.voice is not None or "voice" in self.absence.reasons or bool(self.live.node_down("voice", now))

    def _acoustic_ready(self, now: int) -> list[Utterance]:
        """Ended utterances without their first record whose voice is settled, or has been waited for
        ``fusion.acoustic_wait_s``."""
        return sorted((u for u in self.speech.open.values() if u.ended_at is not None and not u.acoustic_sent
                       and (self._voice_settled(u, now) or now - u.ended_at >= self.acoustic_wait_ns)),
                      key=lambda u: u.utterance_id)

    def _acoustic(self, utt: Utterance, now: int) -> AffectUtterance:
        utt.acoustic_sent = True
        return build_utterance(utt, self.faces, self.model, self._context(utt, now), ACOUSTIC)

    def _utterance(self, utt: Utterance, now: int) -> AffectUtterance:
        msg = build_utterance(utt, self.faces, self.model, self._context(utt, now))
        self.speech.finish(utt, msg.speaker_track_id)
        return msg

    def _context(self, utt: Utterance, now: int) -> Context:
        return Context(self.absence.reasons, lambda name: self.live.node_down(name, now),
                       (now - (utt.ended_at or now)) / NS, self.frame_period_ns,
                       self.config.speaker_min_score, self.config.speaker_margin)


def build_fusion_step(config: Config | None = None) -> FusionStep:
    """The step with the fusion model loaded (as ``moodwire export fusion`` made it) and warmed up."""
    from moodwire.pipeline.fusion.model import build_fusion_model

    config = config or Config()
    return FusionStep(build_fusion_model(config), config.fusion, Absence.from_config(config))
