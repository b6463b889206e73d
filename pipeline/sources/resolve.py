"""Turn the configured sources into ones that exist, before any node starts.

``--source FILE`` picks the file's tracks. Devices are probed: a missing
camera or microphone is replaced by the matching track of the sample clip
(``sources.fallback = "sample"``), announced in one line, or is an error
(``"none"``). File sources are opened and decoded once here, so a corrupt
file is reported before the pipeline starts rather than crash-looping a node.
"""

from __future__ import annotations

import dataclasses

from moodwire.pipeline.core.config import Config
from moodwire.pipeline.sources import SourceUnavailable
from moodwire.pipeline.sources.media_file import MediaInfo, probe_media


def with_source_file(config: Config, path: str) -> Config:
    """Run on ``path``: its video and/or audio track replace the devices."""
    info = probe_media(path)
    sources = dataclasses.replace(
        config.sources, file=str(path),
        video="file" if info.has_video else "none",
        audio="file" if info.has_audio else "none")
    return dataclasses.replace(config, sources=sources)


def resolve_sources(config: Config, here: frozenset[str] = frozenset({"video", "audio"})) -> tuple[Config, list[str]]:
    """(config with usable sources, one-line notes for the user). Only the kinds in ``here`` (video, audio)
    have their source node on this host: the devices of the others are another host's, not probed here."""
    src = config.sources
    missing = _missing_devices(config, here)
    notes: list[str] = []
    if missing:
        if src.fallback == "none":
            raise SourceUnavailable("; ".join(missing.values()) + " (sources.fallback = 'sample' would use the sample clip)")
        src = _fall_back(src, missing, notes)
    src = _use_sample_clip(src)
    if "file" in (src.video, src.audio):
        info = probe_media(src.file)
        _check_tracks(src, info)
    return dataclasses.replace(config, sources=src), notes


def _missing_devices(config: Config, here: frozenset[str]) -> dict[str, str]:
    from moodwire.pipeline.sources.microphone import check_microphone
    from moodwire.pipeline.sources.webcam import open_camera

    src = config.sources
    missing = {}
    if src.video == "webcam" and "video" in here:
        try:
            open_camera(src.camera, src.width, src.height, src.fps).release()
        except SourceUnavailable as exc:
            missing["video"] = str(exc)
    if src.audio == "mic" and "audio" in here:
        try:
            check_microphone(src.mic)
        except SourceUnavailable as exc:
            missing["audio"] = str(exc)
    return missing


def _fall_back(src, missing: dict[str, str], notes: list[str]):
    """Missing devices become the sample clip's tracks, or idle where the file slot is taken."""
    if "file" in (src.video, src.audio):
        notes.append(f"moodwire: {'; '.join(missing.values())}; that path stays idle")
        return dataclasses.replace(src, **{kind: "none" for kind in missing})
    from moodwire.pipeline.sources.sample_clip import clip_path

    what = " and ".join({"video": "no camera", "audio": "no microphone"}[k] for k in missing)
    notes.append(f"moodwire: {what} found; using the sample clip {clip_path()} (looping) for "
                 f"{' and '.join(missing)} instead (sources.fallback = 'none' makes this an error)")
    return dataclasses.replace(src, **{kind: "sample" for kind in missing})


def _use_sample_clip(src):
    """'sample' tracks read the sample clip, made on first use, through the file source."""
    if "sample" not in (src.video, src.audio):
        return src
    if "file" in (src.video, src.audio):
        raise SourceUnavailable("sources: 'sample' and 'file' cannot be mixed (there is one file slot); "
                                "use one of them for both video and audio")
    from moodwire.pipeline.sources.sample_clip import ensure_sample_clip

    swap = {"sample": "file"}
    return dataclasses.replace(src, file=str(ensure_sample_clip()), loop=True,
                               video=swap.get(src.video, src.video), audio=swap.get(src.audio, src.audio))


def _check_tracks(src, info: MediaInfo) -> None:
    for kind, has in (("video", info.has_video), ("audio", info.has_audio)):
        if getattr(src, kind) == "file" and not has:
            raise SourceUnavailable(f"sources.{kind} = 'file' but {info.path} has no {kind} track; "
                                    f"set sources.{kind} to another source or 'none'")
