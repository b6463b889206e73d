"""``moodwire models fetch PROFILE``: download a profile's pinned files once, check them, then use them.

The one place in moodwire that downloads. It runs only when the user asks (no node imports it; an
import-linter contract says so). Each file is streamed into ``<name>.part`` beside its final path,
checked against the profile's recorded git blob id and sha256, and only then renamed into place; the
manifest that makes the profile usable (engines/profiles.py) is written last, atomically. A broken
download, a refused checksum or Ctrl-C therefore never leaves a file a node would load.

A hub profile's files are checked against the digest the hub reports for each at the pinned commit
(``huggingface_hub.get_hf_file_metadata``: the LFS sha256, or the git blob id of a small file); an
answer for another commit is refused. Its PyTorch weights are then exported to ONNX with a parity
check (exporters/hub_profiles.py, which needs transformers: ``pip install 'moodwire[profiles]'``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from moodwire.engines.profiles import MANIFEST, ModelProfile, RemoteFile, profile_ready, read_manifest
from moodwire.engines.registry import ChecksumMismatch, ModelError, ModelMissing
from moodwire.pipeline.core.paths import write_json_atomic

CHUNK = 1 << 20
TIMEOUT_S = 60.0  # per socket operation, not for the whole file

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Digests:
    sha256: str
    git_blob: str
    size: int


def digests(path: Path) -> Digests:
    """sha256 and git's blob id (``git hash-object``: SHA-1 of ``blob <size>\\0`` and the bytes), in one read."""
    size = path.stat().st_size
    sha, blob = hashlib.sha256(), hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            sha.update(block)
            blob.update(block)
    return Digests(sha.hexdigest(), blob.hexdigest(), size)


def git_blob_id(path: Path) -> str:
    return digests(path).git_blob


def check(file: RemoteFile, found: Digests, url: str, hub_digest: str = "") -> None:
    """ChecksumMismatch unless every checksum the profile records for ``file``, and the hub's, matches."""
    hub_sha256, hub_blob = (hub_digest, "") if len(hub_digest) == 64 else ("", hub_digest)
    for kind, expected, actual in (("git blob id", file.git_blob, found.git_blob),
                                   ("sha256", file.sha256, found.sha256),
                                   ("hub's sha256 at the pinned commit", hub_sha256, found.sha256),
                                   ("hub's git blob id at the pinned commit", hub_blob, found.git_blob)):
        if expected and expected != actual:
            raise ChecksumMismatch(f"{url}: {kind} {actual} ({found.size} bytes), expected {expected}; "
                                   "the file was refused and deleted. A mirror may serve another version, or "
                                   "the download was altered; nothing was installed")


