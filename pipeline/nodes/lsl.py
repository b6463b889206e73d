"""The lsl node: the Lab Streaming Layer outlets (pipeline/lsl/, docs/lsl.md) as part of the pipeline, enabled by
``lsl.enabled`` on the bus host. It reads the internal bus, so its stamps are the bus host's capture times."""

from __future__ import annotations

from moodwire.pipeline.core.node import NodeContext
from moodwire.pipeline.lsl.outlet import run_outlets


def main(ctx: NodeContext) -> int:
    run_outlets(ctx.endpoints.internal_sub, face_slots=ctx.config.lsl.slots, rate_hz=ctx.config.sources.fps,
                stop=ctx.stop)
    return 0
