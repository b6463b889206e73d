"""SIGINT/SIGTERM stop a process that waits on an Event, however often and whenever they come."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

CHILD = """
import sys
from moodwire.pipeline.core.signals import stop_on_signals
stop = stop_on_signals()
print("ready", flush=True)
while not stop.wait(0.0005):  # the main thread is inside Event.wait almost all the time
    pass
print("stopped", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_repeated_signals_stop_an_event_loop_without_deadlock(sig):
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        for _ in range(30):
            child.send_signal(sig)
            time.sleep(0.001)
        try:
            out, _ = child.communicate(timeout=5)
        finally:
            child.kill()
        assert "stopped" in out  # a deadlocked handler would have hung until the timeout
        # a signal of the burst that lands during interpreter shutdown, after Python has
        # restored the default handlers, ends the process by that signal: that is fine
        assert child.returncode in (0, -sig)
