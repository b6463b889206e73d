"""VAD node: audio.chunk -> speech.vad, speech.audio (logic in pipeline/vad/step.py)."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext, run_step
from moodwire.pipeline.core.streams import PerStream
from moodwire.pipeline.vad.step import build_vad_step


def main(ctx: NodeContext) -> int:
    run_step(ctx, PerStream(build_vad_step(ctx.config)))
    return 0
