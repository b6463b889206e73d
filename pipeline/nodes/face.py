"""Face node: video.frame -> face.tracks, for every stream (logic in pipeline/face/step.py and
pipeline/face/streams.py)."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext, run_batch_step
from moodwire.pipeline.face.step import build_face_step
from moodwire.pipeline.face.streams import FaceStreams


def main(ctx: NodeContext) -> int:
    step = FaceStreams(build_face_step(ctx.config), ctx.config.face.stream_threads)
    try:
        run_batch_step(ctx, step)
    finally:
        step.close()
    return 0
