"""The bus node: the XSUB/XPUB proxy that every publisher and subscriber meets at."""

from __future__ import annotations

import signal

from pipeline.bus import run_proxy
from pipeline.node import NodeContext


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # zmq.proxy blocks in C; an exception is the way out


def main(ctx: NodeContext) -> int:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_proxy(ctx.endpoints, hwm=ctx.config.bus.hwm)
    except KeyboardInterrupt:
        pass
    return 0
