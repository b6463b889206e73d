"""The bus node: the XSUB/XPUB proxy that every publisher and subscriber meets at."""

from __future__ import annotations

from pipeline.bus import run_proxy
from pipeline.keys import server_curve
from pipeline.node import NodeContext


def main(ctx: NodeContext) -> int:
    run_proxy(ctx.endpoints, hwm=ctx.config.bus.hwm, stop=ctx.stop, curve=server_curve(ctx.config.bus))
    return 0
