"""Publishes ``audio.chunk`` from the source the config names (mic, file, synthetic)."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext, Source, run_source


def make_audio_source(ctx: NodeContext) -> Source:
    src = ctx.config.sources
    if src.audio == "mic":
        from moodwire.pipeline.sources.microphone import Microphone
        return Microphone(src.mic)
    if src.audio == "file":
        from moodwire.pipeline.sources.media_file import FileAudio, probe_media
        return FileAudio(probe_media(src.file), ctx.t0_ns, src.pace == "realtime", src.loop)
    if src.audio == "synthetic":
        from moodwire.pipeline.sources.synthetic import SyntheticAudio
        return SyntheticAudio(ctx.t0_ns)
    raise ValueError(f"sources.audio = {src.audio!r} has no audio source")


def main(ctx: NodeContext) -> int:
    run_source(ctx, make_audio_source(ctx))
    return 0
