"""The config schema: the one place that defines every setting.

Configs are TOML. Each section is a dataclass below; a field's default is the
default config, and its ``metadata`` gives allowed values (``choices``) or a
range (``min``/``max``). ``load_config`` rejects an unknown key or a bad value
with the key's full name and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A bad config file or value; the text names the key and what is allowed."""


def choice(default: str, *choices: str, doc: str = "") -> Any:
    return field(default=default, metadata={"choices": choices, "doc": doc})


def number(default: float, lo: float | None = None, hi: float | None = None, doc: str = "") -> Any:
    return field(default=default, metadata={"min": lo, "max": hi, "doc": doc})


def text(default: str, doc: str = "") -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass
class BusConfig:
    public: str = text("tcp://127.0.0.1:5560", "the public endpoint any client subscribes to")
    hwm: int = number(100, 2, 100000, "high-water mark (messages) per socket")


@dataclass
class SourcesConfig:
    video: str = choice("webcam", "webcam", "file", "sample", "synthetic", "none",
                        doc="where video.frame comes from ('sample' = the sample clip)")
    audio: str = choice("mic", "mic", "file", "sample", "synthetic", "none",
                        doc="where audio.chunk comes from ('sample' = the sample clip)")
    file: str = text("", "media file (video with or without audio, or WAV) for video/audio = 'file'")
    pace: str = choice("realtime", "realtime", "fast", doc="file playback: real time, or as fast as possible")
    loop: bool = field(default=False, metadata={"doc": "restart the file at its end"})
    camera: int = number(0, 0, 63, "OpenCV camera index")
    width: int = number(640, 16, 7680, "video width (webcam request, synthetic size)")
    height: int = number(480, 16, 4320, "video height")
    fps: float = number(30.0, 1.0, 240.0, "frame rate (webcam request, synthetic rate)")
    mic: str = text("", "sounddevice input device name or index; empty = system default")
    fallback: str = choice("sample", "sample", "none",
                           doc="a missing camera or mic is replaced by the sample clip, or is an error")


@dataclass
class ManagerConfig:
    grace_s: float = number(3.0, 0.1, 60.0, "SIGINT to SIGKILL grace period on stop")
    restart_backoff_s: float = number(0.5, 0.05, 10.0, "first restart delay; doubles per quick crash")
    restart_backoff_max_s: float = number(10.0, 0.1, 300.0, "longest restart delay")
    stable_after_s: float = number(30.0, 1.0, 3600.0, "uptime after which the backoff resets")
    health_hz: float = number(1.0, 0.1, 10.0, "rate of system.health")
    drain_s: float = number(1.0, 0.0, 60.0, "wait after all file sources end, before stopping")


@dataclass
class NodesConfig:
    face: bool = field(default=True, metadata={"doc": "face node: video.frame -> face.tracks"})
    placeholder_affect: bool = field(
        default=True, metadata={"doc": "PLACEHOLDER echo node: affect.frame with valid=false, no estimates"})


@dataclass
class ModelsConfig:
    """Path overrides for the model slots of engines/registry.py (``moodwire models`` lists them)."""

    face_landmarker: str = text("", "your own mediapipe .task file instead of the packaged one; empty = packaged")
    face_expression: str = text("", "your own mini-Xception Keras .hdf5 (fer layout); empty = packaged")


@dataclass
class FaceConfig:
    max_faces: int = number(4, 1, 16, "most faces landmarked per frame")
    track_iou_min: float = number(0.3, 0.01, 1.0, "box overlap that continues a track from the last frame")
    track_max_gap_s: float = number(0.5, 0.0, 10.0,
                                    "a face unseen for longer gets a new track id when it returns")
    engine: str = choice("auto", "auto", "cpu", "cuda", "tensorrt",
                         doc="expression model: auto = ONNX Runtime TensorRT > CUDA > CPU; cpu forces CPU")
    threads: int = number(1, 1, 16, "ONNX Runtime threads for the expression model")


@dataclass
class Config:
    bus: BusConfig = field(default_factory=BusConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    manager: ManagerConfig = field(default_factory=ManagerConfig)
    nodes: NodesConfig = field(default_factory=NodesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    face: FaceConfig = field(default_factory=FaceConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


# ------------------------------------------------------------------ loading


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults, then the TOML file, then ``key=value`` overrides, validated."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_toml(Path(path))
    for item in overrides:
        key, value = parse_override(item)
        section, _, name = key.partition(".")
        if not name:
            raise ConfigError(f"--set {item!r}: use section.key=value, e.g. sources.fps=25")
        data.setdefault(section, {})[name] = value
    return from_dict(data)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass an existing --config or none") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. sources.fps=25")
    try:
        value = tomllib.loads(f"x = {raw}")["x"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: sources.video=synthetic
    return key.strip(), value


def from_dict(data: dict[str, Any]) -> Config:
    return _build(Config, data, prefix="")


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown key '{prefix}{key}'; allowed keys in {where}: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(f"{prefix}{name}", hint, value, fields[name].metadata)
    return cls(**kwargs)


def _check_value(key: str, hint: type, value: Any, meta: typing.Mapping[str, Any]) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if hint is str and type(value) is int:  # --set sources.mic=3: a device index typed bare
        value = str(value)
    if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {hint.__name__}, got {value!r}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{key} = {value!r} is not allowed; allowed values: {', '.join(choices)}")
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{key} = {value!r} is out of range; allowed: {lo} to {hi}")
    return value


def describe_schema() -> list[tuple[str, str, str, str]]:
    """(key, type, default, allowed/doc) rows, from which docs/config.md is generated."""
    rows = []
    config_hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        sec_cls = config_hints[section.name]
        hints = typing.get_type_hints(sec_cls)
        for f in dataclasses.fields(sec_cls):
            meta = f.metadata
            allowed = ", ".join(meta.get("choices", ())) or (
                f"{meta['min']} to {meta['max']}" if meta.get("min") is not None else "")
            rows.append((f"{section.name}.{f.name}", hints[f.name].__name__, repr(f.default),
                         "; ".join(x for x in (allowed, meta.get("doc", "")) if x)))
    return rows


def schema_markdown() -> str:
    """docs/config.md: every key with its type, default and allowed values."""
    lines = ["# Config keys", "",
             "Generated from `pipeline/config.py` by `python tools/gen_config_doc.py`; do not edit by hand.",
             "Set them in a TOML file (`moodwire run --config FILE`, sections as below) or one at a time",
             "with `moodwire run --set section.key=value`. An unknown key or a bad value is rejected",
             "with the key's name and what is allowed.", "",
             "| key | type | default | allowed; meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{key}` | {typ} | `{default}` | {doc} |" for key, typ, default, doc in describe_schema()]
    return "\n".join(lines) + "\n"
