"""Entry point of one node process: ``python -m moodwire.pipeline.runtime.node_main NAME RUN_DIR``.

The manager writes ``RUN_DIR/run.json`` (resolved config, endpoints, start
time, host name and, on a joined host, the clock offset file) before starting
any node. The node dies with the manager
(PR_SET_PDEATHSIG), so a killed manager leaves no orphans.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

from moodwire.pipeline.core.bus import BusEndpoints, finish_sends
from moodwire.pipeline.core.clock import follow_offset_file
from moodwire.pipeline.core.config import from_dict
from moodwire.pipeline.core.keys import joining_curve
from moodwire.pipeline.core.node import NodeContext
from moodwire.pipeline.core.signals import stop_on_signals
from moodwire.pipeline.runtime.process_table import flow_plan, get_node

RUN_FILE = "run.json"
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM this process when its parent exits; exit if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the manager's stop still reaps us
        return
    if os.getppid() != parent_pid:
        sys.exit(0)


def read_run_file(run_dir: Path) -> dict:
    return json.loads((run_dir / RUN_FILE).read_text())


def context_from_run(name: str, run: dict) -> NodeContext:
    config = from_dict(run["config"])
    return NodeContext(
        name=name,
        config=config,
        endpoints=BusEndpoints(**run["endpoints"]),
        outputs=get_node(name).all_outputs,
        t0_ns=run["t0_ns"],
        stop=threading.Event(),
        host=run.get("host", ""),
        curve=joining_curve(config.bus) if config.bus.join else None,
        flow=flow_plan(name, config),
    )


def main(argv: list[str] | None = None) -> int:
    name, run_dir = (argv or sys.argv[1:])[:2]
    run = read_run_file(Path(run_dir))
    die_with_parent(run["manager_pid"])
    if run.get("clock_file"):  # a joined host: every time this node makes is on the bus host's clock
        follow_offset_file(run["clock_file"])
    ctx = context_from_run(name, run)
    stop_on_signals(ctx.stop)
    module = importlib.import_module(get_node(name).module)
    try:
        return module.main(ctx) or 0
    finally:
        finish_sends()


if __name__ == "__main__":
    sys.exit(main())
