"""Publishes ``video.frame`` from the source the config names (webcam, file, synthetic)."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext, Source, run_source


def make_video_source(ctx: NodeContext) -> Source:
    src = ctx.config.sources
    if src.video == "webcam":
        from moodwire.pipeline.sources.webcam import Webcam
        return Webcam(src.camera, src.width, src.height, src.fps)
    if src.video == "file":
        from moodwire.pipeline.sources.media_file import FileVideo, probe_media
        return FileVideo(probe_media(src.file), ctx.t0_ns, src.pace == "realtime", src.loop)
    if src.video == "synthetic":
        from moodwire.pipeline.sources.synthetic import SyntheticVideo
        return SyntheticVideo(src.width, src.height, src.fps, ctx.t0_ns)
    raise ValueError(f"sources.video = {src.video!r} has no video source")


def main(ctx: NodeContext) -> int:
    run_source(ctx, make_video_source(ctx))
    return 0
