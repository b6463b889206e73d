"""Step objects driven directly, and manager policy, without sockets or processes."""

from __future__ import annotations

import numpy as np

from pipeline.config import ManagerConfig
from pipeline.manager import next_backoff
from pipeline.messages import VideoFrame
from pipeline.nodes.placeholder_affect import PlaceholderAffectStep


def test_placeholder_publishes_an_invalid_empty_affect_frame_per_video_frame():
    step = PlaceholderAffectStep()
    frame = VideoFrame(frame_index=12, width=2, height=2, fps_nominal=30.0,
                       image=np.zeros((2, 2, 3), np.uint8), t_capture=555)
    [(topic, out)] = list(step.process("video.frame", frame))
    assert topic == "affect.frame"
    assert (out.frame_index, out.t_capture, out.valid, out.persons) == (12, 555, False, [])
    assert out.missing == ["face", "voice", "text"] and "placeholder" in out.note
    assert list(step.idle(0)) == []


def test_backoff_doubles_while_a_node_keeps_crashing_and_resets_once_stable():
    cfg = ManagerConfig(restart_backoff_s=0.5, restart_backoff_max_s=4.0, stable_after_s=30.0)
    delays, delay = [], 0.0
    for _ in range(6):
        delay = next_backoff(delay, uptime_s=0.2, cfg=cfg)
        delays.append(delay)
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert next_backoff(4.0, uptime_s=60.0, cfg=cfg) == 0.5
