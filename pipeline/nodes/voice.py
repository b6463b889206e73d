"""Voice node: speech.audio (+ speech.transcript) -> voice.affect (logic in pipeline/voice/step.py)."""

from __future__ import annotations

from pipeline.node import NodeContext, run_step
from pipeline.voice.step import build_voice_step


def main(ctx: NodeContext) -> int:
    run_step(ctx, build_voice_step(ctx.config))
    return 0
