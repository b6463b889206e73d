"""``moodwire dashboard``: check where to serve, subscribe, serve, and stop cleanly."""

from __future__ import annotations

import socket
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, TextIO

from moodwire.pipeline.core.config import ConfigError
from moodwire.pipeline.core.keys import CurveClient

if TYPE_CHECKING:
    from moodwire.pipeline.dashboard.server import DashboardServer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
ANY_ADDRESS = ("", "0.0.0.0", "::")  # every interface


@dataclass
class DashboardOptions:
    endpoint: str  # the pipeline's public endpoint
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port (the printed URL names it)
    allow_remote: bool = False  # serve beyond loopback (then with an access token)
    curve: CurveClient | None = None  # keys for a CURVE public endpoint
    seconds: float | None = None  # stop after this long
    stream: str | None = None  # only this stream (None: every stream)


def run_dashboard(options: DashboardOptions, stop: threading.Event, out: TextIO = sys.stderr) -> int:
    """Serve until ``stop`` is set or ``options.seconds`` have passed; the URL is printed first."""
    with serving(options) as server:
        shown = socket.gethostname() if options.host in ANY_ADDRESS else options.host  # a URL one can open
        print(f"moodwire dashboard: {server.url(shown)} (stream from {options.endpoint}; Ctrl-C stops)",
              file=out, flush=True)
        stop.wait(options.seconds)
    return 0


@contextmanager
def serving(options: DashboardOptions) -> Iterator["DashboardServer"]:
    """The dashboard served (and subscribed to the stream) for the ``with`` block; closed after it."""
    from moodwire.pipeline.dashboard.access import Access
    from moodwire.pipeline.dashboard.feed import Feed
    from moodwire.pipeline.dashboard.server import DashboardServer

    access = Access.for_bind(options.host, options.allow_remote)  # before anything binds or connects
    feed = Feed(options.endpoint, options.curve, options.stream).start()
    try:
        try:
            server = DashboardServer(options.host, options.port, feed.view_json, access).start()
        except OSError as exc:
            raise ConfigError(f"cannot serve the dashboard on {options.host}:{options.port} "
                              f"({exc.strerror or exc}): pass another --port, or --port 0 for any free one") from None
        try:
            yield server
        finally:
            server.close()
    finally:
        feed.close()
