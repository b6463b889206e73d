"""Where moodwire keeps what it makes: the user cache (XDG) and run directories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/moodwire`` (default ``~/.cache/moodwire``), created on demand."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "moodwire"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json_atomic(path: Path, data: object) -> Path:
    """Write ``data`` as indented JSON via a temporary name, so a reader never sees half a file."""
    import json

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def new_run_dir() -> Path:
    """A private directory for one run's ipc sockets and run file; the manager removes it."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.access(base, os.W_OK):
        base = tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="moodwire-", dir=base))
