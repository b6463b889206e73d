"""ASR node: speech.audio -> speech.transcript (logic in pipeline/asr/step.py).

It lowers its own priority first (``asr.nice``) and decodes on ``asr.threads`` threads, so a
decode burst takes CPU the video path does not need rather than frames it does.
"""

from __future__ import annotations

import os
import sys

from moodwire.pipeline.asr.step import build_asr_step
from moodwire.pipeline.core.node import NodeContext, run_step
from moodwire.pipeline.core.streams import PerStream

POLL_S = 0.01  # idle() (where speculative and partial decodes start) runs after this long without input


def main(ctx: NodeContext) -> int:
    if ctx.config.asr.nice:
        try:
            os.nice(ctx.config.asr.nice)
        except OSError as exc:  # not fatal: ASR then competes with the video path at equal priority
            print(f"asr: could not lower priority by {ctx.config.asr.nice}: {exc}", file=sys.stderr)
    run_step(ctx, PerStream(build_asr_step(ctx.config)), poll_s=POLL_S)
    return 0
