"""Face node: video.frame -> face.tracks (logic in pipeline/face/step.py)."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext, run_step
from moodwire.pipeline.core.streams import PerStream
from moodwire.pipeline.face.step import build_face_step


def main(ctx: NodeContext) -> int:
    step = PerStream(build_face_step(ctx.config))
    try:
        run_step(ctx, step)
    finally:
        step.close()
    return 0
