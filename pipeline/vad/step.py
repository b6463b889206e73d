"""The VAD node's logic: audio.chunk in; speech.vad events and speech.audio pieces out.

Chunks are cut into the classifier's frames (30 ms webrtcvad, 32 ms Silero), each decision goes
to the segmenter, and its events become messages. Positions count samples of the stream; a
sample's capture time is its chunk's ``t_capture`` + index / 16 kHz, so a jittery microphone
clock is followed chunk by chunk. Lost chunks or a jump in capture time break the stream: an
open utterance ends there (reason ``stream_end``). So does silence on the bus for ``stall_s``
(the source ended), found in ``idle``. The final piece of an utterance is published before its
``end`` event, so a consumer that sees ``end`` already has all its audio.

Pieces are ``piece_samples`` long, except at a pause of ``PAUSE_S`` within an open utterance: then
everything classified (but one sample, kept for the final piece) goes out at once, so ASR can decode
it while the hangover runs. Each piece says where the speech heard so far ends (``speech_end``).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from moodwire.pipeline.core.audio import PAUSE_S
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.flow import END
from moodwire.pipeline.core.messages import AudioChunk, Message, SpeechEvent, UtteranceAudio
from moodwire.pipeline.core.node import BadInput
from moodwire.pipeline.vad import SAMPLE_RATE
from moodwire.pipeline.vad.segmenter import SILENCE, Closed, Opened, Segmenter, SegmenterSettings

NS_PER_SAMPLE = 1e9 / SAMPLE_RATE
Output = tuple[str, Message]


class FrameClassifier(Protocol):
    name: str
    frame_samples: int

    def is_speech(self, frame: np.ndarray) -> bool: ...

    def reset(self) -> None: ...

    def fresh(self) -> "FrameClassifier": ...


@dataclass
class _Utterance:
    uid: int
    start: int  # stream position of its first sample
    emitted: int  # audio published up to here
    valid: bool
    flushed_for: int = -1  # the speech end whose pause has been flushed


class VadStep:
    """Per chunk: frames classified, segmenter events turned into messages. ``stall_s``: bus silence
    that means the source ended; ``max_jitter_s``: capture-time error tolerated before a break."""

    inputs = ("audio.chunk",)

    def __init__(self, classifier: FrameClassifier, settings: SegmenterSettings, piece_samples: int,
                 stall_s: float = 1.0, max_jitter_s: float = 0.1,
                 clock: Callable[[], int] = now_ns) -> None:
        self.classifier = classifier
        self.segmenter = Segmenter(settings)
        self.piece_samples = piece_samples
        self.pause_samples = round(PAUSE_S * SAMPLE_RATE)
        self.stall_s, self.max_jitter_s = stall_s, max_jitter_s
        self.stall_ns = int(stall_s * 1e9)
        self.max_jitter_ns = int(max_jitter_s * 1e9)
        self.clock = clock
        self._audio = np.zeros(0, np.int16)
        self._audio_from = 0  # stream position of _audio[0]
        self._received = 0  # stream position after the last sample received
        self._anchors: deque[tuple[int, int]] = deque()  # (position, t_capture) of each kept chunk
        self._last: AudioChunk | None = None
        self._last_arrival = 0
        self._utterance: _Utterance | None = None
        self._chunk_valid = True

    # ------------------------------------------------------------------ the Step protocol

    def fresh(self) -> "VadStep":
        """For another stream: its own classifier state and segmenter."""
        return VadStep(self.classifier.fresh(), self.segmenter.settings, self.piece_samples, self.stall_s,
                       self.max_jitter_s, self.clock)

    def process(self, topic: str, msg: Message) -> list[Output]:
        chunk = _checked(topic, msg)
        out: list[Output] = []
        if self._last is not None and self._is_break(chunk):
            out += self.finish()
        self._last, self._last_arrival, self._chunk_valid = chunk, self.clock(), chunk.valid
        self._anchors.append((self._received, chunk.t_capture))
        self._audio = np.concatenate([self._audio, chunk.samples])
        self._received += chunk.samples.size
        if self._utterance and not chunk.valid:
            self._utterance.valid = False
        frame = self.classifier.frame_samples
        while self._received - self.segmenter.position >= frame:
            begin = self.segmenter.position
            speech = self.classifier.is_speech(self._slice(begin, begin + frame))
            for event in self.segmenter.push(begin + frame, speech):
                out += self._on_event(event)
            out += self._pieces(final_at=None)
        self._trim()
        return out

    def idle(self, now: int) -> list[Output]:
        """The source went quiet for ``stall_s``: end what is open (reason ``stream_end``)."""
        if self.segmenter.state != SILENCE and now - self._last_arrival > self.stall_ns:
            return self.finish()
        return []

    def advance(self, watermark: int) -> list[Output]:
        """The audio is complete (pipeline/core/flow.py): at its end, close what is open at once."""
        return self.finish() if watermark >= END else []

    def holdback(self) -> int | None:
        """Audio received but not classified yet may still open or close an utterance: nothing this step
        publishes later has an event time before the end of what it has classified."""
        return self._time_of(self.segmenter.position) if self._anchors else None

    def finish(self) -> list[Output]:
        """The stream ends or breaks here: close an open utterance, forget the partial frame."""
        out: list[Output] = []
        for event in self.segmenter.finish("stream_end"):
            out += self._on_event(event)
        self.segmenter.skip_to(self._received)
        self.classifier.reset()
        self._trim()
        return out

    # ------------------------------------------------------------------ internals

    def _is_break(self, chunk: AudioChunk) -> bool:
        last = self._last
        expected = last.t_capture + round(last.samples.size * NS_PER_SAMPLE)
        return chunk.chunk_index != last.chunk_index + 1 or abs(chunk.t_capture - expected) > self.max_jitter_ns

    def _on_event(self, event: Opened | Closed) -> list[Output]:
        backend = self.classifier.name
        if isinstance(event, Opened):
            uid = self._time_of(event.start)
            self._utterance = _Utterance(uid, event.start, event.start, self._chunk_valid)
            return [("speech.vad", SpeechEvent(utterance_id=uid, kind="start", t_start=uid, vad_backend=backend,
                                               t_capture=self._time_after(event.decided_at),
                                               valid=self._chunk_valid))]
        u = self._utterance
        assert u is not None
        out = self._pieces(final_at=event.end)
        t_end = self._time_after(event.end)
        out.append(("speech.vad", SpeechEvent(
            utterance_id=u.uid, kind="end", t_start=u.uid, t_end=t_end,
            t_speech_end=self._time_after(event.speech_end), reason=event.reason, vad_backend=backend,
            t_capture=t_end, valid=u.valid)))
        self._utterance = None
        return out

    def _pieces(self, final_at: int | None) -> list[Output]:
        """Whole pieces of the open utterance up to what is classified; at a new pause, all of it but one
        sample; with ``final_at``, everything up to there, the last piece final. One sample at least is
        always held back for the final piece."""
        u = self._utterance
        if u is None:
            return []
        limit = final_at if final_at is not None else self.segmenter.position
        flush_to = limit if final_at is not None else limit - 1 if self._new_pause(u) else None
        out: list[Output] = []
        while limit - u.emitted > self.piece_samples or (flush_to is not None and u.emitted < flush_to):
            stop = min(u.emitted + self.piece_samples, limit if flush_to is None else flush_to)
            final = final_at is not None and stop == limit
            out.append(("speech.audio", UtteranceAudio(
                utterance_id=u.uid, t_start=u.uid, offset=u.emitted - u.start, sample_rate=SAMPLE_RATE,
                samples=self._slice(u.emitted, stop).copy(), final=final,
                speech_end=min(self.segmenter.speech_end, stop) - u.start,
                t_capture=self._time_of(u.emitted), valid=u.valid)))
            u.emitted = stop
        return out

    def _new_pause(self, u: _Utterance) -> bool:
        """Whether the speech of the open utterance has just been followed by PAUSE_S of non-speech."""
        speech_end = self.segmenter.speech_end
        if u.flushed_for == speech_end or self.segmenter.position - speech_end < self.pause_samples:
            return False
        u.flushed_for = speech_end
        return True

    def _slice(self, begin: int, end: int) -> np.ndarray:
        return self._audio[begin - self._audio_from:end - self._audio_from]

    def _time_of(self, position: int) -> int:
        """Capture ns of the sample at ``position``, from the chunk that holds it."""
        i = bisect.bisect_right(self._anchors, (position, float("inf"))) - 1
        anchor_pos, anchor_t = self._anchors[max(i, 0)]
        return anchor_t + round((position - anchor_pos) * NS_PER_SAMPLE)

    def _time_after(self, position: int) -> int:
        """Capture ns just after the sample before ``position`` (an end, from the last sample's chunk)."""
        return self._time_of(position - 1) + round(NS_PER_SAMPLE)

    def _trim(self) -> None:
        """Keep only audio a future piece or pre-roll may need, and the anchors that time it."""
        keep = min(self.segmenter.keep_from, self.segmenter.position)
        timed_from = keep - 1  # an end is timed from the sample before it
        if self._utterance:
            keep = min(keep, self._utterance.emitted)
            timed_from = min(timed_from, self._utterance.start)  # t_speech_end may lie before emitted
        if keep > self._audio_from:
            self._audio = self._audio[keep - self._audio_from:]
            self._audio_from = keep
        while len(self._anchors) > 1 and self._anchors[1][0] <= timed_from:
            self._anchors.popleft()


def _checked(topic: str, msg: Message) -> AudioChunk:
    """The chunk, or BadInput naming what is wrong with it (run_step reports it and goes on)."""
    if not isinstance(msg, AudioChunk):
        raise BadInput(f"{topic}: expected an AudioChunk, got {type(msg).__name__}")
    if msg.sample_rate != SAMPLE_RATE:
        raise BadInput(f"audio.chunk {msg.chunk_index} has sample rate {msg.sample_rate} Hz; the VAD takes "
                       f"{SAMPLE_RATE} Hz mono int16 only (the audio sources resample to it)")
    samples = msg.samples
    if samples.ndim != 1 or samples.dtype != np.int16:
        raise BadInput(f"audio.chunk {msg.chunk_index} has samples of shape {samples.shape} and type "
                       f"{samples.dtype}; the VAD takes mono int16, shape (n,)")
    return msg


def build_vad_step(config: Config | None = None) -> VadStep:
    """The configured backend (webrtcvad, or Silero through the engine interface), loaded and warm."""
    config = config or Config()
    vad = config.vad
    classifier: FrameClassifier
    if vad.backend == "silero":
        from moodwire.pipeline.vad.silero import load_silero

        classifier = load_silero(config.models.vad_silero, vad.silero_threshold)
    else:
        from moodwire.pipeline.vad.webrtc import WebrtcClassifier

        classifier = WebrtcClassifier(vad.aggressiveness)
    return VadStep(classifier, SegmenterSettings.from_config(vad), round(vad.piece_s * SAMPLE_RATE))