def download(url: str, dest: Path, progress: Progress) -> None:
    """Stream ``url`` into ``dest`` (a ``.part`` file); ModelError names the URL and the failure."""
    request = urllib.request.Request(url, headers={"User-Agent": "moodwire-models-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                done += len(block)
                progress(f"{dest.name.removesuffix('.part')}: {done / 1e6:.1f}"
                         + (f" of {total / 1e6:.1f} MB" if total else " MB"))
        if total and done != total:  # http.client ends a short body quietly: the length is checked here
            raise ModelError(f"{url}: download failed (the connection closed after {done} of {total} bytes); "
                             "run the command again")
    except urllib.error.HTTPError as exc:
        raise ModelError(f"{url}: HTTP {exc.code} {exc.reason}; check the profile's pin, or pass --base-url "
                         "for a mirror that serves the same paths") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelError(f"{url}: download failed ({reason}); check the network or proxy, or pass --base-url "
                         "for a reachable mirror") from None


def hub_digest(profile: ModelProfile, file: RemoteFile, base_url: str) -> str:
    """The digest the hub reports for ``file`` at the profile's pinned commit (sha256 or git blob id);
    ChecksumMismatch when it answers for another commit or gives none."""
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.errors import HfHubHTTPError

    url = profile.url(file, base_url)
    try:
        meta = get_hf_file_metadata(url, token=False, timeout=TIMEOUT_S)
    except HfHubHTTPError as exc:
        raise ModelError(f"{url}: the hub answered {exc}; check the profile's pin, or pass --base-url for a "
                         "mirror that serves the hub's paths") from None
    except Exception as exc:  # noqa: BLE001 - httpx's network errors, whose classes huggingface_hub does not wrap
        raise ModelError(f"{url}: could not ask the hub for the file's checksum ({exc}); check the network or "
                         "proxy, or pass --base-url for a reachable mirror") from None
    if meta.commit_hash != profile.revision:
        raise ChecksumMismatch(f"{url}: the hub answered for commit {meta.commit_hash}, the profile is pinned to "
                               f"{profile.revision}; nothing was installed")
    digest = (meta.etag or "").lower()
    if len(digest) not in (40, 64) or any(c not in "0123456789abcdef" for c in digest):
        raise ChecksumMismatch(f"{url}: the hub gave no checksum for the file (ETag {meta.etag!r}); nothing was "
                               "installed")
    return digest


def fetch_file(profile: ModelProfile, file: RemoteFile, base_url: str, progress: Progress,
               copied: CopiedFiles | None = None) -> str:
    """Download (or take from ``copied``), check and move one file into the profile folder; its sha256."""
    final = profile.folder / file.name
    part = final.with_name(final.name + ".part")
    try:
        if copied is not None:
            url, expected = copied.take(profile, file, part)
        else:
            url = profile.url(file, base_url)
            expected = hub_digest(profile, file, base_url) if file.hub_checked else ""
            download(url, part, progress)
        found = digests(part)
        check(file, found, url, expected)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, final)
    return found.sha256


@dataclass(frozen=True)
class CopiedFiles:
    """A profile's files copied by hand into ``folder`` (``moodwire models fetch NAME --from DIR``): each by its
    name, or the whole folder a fetch made on a machine with network (its manifest, MANIFEST, included)."""

    folder: Path

    def take(self, profile: ModelProfile, file: RemoteFile, part: Path) -> tuple[str, str]:
        """Copy ``file`` to ``part``; (where it came from, the digest a hub-checked file must have: the sha256
        that the copied manifest recorded when the hub was asked, at the same pinned revision)."""
        source = self.folder / file.name
        if not source.is_file():
            raise ModelMissing(f"{source} is not there: copy {profile.name}'s files ({', '.join(f.name for f in profile.files)}) "
                               f"into {self.folder}, from {profile.url(file)} and its siblings (docs/models.md)")
        shutil.copyfile(source, part)
        return str(source), self._hub_sha256(profile, file) if file.hub_checked else ""

    def _hub_sha256(self, profile: ModelProfile, file: RemoteFile) -> str:
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = {}
        recorded = manifest.get("sha256", {}).get(file.name, "") if manifest.get("revision") == profile.revision else ""
        if not recorded:
            raise ChecksumMismatch(f"{file.name}: {profile.name} records no checksum of its own for it (it is checked "
                                   f"against the hub's), and there is no {MANIFEST} of the same revision in "
                                   f"{self.folder}: copy the whole folder that `moodwire models fetch {profile.name}` "
                                   f"made on a machine with network ({profile.folder.name} under the cache), or "
                                   "fetch there; nothing was installed")
        return recorded


def require_exporter(profile: ModelProfile) -> None:
    """ModelError, before anything downloads, when the profile must be exported and torch or transformers is
    missing."""
    import importlib.util

    missing = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if profile.exported and missing:
        raise ModelError(f"{profile.name} is published as PyTorch weights and is exported to ONNX here, which needs "
                         f"{' and '.join(missing)}; run `pip install 'moodwire[profiles]'`, then "
                         f"`{profile.fetch_command()}` again")


def export_profile(profile: ModelProfile, progress: Progress) -> str:
    """Export the fetched PyTorch weights to ONNX (parity-checked); returns the ONNX's sha256."""
    from moodwire.exporters.hub_profiles import ProfileExportError, export_hub_profile
    from moodwire.exporters.onnx_export import ParityError

    progress(f"{profile.name}: exporting to ONNX ...")
    try:
        diff = export_hub_profile(profile, profile.folder)
    except (ProfileExportError, ParityError) as exc:
        raise ModelError(f"{profile.name}: {exc}; nothing was installed") from None
    progress(f"{profile.name}: {profile.exported} written (ONNX Runtime vs PyTorch max |diff| {diff:.1e})")
    return digests(profile.folder / profile.exported).sha256


def write_manifest(profile: ModelProfile, sha256: dict[str, str], base_url: str) -> Path:
    data = {"profile": profile.name, "repo": profile.repo, "revision": profile.revision,
            "fetched_from": base_url or profile.host, "sha256": sha256, "labels": list(profile.labels),
            "preprocessing": profile.preprocessing, "license": profile.license,
            "commercial_use": profile.commercial_use}
    return write_json_atomic(profile.folder / MANIFEST, data)


def fetch_profile(profile: ModelProfile, base_url: str = "", progress: Progress = print,
                  force: bool = False, copied: CopiedFiles | None = None) -> Path:
    """Fetch every file of ``profile`` (downloaded, or from ``copied``) unless it is already fetched and intact;
    returns its folder."""
    if not force and profile_ready(profile):
        progress(f"{profile.name}: already fetched and intact in {profile.folder}")
        return profile.folder
    # An old manifest may stay until the new one replaces it: a file replaced by different bytes no longer
    # matches it, so a fetch that fails halfway leaves nothing usable that was not checked.
    require_exporter(profile)
    profile.folder.mkdir(parents=True, exist_ok=True)
    sha256 = {file.name: fetch_file(profile, file, base_url, progress, copied) for file in profile.files}
    if profile.exported:
        sha256[profile.exported] = export_profile(profile, progress)
    write_manifest(profile, sha256, str(copied.folder) if copied else base_url)
    if read_manifest(profile) is None:
        raise ModelMissing(f"{profile.folder / MANIFEST} could not be read back after writing it")
    progress(f"{profile.name}: fetched into {profile.folder}")
    return profile.folder
