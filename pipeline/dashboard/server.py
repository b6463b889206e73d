"""The dashboard's HTTP server (standard library only): the page, its JSON view and a live event stream.

Routes (GET only):

- ``/``: the page (``static/index.html``); ``/static/NAME``: its script and style sheet;
- ``/api/state``: the current view as JSON (docs/dashboard.md lists the fields);
- ``/api/events``: the same view pushed ``PUSH_HZ`` times a second as Server-Sent Events
  (``text/event-stream``, event name ``state``), which the page listens to.

Each request runs in its own thread (``ThreadingHTTPServer``); an event stream ends when the
browser goes away or the server closes.
"""

from __future__ import annotations

import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Callable
from urllib.parse import urlsplit

from moodwire.pipeline.dashboard.access import Access

PUSH_HZ = 4.0
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# The page loads nothing from elsewhere (no CDN): the browser is told so.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, shipped as package data: name -> (content, content type)."""
    folder = resources.files("moodwire.pipeline.dashboard") / "static"
    files = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in CONTENT_TYPES:
            files[item.name] = (item.read_bytes(), CONTENT_TYPES[suffix])
    if "index.html" not in files:
        raise FileNotFoundError(f"the dashboard page is missing from {folder}: reinstall moodwire (pip install -e .)")
    return files


class DashboardServer:
    """Serves the page and the view that ``view_json`` returns, on ``host:port`` (0: a free port)."""

    def __init__(self, host: str, port: int, view_json: Callable[[], bytes], access: Access) -> None:
        self.stop = threading.Event()
        handler = type("Handler", (_Handler,), {"view_json": staticmethod(view_json), "access": access,
                                                 "static": load_static(), "stopping": self.stop})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True  # an open event stream never holds the process
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="moodwire-dashboard-http", daemon=True)
        self.access = access

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, host: str) -> str:
        name = f"[{host}]" if ":" in host else host
        query = f"?token={self.access.token}" if self.access.token else ""
        return f"http://{name}:{self.port}/{query}"

    def start(self) -> "DashboardServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(2.0)


class _Handler(BaseHTTPRequestHandler):
    server_version = "moodwire-dashboard"
    view_json: Callable[[], bytes]
    access: Access
    static: dict[str, tuple[bytes, str]]
    stopping: threading.Event

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        url = urlsplit(self.path)
        refusal = self.access.refusal(self.headers.get("Host"), url.query, self.headers.get("Cookie"),
                                      self.server.server_address[1])
        if refusal:
            self._send(HTTPStatus.FORBIDDEN, refusal.encode(), "text/plain; charset=utf-8")
        elif url.path == "/":
            self._send_static("index.html", set_cookie=bool(self.access.token))
        elif url.path.startswith("/static/") and url.path[len("/static/"):] in self.static:
            self._send_static(url.path[len("/static/"):])
        elif url.path == "/api/state":
            self._send(HTTPStatus.OK, self.view_json(), "application/json")
        elif url.path == "/api/events":
            self._stream_events()
        else:
            self._send(HTTPStatus.NOT_FOUND, f"no such page: {url.path} (the dashboard is at /)".encode(),
                       "text/plain; charset=utf-8")

    def _send_static(self, name: str, set_cookie: bool = False) -> None:
        body, content_type = self.static[name]
        extra = {"Set-Cookie": self.access.cookie()} if set_cookie else {}
        self._send(HTTPStatus.OK, body, content_type, extra)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self._headers(content_type, {"Content-Length": str(len(body)), **(extra or {})})
        self.wfile.write(body)

    def _headers(self, content_type: str, extra: dict[str, str]) -> None:
        for name, value in {"Content-Type": content_type, **SECURITY_HEADERS, **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def _stream_events(self) -> None:
        """One ``state`` event per push until the client leaves or the server stops."""
        self.send_response(HTTPStatus.OK)
        self._headers("text/event-stream", {"Connection": "close"})
        self.close_connection = True
        try:
            self.wfile.write(b"retry: 1000\n\n")  # the browser reconnects after a second if cut
            while not self.stopping.is_set():
                self.wfile.write(b"event: state\ndata: " + self.view_json() + b"\n\n")
                self.wfile.flush()
                self.stopping.wait(1.0 / PUSH_HZ)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page was closed

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the signature http.server uses)
        pass  # one line per request every quarter second would bury everything else

    def log_error(self, format: str, *args: object) -> None:  # noqa: A002
        print(f"moodwire dashboard: {self.address_string()}: {format % args}", file=sys.stderr)
