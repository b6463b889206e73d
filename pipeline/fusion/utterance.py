"""One ``affect.utterance``: the words, who said them, and face, voice and text fused over the span.

Speaker. ``attribute_speaker`` (pipeline/fusion/speaker.py) compares each face's mouth
openness (its blendshape rule) with the utterance's audio envelope (20 ms RMS frames of the
speech.audio pieces); its answer, reason and scores are published as they are.

Face over the span. The face estimates of the speaker's track with capture times inside the
utterance are pooled: mean probabilities, mean valence/arousal, and mean confidence times the
share of the span the face was seen (samples times the frame period, over the span's length),
so a face glimpsed for a moment counts little. Speaker unknown: the only face seen during the
span is used (most uses have one person in front of the camera; the reason says the speaker
was not confirmed); with several faces and no attributed speaker, no face is used, since
pooling a listener's face into the speaker's utterance would misreport both.

Two records. At the VAD's end, as soon as the voice estimate is in (or ``fusion.acoustic_wait_s`` has
passed), a record of stage ``acoustic``: face, voice and speaker, no words. Once the transcript and the
text estimate are in (or ``fusion.utterance_wait_s``), the ``final`` one with everything, for the same
``utterance_id``.

``t_capture`` is the utterance's ``t_end``, so ``t_publish - t_capture`` is the delay after the
end of speech. A modality with nothing to give is named in ``missing``, with the reason in
``notes`` and in its ``ModalityInput.reason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from moodwire.pipeline.core.messages import AffectUtterance
from moodwire.pipeline.fusion.frame import Slot, modality_input
from moodwire.pipeline.fusion.model import Estimate, FusionBatch, FusionModel
from moodwire.pipeline.fusion.speaker import attribute_speaker
from moodwire.pipeline.fusion.state import FaceSample, FaceState, Utterance, text_estimate, voice_estimate

NS = 1_000_000_000
ACOUSTIC, FINAL = "acoustic", "final"  # AffectUtterance.stage
WORDS_LATER = "the words come with the final record (stage final)"  # text's reason in an acoustic record
MOUTH_MARGIN_S = 0.5  # mouth history handed to the speaker attribution beyond each end of the span


@dataclass(frozen=True)
class Speaker:
    track_id: int | None
    reason: str
    scores: dict[str, float]


@dataclass(frozen=True)
class Context:
    """What the step knows beyond the utterance: config-given absences, nodes system.health says are
    down, how long it waited, and the settings of speaker attribution."""

    static: dict[str, str]  # modality -> why it cannot exist in this run
    down: Callable[[str], str]  # node name -> "" or its state when system.health says it is not running
    waited_s: float
    frame_period_ns: int
    min_score: float
    margin: float


def build_utterance(utt: Utterance, faces: FaceState, model: FusionModel, ctx: Context,
                    stage: str = FINAL) -> AffectUtterance:
    """The utterance's record: ``FINAL`` with everything that came, or ``ACOUSTIC`` (at the VAD's end) from the
    face, the voice and the speaker alone, the words left to the final record."""
    speaker = attribute(utt, faces, ctx)
    slots: dict[str, Slot] = {"face": face_slot(utt, faces, speaker, ctx), "voice": voice_slot(utt, ctx),
                              "text": text_slot(utt, ctx) if stage == FINAL else WORDS_LATER}
    result = model.fuse(FusionBatch([tuple(s if isinstance(s, Estimate) else None
                                           for s in (slots[m] for m in model.modalities))]))
    inputs = [modality_input(m, slots[m], float(result.weights[0, j]), utt.t_end)
              for j, m in enumerate(model.modalities)]
    missing = [x.modality for x in inputs if not x.present]
    text, words = _words(utt) if stage == FINAL else ("", [])
    return AffectUtterance(
        utterance_id=utt.utterance_id, t_start=utt.t_start, t_end=utt.t_end, t_speech_end=utt.t_speech_end,
        stage=stage, t_capture=utt.t_end,
        valid=len(missing) < len(inputs), text=text, words=words, labels=list(model.labels),
        probs=[float(p) for p in result.probs[0]], valence=float(result.va[0, 0]), arousal=float(result.va[0, 1]),
        confidence=float(result.confidence[0]), inputs=inputs, missing=missing,
        notes={x.modality: x.reason for x in inputs if not x.present}, speaker_track_id=speaker.track_id,
        speaker_reason=speaker.reason, speaker_scores=speaker.scores, fusion_backend=model.backend)


def _words(utt: Utterance) -> tuple[str, list]:
    if utt.transcript is not None:
        return utt.transcript.text, list(utt.transcript.words)
    return (utt.text.text if utt.text is not None else ""), []


# ------------------------------------------------------------------ speaker


def attribute(utt: Utterance, faces: FaceState, ctx: Context) -> Speaker:
    margin = int(MOUTH_MARGIN_S * NS)
    mouth = {tid: [(s.t_capture, s.mouth) for s in faces.span(tid, utt.t_start - margin, utt.t_end + margin)
                   if s.mouth is not None]
             for tid in faces.tracks_in(utt.t_start, utt.t_end)}
    result = attribute_speaker(mouth, utt.envelope, utt.t_start, utt.t_end, ctx.min_score, ctx.margin)
    return Speaker(result.track_id, result.reason, {str(k): float(v) for k, v in result.scores.items()})


# ------------------------------------------------------------------ the three modalities


def face_slot(utt: Utterance, faces: FaceState, speaker: Speaker, ctx: Context) -> Slot:
    tracks = faces.tracks_in(utt.t_start, utt.t_end)
    if speaker.track_id is not None and speaker.track_id in tracks:
        return pool(faces.span(speaker.track_id, utt.t_start, utt.t_end), utt, ctx.frame_period_ns,
                    f"the speaker's face (track {speaker.track_id}), pooled over the utterance")
    if len(tracks) == 1:
        return pool(faces.span(tracks[0], utt.t_start, utt.t_end), utt, ctx.frame_period_ns,
                    f"the only face in view (track {tracks[0]}), pooled; speaker not confirmed: {speaker.reason}")
    if tracks:
        return f"{len(tracks)} faces in view and the speaker not attributed ({speaker.reason})"
    if ctx.static.get("face"):
        return ctx.static["face"]
    if ctx.down("face"):
        return f"face node down ({ctx.down('face')})"
    return "no face in view during the utterance"


def pool(samples: list[FaceSample], utt: Utterance, frame_period_ns: int, note: str) -> Estimate:
    """One face estimate for the span (rule in the module docstring)."""
    probs = np.mean([s.estimate.probs for s in samples], axis=0)
    probs = probs / max(float(probs.sum()), 1e-12)
    span = max(utt.t_end - utt.t_start, 1)
    coverage = min(1.0, len(samples) * frame_period_ns / span)
    confidence = float(np.mean([s.estimate.confidence for s in samples])) * coverage
    return Estimate("face", probs.astype(np.float32), float(np.mean([s.estimate.valence for s in samples])),
                    float(np.mean([s.estimate.arousal for s in samples])), confidence, samples[-1].t_capture,
                    note=f"{note}: {len(samples)} frames, {coverage:.0%} of the span",
                    source=samples[-1].estimate.source)


def voice_slot(utt: Utterance, ctx: Context) -> Slot:
    if utt.voice is not None:
        return voice_estimate(utt.voice)
    if ctx.static.get("voice"):
        return ctx.static["voice"]
    if ctx.down("voice"):
        return f"voice node down ({ctx.down('voice')})"
    return f"no voice.affect {ctx.waited_s:.1f} s after the end: voice node down or slow"


def text_slot(utt: Utterance, ctx: Context) -> Slot:
    if utt.transcript is not None and not utt.transcript.valid:
        return f"ASR failed: {utt.transcript.error or 'transcript not valid'}"
    if utt.text is not None:
        return text_estimate(utt.text)
    if ctx.static.get("text"):
        return ctx.static["text"]
    if utt.transcript is None:
        state = ctx.down("asr")
        return f"ASR node down ({state})" if state else \
            f"no transcript {ctx.waited_s:.1f} s after the end: ASR failed or slow"
    state = ctx.down("text")
    return f"text node down ({state})" if state else \
        f"no text.affect {ctx.waited_s:.1f} s after the end: text node down or slow"
