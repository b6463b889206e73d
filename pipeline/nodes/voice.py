"""Voice node: speech.audio (+ speech.transcript) -> voice.affect (logic in pipeline/voice/step.py)."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext, run_step
from moodwire.pipeline.core.streams import PerStream
from moodwire.pipeline.voice.step import build_voice_step


def main(ctx: NodeContext) -> int:
    run_step(ctx, PerStream(build_voice_step(ctx.config)))
    return 0
