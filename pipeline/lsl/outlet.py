"""``moodwire lsl``: the two LSL outlets (pylsl, the ``lsl`` extra), fed from the pipeline's public stream."""

from __future__ import annotations

import threading
from typing import Any

from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.config import ConfigError
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.link_watch import LinkWatch, say_on_stderr
from moodwire.pipeline.lsl.mapping import AFFECT_STREAM, MARKER_STREAM, LslMapper, unit

TOPICS = ["affect.frame", "affect.utterance", "system.health"]


def require_pylsl(asked_by: str, alternative: str = "") -> None:
    """ConfigError naming what asked for the outlets and the install command, where pylsl is missing."""
    import importlib.util

    if importlib.util.find_spec("pylsl") is None:
        raise ConfigError(f"{asked_by} needs pylsl: pip install 'moodwire[lsl]'{alternative}")


def stream_infos(mapper: LslMapper, rate_hz: float, source_id: str) -> tuple[Any, Any]:
    """The two streams' ``pylsl.StreamInfo`` with their metadata (channels, units, slots, rules)."""
    import pylsl

    affect = pylsl.StreamInfo(AFFECT_STREAM, "Affect", len(mapper.channels), rate_hz, "float32",
                              f"{source_id}-affect")
    desc = affect.desc()
    desc.append_child_value("manufacturer", "moodwire")
    channels = desc.append_child("channels")
    for name in mapper.channels:
        slot, _, measure = name.partition("_") if name != "frame_index" else ("", "", name)
        ch = channels.append_child("channel")
        for key, value in (("label", name), ("unit", unit(name)), ("type", "Affect"),
                           ("slot", slot), ("measure", measure)):
            ch.append_child_value(key, value)
    slots = desc.append_child("slots")
    slots.append_child_value("voice", "the person without a face (voice and text only); NaN when none")
    slots.append_child_value("faces", f"face1..face{mapper.face_slots}: a face takes the first free slot when it "
                                      "appears and keeps it while in view; NaN when empty")
    desc.append_child_value("rules", "confidence and the valence of voice and text come from rules "
                                     "(docs/schema.md); the values are fused, valence and arousal smoothed")
    markers = pylsl.StreamInfo(MARKER_STREAM, "Markers", 1, pylsl.IRREGULAR_RATE, "string", f"{source_id}-markers")
    markers.desc().append_child_value("manufacturer", "moodwire")
    markers.desc().append_child_value("format", "JSON per affect.utterance record: utterance_id, stage, text, "
                                                "label, valence, arousal, confidence, speaker_track_id")
    return affect, markers


def run_outlets(endpoint: str, *, face_slots: int = 4, rate_hz: float = 30.0, stream: str | None = None,
                curve: CurveClient | None = None, stop: threading.Event | None = None) -> LslMapper:
    """Publish the stream at ``endpoint`` on the two LSL outlets until ``stop`` is set; the mapper (counts)."""
    import pylsl

    mapper = LslMapper(face_slots)
    affect_info, marker_info = stream_infos(mapper, rate_hz, f"moodwire@{endpoint}")
    affect, markers = pylsl.StreamOutlet(affect_info), pylsl.StreamOutlet(marker_info)
    watch = LinkWatch(endpoint, ["affect.frame"], say_on_stderr)
    with Subscriber(endpoint, TOPICS, queue_everything=True, curve=curve, stream=stream, watch=watch) as sub:
        while stop is None or not stop.is_set():
            got = sub.recv(timeout=0.1)
            mapped = mapper.map(got.msg) if got is not None else None
            if mapped is None:
                continue
            kind, value, t = mapped
            if kind == "affect":
                affect.push_sample(value, t)
            else:
                markers.push_sample([value], t)
        mapper.skipped += sub.malformed
    return mapper
