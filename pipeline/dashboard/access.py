"""Who may reach the dashboard: loopback by default, beyond it only when asked, and then with a token.

The page shows people's emotions and what they said (docs/security.md: personal data), over
plain HTTP with no login. So, like the public bus endpoint (``moodwire.pipeline.core.keys``):

- binding to anything but a loopback address is refused unless ``--allow-remote`` is given;
- with ``--allow-remote`` every request needs a random token (in the URL printed at start, then a
  cookie), since anyone on the network could otherwise read the stream;
- on loopback, requests must name a loopback ``Host``: a web page elsewhere that points its own
  host name at 127.0.0.1 (DNS rebinding) cannot read the dashboard through the user's browser.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from moodwire.pipeline.core.config import ConfigError
from moodwire.pipeline.core.keys import is_local_endpoint

COOKIE = "moodwire_dashboard"


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (bracketed or not) and localhost: the bus's rule (``moodwire.pipeline.core.keys``).

    Anything but a bare address or ``localhost`` (a host name, a URL fragment) is not loopback.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return bare.lower() == "localhost"
    return is_local_endpoint(f"tcp://[{bare}]:0" if ":" in bare else f"tcp://{bare}:0")


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback address without ``allow_remote``; ConfigError that says why and what to do."""
    if not allow_remote and not is_loopback_host(host):
        raise ConfigError(
            f"--host {host} would let other machines see the dashboard: it shows people's emotions and "
            "transcripts over plain HTTP without a login. Keep the default (127.0.0.1) and reach it from "
            "elsewhere through an SSH tunnel (ssh -L 8765:127.0.0.1:8765 HOST), or add --allow-remote "
            "to serve it with a random access token (docs/dashboard.md, Security)")


@dataclass(frozen=True)
class Access:
    """The checks every request passes: the Host header on loopback, the token beyond it."""

    token: str = ""  # "" on loopback: no token needed

    @classmethod
    def for_bind(cls, host: str, allow_remote: bool) -> "Access":
        check_bind(host, allow_remote)
        return cls("" if is_loopback_host(host) else secrets.token_urlsafe(18))

    def refusal(self, host_header: str | None, query: str, cookie_header: str | None, port: int) -> str:
        """Why a request is refused, or ``""`` when it may go on."""
        if not self.token:
            host = host_header or ""
            name = host if host.endswith("]") else host.rsplit(":", 1)[0]  # without the port
            if not name or not is_loopback_host(name):  # a loopback address literal or localhost
                return f"Host {host_header!r} is not a loopback name: open http://127.0.0.1:{port}/"
            return ""
        given = parse_qs(query).get("token", [""])[0] or _cookie(cookie_header)
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return "a valid access token is needed: open the URL moodwire dashboard printed (…/?token=…)"
        return ""

    def cookie(self) -> str:
        """The Set-Cookie value that lets the page's own requests carry the token."""
        return f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"


def _cookie(header: str | None) -> str:
    if not header:
        return ""
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:  # a malformed Cookie header is no token, not an error page
        return ""
    return jar[COOKIE].value if COOKIE in jar else ""
