"""Are a model's derived files (exported ONNX, a joined Whisper) ready? Nodes only read them.

``moodwire export`` (exporters/slots.py) writes them, and so does the prepare step ``moodwire run``
takes before it starts any node (pipeline/runtime/prepare.py): no node process ever exports, so
none imports torch. A file that is missing, half-written or changed since its export is not ready,
and loading it raises ModelMissing with the command that makes it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from moodwire.engines.registry import ModelMissing, ResolvedModel, sha256_of

WHISPER_MODEL_FILE = "model.bin"
_PART = re.compile(r"^model\.bin\.part(\d+)$")


def matches_sidecar(onnx_path: Path, sidecar_path: Path) -> bool:
    """The ONNX exists and its sha256 is the one its sidecar JSON recorded when it was exported."""
    try:
        recorded = json.loads(sidecar_path.read_text())["onnx_sha256"]
        return recorded == sha256_of(onnx_path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def model_parts(model: ResolvedModel) -> list[Path]:
    """The slot's ``model.bin.partN`` files (source and companions), in part order."""
    found = [(int(m.group(1)), p) for p in (model.path, *model.companion_paths) if (m := _PART.match(p.name))]
    return [p for _, p in sorted(found)]


def joined_size_ok(model: ResolvedModel) -> bool:
    """The cached model.bin exists and is exactly as long as its parts together."""
    joined = model.derived_path(WHISPER_MODEL_FILE)
    return joined.is_file() and joined.stat().st_size == sum(p.stat().st_size for p in model_parts(model))


def derived_ready(model: ResolvedModel) -> bool:
    """Every derived file of the slot is there and intact: an exported ONNX matches its sidecar's
    checksum; a joined model is as long as its parts."""
    if not model.exported:
        return False
    first = model.slot.derived[0]
    if first.endswith(".onnx"):
        return matches_sidecar(model.derived_path(first), model.derived_path(model.slot.derived[1]))
    if first == WHISPER_MODEL_FILE:
        return joined_size_ok(model)
    return True


def not_exported(name: str, what: Path, config_hint: str = "") -> ModelMissing:
    """The error a node raises for a derived file that is not ready: what is missing and the command."""
    return ModelMissing(f"{name}: {what} is not exported yet, or changed since it was; run `moodwire export "
                        f"{name}{config_hint}` (`moodwire run` does it before it starts the nodes; nodes never export)")
