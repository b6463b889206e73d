"""Fusion node: face.tracks, speech.*, voice.affect, text.affect (+ video.frame, system.health)
-> affect.frame, affect.utterance (logic in pipeline/fusion/step.py)."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext, run_step
from moodwire.pipeline.core.streams import PerStream
from moodwire.pipeline.fusion.step import build_fusion_step


def main(ctx: NodeContext) -> int:
    run_step(ctx, PerStream(build_fusion_step(ctx.config)))
    return 0
