"""The prototypes data file: labelled example sentences, circumplex placements and negation words.

The packaged file is pipeline/text/prototypes.json; ``text.prototypes`` in the
config points at a user's own. Either is validated here, and every problem is
reported with the file's path and the offending key, so a typo in a hand-edited
file fails at start-up with a sentence a user can act on.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from moodwire.pipeline.core.labels import LABELS


class PrototypeError(ValueError):
    """A prototypes file that cannot be used; the text names the file and the problem."""


@dataclass(frozen=True)
class LabelSpec:
    name: str
    valence: float
    arousal: float
    prototypes: tuple[str, ...]
    negatable: tuple[str, ...] = ()
    when_negated: str = ""


@dataclass(frozen=True)
class PrototypeSet:
    path: Path
    sha256: str  # of the file's bytes: the key of the cached prototype embeddings
    labels: tuple[LabelSpec, ...]  # in LABELS order

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.labels]

    def sentences(self) -> tuple[list[str], list[int]]:
        """Every prototype sentence, and the index of its label, in file order."""
        texts = [t for spec in self.labels for t in spec.prototypes]
        owners = [i for i, spec in enumerate(self.labels) for _ in spec.prototypes]
        return texts, owners


def packaged_path() -> Path:
    return Path(str(resources.files("moodwire.pipeline.text") / "prototypes.json"))


def load_prototypes(path: str | Path = "") -> PrototypeSet:
    """Read and validate a prototypes file (empty: the packaged one)."""
    path = Path(path).expanduser() if path else packaged_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PrototypeError(f"prototypes file {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise PrototypeError(f"prototypes file {path}: not valid JSON ({exc})") from None
    labels = _labels(path, data)
    return PrototypeSet(path, hashlib.sha256(raw).hexdigest(), labels)


def _labels(path: Path, data: Any) -> tuple[LabelSpec, ...]:
    table = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise PrototypeError(f"prototypes file {path}: needs a top-level object with a \"labels\" object")
    unknown = [k for k in table if k not in LABELS]
    if unknown:
        raise PrototypeError(f"prototypes file {path}: unknown label(s) {unknown}; the labels are {list(LABELS)}")
    missing = [k for k in LABELS if k not in table]
    if missing:
        raise PrototypeError(f"prototypes file {path}: label(s) {missing} missing; every one of {list(LABELS)} "
                             "needs at least one prototype sentence")
    return tuple(_label(path, name, table[name]) for name in LABELS)


def _label(path: Path, name: str, entry: Any) -> LabelSpec:
    where = f"prototypes file {path}: labels.{name}"
    if not isinstance(entry, dict):
        raise PrototypeError(f"{where} must be an object with valence, arousal and prototypes")
    sentences = _strings(where + ".prototypes", entry.get("prototypes"), allow_empty=False)
    negatable = _strings(where + ".negatable", entry.get("negatable", []), allow_empty=True)
    when_negated = entry.get("when_negated", "")
    if when_negated and when_negated not in LABELS:
        raise PrototypeError(f"{where}.when_negated is {when_negated!r}; use one of {list(LABELS)}")
    return LabelSpec(name, _unit(where + ".valence", entry.get("valence")), _unit(where + ".arousal", entry.get("arousal")),
                     sentences, negatable, when_negated)


def _strings(where: str, value: Any, allow_empty: bool) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise PrototypeError(f"{where} must be a list of non-empty strings")
    if not value and not allow_empty:
        raise PrototypeError(f"{where} is empty; give at least one sentence")
    return tuple(s.strip() for s in value)


def _unit(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > 1:
        raise PrototypeError(f"{where} is {value!r}; it must be a number in [-1, 1]")
    return float(value)
