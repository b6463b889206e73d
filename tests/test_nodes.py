"""Manager policy, without sockets or processes."""

from __future__ import annotations

from moodwire.pipeline.core.config import ManagerConfig
from moodwire.pipeline.runtime.manager import next_backoff


def test_backoff_doubles_while_a_node_keeps_crashing_and_resets_once_stable():
    cfg = ManagerConfig(restart_backoff_s=0.5, restart_backoff_max_s=4.0, stable_after_s=30.0)
    delays, delay = [], 0.0
    for _ in range(6):
        delay = next_backoff(delay, uptime_s=0.2, cfg=cfg)
        delays.append(delay)
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert next_backoff(4.0, uptime_s=60.0, cfg=cfg) == 0.5
