"""Text node: speech.transcript -> text.affect (logic in pipeline/text/step.py)."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext, run_step
from moodwire.pipeline.core.streams import PerStream
from moodwire.pipeline.text.step import build_text_step


def main(ctx: NodeContext) -> int:
    run_step(ctx, PerStream(build_text_step(ctx.config)))
    return 0
