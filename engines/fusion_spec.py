"""What the late-fusion model takes and returns, with no torch: the fusion node imports this.

One row per person. Modality axis order is ``MODALITIES``; class axis order is
moodwire's ``LABELS`` (pipeline/core/labels.py). A modality's rows are read only where its
``present`` flag is 1: an absent modality may hold anything (zeros, stale
values, NaN) and has no influence. exporters/fusion.py defines the rule.

Also here, torch-free so the node can use them: the params file (``load_params``; tools/fit_fusion.py
writes one) and where the ONNX made from it is cached (``fusion_dir``, keyed by the file's sha256 and
the profiles switched on; ``fusion_onnx`` finds it, ``moodwire export fusion`` makes it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moodwire.engines.derived import matches_sidecar, not_exported
from moodwire.pipeline.core.labels import LABELS

MODALITIES: tuple[str, ...] = ("face", "voice", "text")
N_MODALITIES = len(MODALITIES)
N_CLASSES = len(LABELS)
VA_DIMS: tuple[str, ...] = ("valence", "arousal")
PERSON_AXIS = "persons"

# ONNX inputs, float32, all with the dynamic person axis at dim 0
INPUT_NAMES: tuple[str, ...] = ("probs", "probs_present", "va", "va_present", "va_confidence", "confidence",
                                 "present")
INPUT_SHAPES: dict[str, tuple[str | int, ...]] = {
    "probs": (PERSON_AXIS, N_MODALITIES, N_CLASSES),  # per-modality class probabilities
    "probs_present": (PERSON_AXIS, N_MODALITIES),  # 1 where that modality has class probabilities
    "va": (PERSON_AXIS, N_MODALITIES, 2),  # valence, arousal in [-1, 1]
    "va_present": (PERSON_AXIS, N_MODALITIES, 2),  # 1 where that modality has that dimension
    "va_confidence": (PERSON_AXIS, N_MODALITIES, 2),  # [0, 1] per dimension: weighs valence, arousal apart
    "confidence": (PERSON_AXIS, N_MODALITIES),  # [0, 1] of the modality: its weight, the class pool
    "present": (PERSON_AXIS, N_MODALITIES),  # 1/0: the modality has a live estimate for this person
}
# ONNX outputs, float32
OUTPUT_NAMES: tuple[str, ...] = ("fused_probs", "fused_va", "fused_confidence", "weights")
OUTPUT_SHAPES: dict[str, tuple[str | int, ...]] = {
    "fused_probs": (PERSON_AXIS, N_CLASSES),  # sums to 1; uniform when nothing is present
    "fused_va": (PERSON_AXIS, 2),  # 0 where no present modality has that dimension
    "fused_confidence": (PERSON_AXIS,),  # [0, 1]; 0 when nothing is present
    "weights": (PERSON_AXIS, N_MODALITIES),  # each present modality's weight; 0 for absent, sum 1 if any present
}

ONNX_NAME = "fusion.onnx"
SIDECAR_NAME = "fusion.json"
PARAMS_PACKAGE, PARAMS_FILE = "moodwire.engines", "fusion_params.json"
FUSION_EXPORT = "fusion"  # its name for `moodwire export` (it is made from a params file, not a registry slot)


def blank_inputs(persons: int) -> dict[str, np.ndarray]:
    """Model inputs for ``persons`` rows with every modality absent; fill in what is present."""
    return {name: np.zeros([persons if d == PERSON_AXIS else d for d in shape], np.float32)
            for name, shape in INPUT_SHAPES.items()}


class FusionParamsError(ValueError):
    """A fusion params file that cannot be used; the text names the file and the key."""


@dataclass(frozen=True)
class FusionParams:
    """Per-modality reliability (relative trust) and temperature (>1 flattens, <1 sharpens), in MODALITIES order.

    ``source`` says where the numbers come from (set by hand, or fitted); ``fitted`` holds the fit's
    record (data, frames, NLL) and is empty for hand-set values.
    """

    reliability: tuple[float, ...]
    temperature: tuple[float, ...]
    source: str = ""
    fitted: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "reliability": dict(zip(MODALITIES, self.reliability)),
            "temperature": dict(zip(MODALITIES, self.temperature)),
            "source": self.source,
        }
        if self.fitted:
            data["fitted"] = self.fitted
        return data


def load_params(path: str | Path = "", profiles: tuple[str, ...] = ()) -> FusionParams:
    """Read and check a params file ("" = the packaged defaults); FusionParamsError names the file and key.
    ``profiles``: the model profiles switched on (engines/profiles.py); each one's entry under the file's
    ``profiles`` replaces its modality's reliability and temperature."""
    path = Path(path) if path else default_params_path()
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise FusionParamsError(f"fusion params {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise FusionParamsError(f"fusion params {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FusionParamsError(f"fusion params {path}: expected a JSON object at the top level")
    values = {key: list(_per_modality(path, data, key)) for key in ("reliability", "temperature")}
    source = data.get("source", "")
    fitted = data.get("fitted")
    if not isinstance(source, str):
        raise FusionParamsError(f"fusion params {path}: 'source' must be a string")
    if fitted is not None and not isinstance(fitted, dict):
        raise FusionParamsError(f"fusion params {path}: 'fitted' must be an object when given")
    entries = _profile_entries(path, data)
    for name in profiles:
        source += _apply_profile(values, name, entries.get(name))
    return FusionParams(tuple(values["reliability"]), tuple(values["temperature"]), source, fitted or None)


def _profile_entries(path: Path, data: dict) -> dict[str, dict[str, float]]:
    """The file's ``profiles`` section, checked: profile name -> reliability, temperature (and source)."""
    from moodwire.engines.profiles import PROFILES

    table = data.get("profiles", {})
    if not isinstance(table, dict):
        raise FusionParamsError(f"fusion params {path}: 'profiles' must be an object of profile name -> entry")
    for name, entry in table.items():
        if name not in PROFILES:
            raise FusionParamsError(f"fusion params {path}: 'profiles.{name}' is not a model profile; "
                                    f"known: {', '.join(PROFILES)}")
        if not isinstance(entry, dict):
            raise FusionParamsError(f"fusion params {path}: 'profiles.{name}' must be an object")
        for key in ("reliability", "temperature"):
            _positive(path, f"profiles.{name}.{key}", entry.get(key))
    return table


def _profile_modality(name: str) -> str:
    from moodwire.engines.profiles import get_profile

    return get_profile(name).modality


def _apply_profile(values: dict[str, list[float]], name: str, entry: dict | None) -> str:
    """Put a profile's entry in place of its modality's values; the words to add to ``source``."""
    modality = _profile_modality(name)
    if entry is None:
        return f" Profile {name}: no entry in this file, so the {modality} values stand."
    i = MODALITIES.index(modality)
    values["reliability"][i], values["temperature"][i] = float(entry["reliability"]), float(entry["temperature"])
    return f" Profile {name} ({modality}): {entry.get('source', 'no source given')}"


def _per_modality(path: Path, data: dict, key: str) -> tuple[float, ...]:
    table = data.get(key)
    if not isinstance(table, dict):
        raise FusionParamsError(f"fusion params {path}: '{key}' must be an object with keys {list(MODALITIES)}")
    unknown = sorted(set(table) - set(MODALITIES))
    if unknown:
        raise FusionParamsError(f"fusion params {path}: '{key}' has unknown modality {unknown}; "
                                f"use {list(MODALITIES)}")
    out = []
    for m in MODALITIES:
        if m not in table:
            raise FusionParamsError(f"fusion params {path}: '{key}.{m}' is missing")
        out.append(_positive(path, f"{key}.{m}", table[m]))
    return tuple(out)


def _positive(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise FusionParamsError(f"fusion params {path}: '{key}' must be a positive number, got {value!r}")
    return float(value)


def default_params_path() -> Path:
    """The packaged, hand-set parameters (engines/fusion_params.json)."""
    from importlib import resources

    return Path(str(resources.files(PARAMS_PACKAGE) / PARAMS_FILE))


# Bump when the rule in exporters/fusion.py changes: with the inputs and outputs it keys the export
# cache, so an ONNX made by an older model is never run with newer feeds.
MODEL_VERSION = 3


def fusion_dir(params_path: str | Path = "", profiles: tuple[str, ...] = ()) -> Path:
    """Cache folder of the ONNX exported from one params file: keyed by the file's content (not its
    name), the model profiles switched on, and the model's version and input/output contract."""
    import hashlib

    from moodwire.engines.registry import sha256_of
    from moodwire.pipeline.core.paths import cache_dir

    path = Path(params_path) if params_path else default_params_path()
    contract = [MODEL_VERSION, INPUT_NAMES, INPUT_SHAPES, OUTPUT_NAMES, OUTPUT_SHAPES, sha256_of(path)]
    contract = json.dumps(contract + ([sorted(profiles)] if profiles else []))  # no profile: the key as before
    return cache_dir() / "models" / "fusion" / hashlib.sha256(contract.encode()).hexdigest()[:16]


def fusion_onnx(params_path: str | Path = "", profiles: tuple[str, ...] = ()) -> Path:
    """The fusion ONNX exported from ``params_path`` ("" = packaged defaults); ModelMissing with the command
    that exports it when the cache lacks it or it no longer matches the checksum its sidecar recorded.
    A bad params file fails first, naming the key."""
    if not matches_fusion_export(params_path, profiles):
        hint = f" --set fusion.params={params_path}" if params_path else ""
        hint += "".join(f" --set {_profile_modality(name)}.profile={name}" for name in profiles)
        raise not_exported(FUSION_EXPORT, _onnx_path(params_path, profiles), hint)
    return _onnx_path(params_path, profiles)


def matches_fusion_export(params_path: str | Path = "", profiles: tuple[str, ...] = ()) -> bool:
    """The params file is valid and its exported ONNX is cached and intact."""
    params = Path(params_path) if params_path else default_params_path()
    load_params(params, profiles)  # a bad file fails here, naming the key, before anything is hashed
    return matches_sidecar(_onnx_path(params, profiles), fusion_dir(params, profiles) / SIDECAR_NAME)


def _onnx_path(params_path: str | Path, profiles: tuple[str, ...] = ()) -> Path:
    return fusion_dir(params_path, profiles) / ONNX_NAME
