"""Tools whose last stdout line is one JSON object: writing that line, and running such a tool (the peers)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .machine import ROOT

TIMEOUT_S = 600


def emit_result(result: dict[str, Any], json_path: Path | None = None) -> None:
    """The tool's figures as its last stdout line, and also into ``json_path`` (``--json FILE``) when given."""
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


def run_json_tool(command: list[str], timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The tool's figures with ``status`` "ran", or why there are none (``status`` "failed", ``reason``)."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"timed out after {timeout_s:.0f} s"}
    return parse_json_line(out)


def parse_json_line(out: subprocess.CompletedProcess) -> dict[str, Any]:
    """The JSON of the last stdout line, or why there is none."""
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        return {"status": "failed", "reason": f"exit {out.returncode}: {tail}"}
    try:
        figures = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"status": "failed", "reason": f"no JSON on the last stdout line: {lines[-1][:200]}"}
    return {"status": "ran", **figures}


def skipped(reason: str, **more: str) -> dict[str, Any]:
    """A peer's section when it did not run: why (and, in ``more``, e.g. the command that sets it up)."""
    return {"status": "skipped", "reason": reason, **more}
