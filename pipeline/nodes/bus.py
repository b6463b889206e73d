"""The bus node: the XSUB/XPUB proxy that every publisher and subscriber meets at."""

from __future__ import annotations

from moodwire.pipeline.core.bus import run_proxy
from moodwire.pipeline.core.keys import server_curve
from moodwire.pipeline.core.node import NodeContext


def main(ctx: NodeContext) -> int:
    run_proxy(ctx.endpoints, hwm=ctx.config.bus.hwm, stop=ctx.stop, curve=server_curve(ctx.config.bus))
    return 0
