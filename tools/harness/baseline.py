"""Another revision of moodwire, run side by side with the working tree: ``git worktree`` of REV in a
temporary folder, imported first through ``PYTHONPATH``.

The package is this repository's ``moodwire/`` folder (an editable install); the checkout's, on
``PYTHONPATH`` and as the working directory, is found before the editable install's finder, in the
pipeline and in every node process it starts (they inherit both; ``python -m`` puts the working
directory first, so it must be the checkout). Same virtual environment, same models
and cache: only the code differs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]


class BaselineError(RuntimeError):
    pass


@dataclass(frozen=True)
class Baseline:
    """Where and with what environment to start a process that runs moodwire at another revision."""

    env: dict[str, str]
    cwd: Path


@contextlib.contextmanager
def baseline(rev: str) -> Iterator[Baseline]:
    """moodwire at ``rev`` (any git revision: a hash, ``HEAD~1``, a tag), checked out until the block ends."""
    with tempfile.TemporaryDirectory(prefix="moodwire-baseline-") as folder:
        tree = Path(folder) / "checkout"
        _git("worktree", "add", "--detach", str(tree), rev)
        try:
            path = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
            yield Baseline(dict(os.environ, PYTHONPATH=path), tree)
        finally:
            _git("worktree", "remove", "--force", str(tree))


def describe(rev: str) -> str:
    """``rev`` as a short hash and subject, for a report."""
    return _git("log", "-1", "--format=%h %s", rev).strip()


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BaselineError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'} (the baseline needs a git "
                            "checkout of moodwire and a revision it has)")
    return done.stdout
