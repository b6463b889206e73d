"""The machine and the command line that every benchmark's figures are printed with."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

# The repository (tools/harness/ -> tools/ -> repo), through the moodwire/tools link as well.
ROOT = Path(__file__).resolve().parents[2]


def machine() -> dict[str, Any]:
    """Cores and CPU model, Python, the load at start: figures mean little without them."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "loadavg_1min_at_start": round(os.getloadavg()[0], 2)}


def announce() -> tuple[dict[str, Any], str]:
    """Print the machine and the command line; return both (the JSON line carries them too)."""
    host = machine()
    command = shlex.join([shown_path(Path(sys.executable)), *invocation(), *sys.argv[1:]])
    print(f"machine: {host['cores']} cores, {host['cpu']}, Python {host['python']}, "
          f"load average {host['loadavg_1min_at_start']} at start")
    print(f"command: {command}")
    return host, command


def invocation() -> list[str]:
    """How this program was started: ``-m tools.NAME`` for a module run (as the README says), else its path."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return ["-m", spec.name] if spec is not None else [shown_path(Path(sys.argv[0]))]


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (``.venv/bin/python``), as a user types it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)
