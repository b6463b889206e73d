"""Typed messages. Every message carries the envelope of DESIGN.md.

The wire layout of each type is documented in docs/schema.md; field names here
are the keys of the msgpack header. Arrays (``np.ndarray`` fields) travel as raw
buffer frames after the header (see pipeline/wire.py).
"""

from __future__ import annotations

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
    """One face in one frame. ``valence``/``arousal`` are derived by a RULE, not a trained model:
    the expression classes placed on Russell's circumplex, weighted by probability, nudged by
    blendshapes (``FaceTracks.va_rule`` names it; pipeline/face/affect_rule.py defines it)."""

    track_id: int
    box: list[float]  # x0, y0, x1, y1 in pixels
    landmarks: np.ndarray  # (478, 3) float32: x, y in pixels; z in the same scale as x
    blendshapes: np.ndarray  # (52,) float32 scores in [0, 1], names in FaceTracks.blendshape_names
    head_pose: HeadPose
    crop: np.ndarray  # (64, 64) uint8 grey, eyes level: what the expression model saw
    expression: np.ndarray  # (7,) float32 probabilities, labels in FaceTracks.expression_labels
    valence: float
    arousal: float


@dataclass(kw_only=True)
class FaceTracks(Message):
    """Every face in one video frame; published for every frame, with ``faces: []`` when none is seen."""

    frame_index: int
    width: int
    height: int
    faces: list[FaceTrack] = field(default_factory=list)
    expression_labels: list[str] = field(default_factory=list)
    blendshape_names: list[str] = field(default_factory=list)
    va_rule: str = ""
    expression_backend: str = ""  # what the expression model ran on, e.g. onnxruntime:CPUExecutionProvider


@dataclass(kw_only=True)
class PersonAffect:
    """Fused estimate for one tracked person (filled in by the fusion issue)."""

    track_id: int
    labels: list[str]
    probs: list[float]
    valence: float
    arousal: float
    confidence: float
    modalities: dict[str, float] = field(default_factory=dict)


@dataclass(kw_only=True)
class AffectFrame(Message):
    """Per-video-frame affect. ``missing`` names modalities with no live input."""

    frame_index: int
    persons: list[PersonAffect] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(kw_only=True)
class NodeStats(Message):
    """Each node's own report, once a second: what it published and what it refused."""

    name: str
    pid: int
    published: dict[str, int] = field(default_factory=dict)
    rates_hz: dict[str, float] = field(default_factory=dict)
    malformed_inputs: int = 0
    last_error: str = ""


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
    state: str = "running"


@dataclass(kw_only=True)
class SystemHealth(Message):
    """Published by the manager once a second."""

    nodes: list[NodeHealth] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
