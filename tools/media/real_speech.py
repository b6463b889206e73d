"""Real recorded speech with transcripts, taken from inside published packages (never committed).

Two packages carry real voices as test data, and are fetched from their registries at the pinned
version and checked by sha256 (the bytes pip and npm would install), then cut into 16 kHz mono
int16 WAV files in the moodwire cache:

- ``pocketsphinx==5.1.1`` sdist from PyPI (CMU Sphinx, BSD 2-clause): five LibriVox clips of one
  male reader of "Sense and Sensibility" (LibriVox recordings are public domain), and five CMU
  clips of one male speaker reading playing cards ("cards").
- ``nodejs-whisper@0.3.1`` tarball from npm (MIT; whisper.cpp's sample): the JFK clip, 11 s of
  the 1961 inaugural address (a US government work, public domain).

Calm read speech (LibriVox, cards) and emphatic oratory (JFK): several real speakers and
microphones, no acted emotion. ``python -m tools.media.real_speech`` fetches them and lists them.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.request
import wave
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from moodwire.pipeline.core.paths import cache_dir
from moodwire.pipeline.sources.spoken import read_wav

SAMPLE_RATE = 16_000
TIMEOUT_S = 120


@dataclass(frozen=True)
class Package:
    name: str
    url: str
    sha256: str
    licence: str


@dataclass(frozen=True)
class Clip:
    name: str
    speaker: str
    text: str
    package: str
    member: str  # path inside the package archive
    path: str = ""  # the WAV in the cache, once fetched

    def samples(self) -> np.ndarray:
        return read_wav(self.path)[1]


POCKETSPHINX = Package(
    "pocketsphinx==5.1.1 (PyPI sdist)",
    "https://files.pythonhosted.org/packages/61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/"
    "pocketsphinx-5.1.1.tar.gz",
    "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
    "BSD-2-Clause (CMU Sphinx); LibriVox recordings public domain")
NODEJS_WHISPER = Package(
    "nodejs-whisper@0.3.1 (npm)", "https://registry.npmjs.org/nodejs-whisper/-/nodejs-whisper-0.3.1.tgz",
    "92041caf2b26c74b7f489fedf37bd093f216eebd61df512045ec2d19d0531d37",
    "MIT (whisper.cpp sample); the 1961 inaugural address is public domain")

_LIBRIVOX = "pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility_01_austen_64kb-{}"
_CARDS = "pocketsphinx-5.1.1/test/data/cards/{}.wav"
_CARD_TEXT = {"001": "ten of clubs", "002": "four queen of clubs", "003": "seven of clubs", "004": "five five",
              "005": "eight of spades four of clubs seven of hearts"}
CLIPS: tuple[Clip, ...] = (
    *(Clip(f"librivox-{n}", "librivox-reader", "", POCKETSPHINX.name, _LIBRIVOX.format(n) + ".wav")
      for n in ("0870", "0880", "0890", "0920", "0930")),
    *(Clip(f"cards-{n}", "cmu-cards", text, POCKETSPHINX.name, _CARDS.format(n)) for n, text in _CARD_TEXT.items()),
    Clip("jfk", "jfk", "And so my fellow Americans, ask not what your country can do for you, ask what you can do "
         "for your country.", NODEJS_WHISPER.name, "package/cpp/whisper.cpp/bindings/go/samples/jfk.wav"),
)
PACKAGES = {p.name: p for p in (POCKETSPHINX, NODEJS_WHISPER)}


class FetchError(RuntimeError):
    """A package could not be fetched or did not match its pinned checksum; the text says which."""


def real_speech_clips(folder: Path | None = None) -> list[Clip]:
    """Every clip, fetched and cut on first use (FetchError if a registry cannot be reached)."""
    folder = folder or cache_dir() / "real_speech"
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "clips.json"
    if not index.exists():
        clips = _extract_all(folder)
        part = index.with_suffix(".part")
        part.write_text(json.dumps([asdict(c) for c in clips], indent=1))
        part.replace(index)  # written last: a half-done fetch is done again
    return [Clip(**c) for c in json.loads(index.read_text())]


def _extract_all(folder: Path) -> list[Clip]:
    done = []
    for package in PACKAGES.values():
        archive = tarfile.open(fileobj=io.BytesIO(_download(package)), mode="r:gz")
        for clip in (c for c in CLIPS if c.package == package.name):
            text = clip.text or _member(archive, clip.member.removesuffix(".wav") + ".txt").decode().strip()
            clip = replace(clip, text=text, path=str(folder / f"{clip.name}.wav"))
            _write_wav(clip, _member(archive, clip.member))
            done.append(clip)
    return done


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    try:
        member = archive.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        raise FetchError(f"the package has no {name}")
    return member.read()


def _download(package: Package) -> bytes:
    try:
        with urllib.request.urlopen(package.url, timeout=TIMEOUT_S) as response:
            data = response.read()
    except OSError as exc:
        raise FetchError(f"cannot fetch {package.name} from {package.url}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != package.sha256:
        raise FetchError(f"{package.name}: sha256 {digest} differs from the pinned {package.sha256}; not used")
    return data


def _write_wav(clip: Clip, data: bytes) -> None:
    with wave.open(io.BytesIO(data)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise FetchError(f"{clip.member}: {w.getframerate()} Hz x{w.getnchannels()}; 16 kHz mono 16-bit expected")
    part = Path(clip.path).with_suffix(".part")
    part.write_bytes(data)
    part.replace(clip.path)


if __name__ == "__main__":
    for c in real_speech_clips():
        print(f"{c.name:14s} {c.speaker:16s} {len(c.samples()) / SAMPLE_RATE:5.1f} s  {c.package}: {c.text[:60]}")
