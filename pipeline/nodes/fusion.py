"""Fusion node: face.tracks, speech.*, voice.affect, text.affect (+ video.frame, system.health)
-> affect.frame, affect.utterance (logic in pipeline/fusion/step.py)."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext, run_step
from moodwire.pipeline.core.streams import PerStream
from moodwire.pipeline.fusion.ordered import EventOrder
from moodwire.pipeline.fusion.step import build_fusion_step


def main(ctx: NodeContext) -> int:
    step = build_fusion_step(ctx.config)
    if ctx.flow.lossless:  # decided by watermarks in capture-time order, not by the wall clock
        step = EventOrder(step, takes_video=bool({"video_source"} & set(ctx.flow.upstream)))
    run_step(ctx, PerStream(step))
    return 0
