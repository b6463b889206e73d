"""The one way tools and tests start ``moodwire run``: a real process tree, watched on its public endpoint.

``PipelineRun.start(args)`` runs ``moodwire run --set bus.public=tcp://127.0.0.1:PORT ARGS`` with its
own work folder (the run directory's parent, so the ipc sockets land there, and the log file) and,
when asked, a subscriber opened before the process starts so that nothing it publishes is missed.
``watch`` feeds that subscriber's messages to a callback until the caller is done, the run exits or
time is up. ``stop`` is a user's Ctrl-C (SIGKILL if it does not end); ``ctrl_c`` also says what it left
behind (processes, files).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def moodwire_command() -> list[str]:
    """The console script a user runs; ``python -m`` of the CLI module where it is not installed."""
    script = Path(sys.executable).parent / "moodwire"
    return [str(script)] if script.exists() else [sys.executable, "-m", "moodwire.pipeline.runtime.cli"]


def log_tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class PipelineRun:
    """``moodwire run`` as a process tree with its own runtime folder and log; see the module text."""

    def __init__(self, proc: subprocess.Popen, endpoint: str, folder: Path, env: dict[str, str],
                 subscriber: Any | None) -> None:
        self.proc = proc
        self.endpoint = endpoint
        self.folder = folder
        self.env = env
        self.sub = subscriber
        self.malformed = 0  # malformed messages the subscriber saw (a benchmark reports them)
        self.pids: dict[int, Any] = {}  # every process of the run seen (psutil.Process), checked after Ctrl-C

    @classmethod
    def start(cls, args: Sequence[str], env: Mapping[str, str] | None = None,
              subscribe: Iterable[str] | None = None, queue_limit: int | None = None,
              cwd: Path | None = None) -> "PipelineRun":
        """Start ``moodwire run ARGS`` (in ``cwd``); with ``subscribe`` (topic prefixes), open a subscriber that
        queues every message under them first."""
        from moodwire.pipeline.core.bus import Subscriber

        endpoint = f"tcp://127.0.0.1:{free_port()}"
        folder = Path(tempfile.mkdtemp(prefix="moodwire-run-"))
        runtime = folder / "runtime"
        runtime.mkdir()
        env = dict(env or os.environ, XDG_RUNTIME_DIR=str(runtime), PYTHONUNBUFFERED="1")
        extra = {} if queue_limit is None else {"queue_limit": queue_limit}
        sub = Subscriber(endpoint, list(subscribe), queue_everything=True, **extra) if subscribe is not None else None
        with (folder / "pipeline.log").open("w") as log:  # a file, not a pipe: a full pipe would block the manager
            proc = subprocess.Popen([*moodwire_command(), "run", "--set", f"bus.public={endpoint}", *args],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        return cls(proc, endpoint, folder, env, sub)

    @property
    def runtime(self) -> Path:
        """XDG_RUNTIME_DIR of the run: the run directory with the ipc sockets is made in it."""
        return self.folder / "runtime"

    def run_dir(self) -> Path:
        [path] = [p for p in self.runtime.iterdir() if p.name.startswith("moodwire-")]
        return path

    def output(self) -> str:
        """Everything the run printed so far (the manager and, prefixed, every node)."""
        return (self.folder / "pipeline.log").read_text(errors="replace")

    def watch(self, handle: Callable[[Any], None], done: Callable[[], bool] = lambda: False,
              timeout_s: float = 60.0, poll_s: float = 0.2) -> str:
        """Hand every message the subscriber gets to ``handle`` (a ``Received``) until ``done()`` (asked after
        every message and every ``poll_s`` without one), the run exits, or ``timeout_s`` passes; say which:
        "done", "pipeline exited" or "timeout"."""
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            got = self.sub.recv(timeout=poll_s)
            if got is not None:
                handle(got)
            if done():
                return "done"
        return "pipeline exited" if self.proc.poll() is not None else "timeout"

    def remember_processes(self) -> None:
        """Note the manager and every descendant now alive (``ctrl_c`` checks none is left)."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                self.pids.setdefault(p.pid, p)
        except psutil.NoSuchProcess:
            pass

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Send ``sig`` (a user's Ctrl-C by default) and wait; SIGKILL after ``timeout_s``. The exit code,
        or None when it had to be killed."""
        self._close_subscriber()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def ctrl_c(self, timeout_s: float = STOP_TIMEOUT_S) -> dict[str, Any]:
        """``stop`` as Ctrl-C, then: exit code, how long it took, and the processes and files left."""
        self.remember_processes()
        t0 = time.monotonic()
        code = self.stop(signal.SIGINT, timeout_s)
        stop_s = round(time.monotonic() - t0, 2)
        left = lingering(self.pids.values(), wait_s=5.0)
        files = [str(p.relative_to(self.runtime)) for p in self.runtime.rglob("*")]
        for p in left:  # report them, then do not leave them behind ourselves
            p.kill()
        return {"exit_code": code, "stop_s": stop_s, "processes_seen": len(self.pids),
                "left_processes": [f"{p.pid} {cmdline_tail(p)}" for p in left], "left_files": files}

    def close(self) -> None:
        """Kill what is still running and remove the work folder."""
        self._close_subscriber()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _close_subscriber(self) -> None:
        if self.sub is not None:
            self.malformed = self.sub.malformed
            self.sub.close()
            self.sub = None


def lingering(procs: Iterable[Any], wait_s: float) -> list[Any]:
    """The processes still running (zombies count as gone) after up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    procs = list(procs)
    while True:
        left = [p for p in procs if is_running(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def is_running(p: Any) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cmdline_tail(p: Any) -> str:
    import psutil

    try:
        return " ".join(p.cmdline()[-3:])
    except psutil.Error:
        return "?"
