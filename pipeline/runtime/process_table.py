"""The process table: the one place that lists every node.

Each row names the module whose ``main(ctx)`` runs the node, the topics it
consumes and produces, whether the config enables it, and the exported models
it loads (``moodwire export`` names; the manager's prepare step makes any that
are missing before it starts the nodes, which never export). The manager starts
the enabled rows as separate processes. Every node also publishes
``system.node`` (its own report), which is not repeated in each row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from moodwire.pipeline.core.config import Config, ConfigError
from moodwire.pipeline.core.flow import FlowPlan

REPORT_TOPIC = "system.node"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    module: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    enabled: Callable[[Config], bool]
    is_source: bool = False  # a source that ends (end of file) is finished, not crashed
    exports: Callable[[Config], tuple[str, ...]] = lambda c: ()  # exported models it loads, by export name

    @property
    def all_outputs(self) -> tuple[str, ...]:
        return (*self.outputs, REPORT_TOPIC)


PROCESS_TABLE: tuple[NodeSpec, ...] = (
    NodeSpec("bus", "moodwire.pipeline.nodes.bus", (), (), lambda c: True),
    NodeSpec("video_source", "moodwire.pipeline.nodes.video_source", (), ("video.frame",),
             lambda c: c.sources.video != "none", is_source=True),
    NodeSpec("audio_source", "moodwire.pipeline.nodes.audio_source", (), ("audio.chunk",),
             lambda c: c.sources.audio != "none", is_source=True),
    NodeSpec("face", "moodwire.pipeline.nodes.face", ("video.frame",), ("face.tracks",),
             lambda c: c.nodes.face and c.sources.video != "none", exports=lambda c: c.face.expression_exports()),
    NodeSpec("vad", "moodwire.pipeline.nodes.vad", ("audio.chunk",), ("speech.vad", "speech.audio"),
             lambda c: c.nodes.vad and c.sources.audio != "none"),
    NodeSpec("asr", "moodwire.pipeline.nodes.asr", ("speech.audio",), ("speech.transcript",),
             lambda c: c.nodes.asr and c.nodes.vad and c.sources.audio != "none",
             exports=lambda c: ("asr-base",) if c.asr.model == "base" else ()),
    NodeSpec("voice", "moodwire.pipeline.nodes.voice", ("speech.audio", "speech.transcript"), ("voice.affect",),
             lambda c: c.nodes.voice and c.nodes.vad and c.sources.audio != "none"),
    NodeSpec("text", "moodwire.pipeline.nodes.text", ("speech.transcript",), ("text.affect",),
             lambda c: c.nodes.text and c.nodes.asr and c.nodes.vad and c.sources.audio != "none",
             exports=lambda c: () if c.text.profile else ("text-encoder",)),
    NodeSpec("fusion", "moodwire.pipeline.nodes.fusion",
             ("video.frame", "face.tracks", "speech.vad", "speech.audio", "speech.transcript", "voice.affect",
              "text.affect", "system.health"), ("affect.frame", "affect.utterance"),
             lambda c: c.nodes.fusion, exports=lambda c: ("fusion",)),
    # a sink: it publishes nothing on the bus, so nothing waits for it (flow_plan, the manager's drain); live
    # only (a recording's tables come from moodwire analyze), on the bus host (its stamps are that clock)
    NodeSpec("lsl", "moodwire.pipeline.nodes.lsl", ("affect.frame", "affect.utterance", "system.health"), (),
             lambda c: c.lsl.enabled and c.sources.pace != "lossless" and not c.bus.join),
)


def get_node(name: str) -> NodeSpec:
    for spec in PROCESS_TABLE:
        if spec.name == name:
            return spec
    raise KeyError(f"no node {name!r} in pipeline/runtime/process_table.py; known: "
                   f"{', '.join(s.name for s in PROCESS_TABLE)}")


def enabled_nodes(config: Config) -> list[NodeSpec]:
    """The nodes this host runs: those the config enables, of ``manager.nodes`` where that is set."""
    chosen = selected_names(config)
    return [spec for spec in PROCESS_TABLE if spec.enabled(config) and (chosen is None or spec.name in chosen)]


def selected_names(config: Config) -> set[str] | None:
    """``manager.nodes`` as names, checked (None: all); ConfigError naming an unknown node or a misplaced bus."""
    names = {n.strip() for n in config.manager.nodes.split(",") if n.strip()}
    known = {spec.name for spec in PROCESS_TABLE}
    if names - known:
        raise ConfigError(f"manager.nodes names {', '.join(sorted(names - known))}, not in the process table; "
                          f"known: {', '.join(spec.name for spec in PROCESS_TABLE)}")
    joined = bool(config.bus.join)
    if joined and "bus" in names:
        raise ConfigError("manager.nodes has bus, but bus.join is set: the bus runs on the host that is joined; "
                          "leave bus out here")
    if names and not joined and "bus" not in names:
        raise ConfigError("manager.nodes leaves out bus, and bus.join is not set: the nodes would have no bus; "
                          "add bus, or join another host's bus with --bus tcp://HOST:PORT")
    if joined and not names:
        raise ConfigError("bus.join is set but manager.nodes is not: name the nodes this host runs, e.g. "
                          "--nodes video_source,audio_source")
    return names or None


def takes(spec: NodeSpec, config: Config) -> tuple[str, ...]:
    """The topics ``spec`` takes in this config. In lossless mode fusion leaves ``video.frame`` to the face
    node, which then sends ``face.tracks`` for every frame (pipeline/fusion/ordered.py)."""
    if spec.name == "fusion" and config.sources.pace == "lossless" and config.nodes.face:
        return tuple(t for t in spec.inputs if t != "video.frame")
    return spec.inputs


def flow_plan(name: str, config: Config) -> FlowPlan:
    """Whose watermarks node ``name`` follows, and for a source whom it waits for (pipeline/core/flow.py),
    among the nodes the config enables on any host."""
    nodes = [spec for spec in PROCESS_TABLE if spec.enabled(config) and spec.outputs]  # not the bus, nor a sink
    spec = get_node(name)
    upstream = tuple(n.name for n in nodes if set(n.outputs) & set(takes(spec, config)))
    direct = [n.name for n in nodes if set(spec.outputs) & set(takes(n, config))]
    downstream, frontier = set(direct), list(direct)
    while frontier:
        produced = get_node(frontier.pop()).outputs
        for n in nodes:
            if n.name not in downstream and set(produced) & set(takes(n, config)):
                downstream.add(n.name)
                frontier.append(n.name)
    order = [n.name for n in nodes]
    return FlowPlan(lossless=config.sources.pace == "lossless", upstream=upstream,
                    downstream=tuple(sorted(downstream, key=order.index)), takes=tuple(direct))
