"""VAD node: audio.chunk -> speech.vad, speech.audio (logic in pipeline/vad/step.py)."""

from __future__ import annotations

from pipeline.node import NodeContext, run_step
from pipeline.vad.step import build_vad_step


def main(ctx: NodeContext) -> int:
    run_step(ctx, build_vad_step(ctx.config))
    return 0
