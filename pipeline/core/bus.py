"""Publisher and subscriber wrappers over pyzmq, and the bus proxy.

Topology: every node's PUB connects to the proxy's XSUB (``internal_pub``);
the proxy's XPUB binds both ``internal_sub`` (nodes) and ``public`` (any
client, any language). A subscriber filters by topic prefix.

Delivery policy is applied on the subscriber side, per topic, from the topic
registry: a receiver thread drains the socket continuously, keeps only the
newest unread message of a LATEST topic and queues every message of a QUEUED
topic. The same thread records freshness (arrival times) per topic.

Other hosts (docs/deployment.md): the XSUB also binds ``ingest``, where nodes
on a joined host publish; they subscribe at ``public``.

Security (docs/security.md): every receiving socket drops frames larger than
the wire limits (``zmq.MAXMSGSIZE``) before allocating them; the public
endpoint stays on loopback unless it is a CURVE server admitting listed
client keys (pipeline/core/keys.py). The internal ipc endpoints live in the run
directory (mode 0700) and carry no CURVE: only this user reaches them.
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlparse

import zmq

from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.config import BusConfig, ConfigError
from moodwire.pipeline.core.keys import CurveClient, CurveServer, check_public_endpoint, is_local_endpoint
from moodwire.pipeline.core.messages import Message
from moodwire.pipeline.core.link_watch import LinkWatch
from moodwire.pipeline.core.topics import TOPICS, Policy, find_topic, get_topic, split_topic, stream_topic
from moodwire.pipeline.core.wire import MAX_BUFFER_BYTES, MAX_HEADER_BYTES, MAX_TOPIC_BYTES, WireError, decode, encode

DEFAULT_PUBLIC: str = BusConfig.public  # the defaults live in the config schema
DEFAULT_HWM: int = BusConfig.hwm
RATE_WINDOW_S = 2.0
SEND_LINGER_MS = 2000  # how long a node that ends waits for its last messages to leave
# libzmq checks ZMQ_MAXMSGSIZE per frame, as it reads the frame's length and before allocating it, and closes
# the connection of a peer that sends more, dropping its partial message: a publisher reconnects by itself, a
# subscriber's own connection stays closed (libzmq does not retry after a protocol error).
MAX_FRAME_BYTES: int = max(MAX_TOPIC_BYTES, MAX_HEADER_BYTES, MAX_BUFFER_BYTES)
# What the XPUB side receives is subscriptions: one byte (subscribe/unsubscribe) and a topic prefix.
MAX_SUBSCRIPTION_BYTES: int = 1024
LINK_EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED  # what a LinkWatch follows
HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


# ZeroMQ's own link keeping, on every socket: a heartbeat each second, a peer silent for 3 s is dropped
# (its queued messages with it, so no stale burst follows a cut), and a dropped connection is retried
# every 0.2 s, backing off to 2 s. On ipc within one host they cost nothing and never fire.
INGEST_DOMAIN = "ingest"  # the ZAP domain of the ingest endpoint: publishers are admitted by their own list
IPC_WAIT_S = 0.02  # how often a socket looks for the bus's ipc socket file before it connects ...
IPC_WAIT_MAX_S = 30.0  # ... and for how long at most (the bus starts within a second or two)
LINK_OPTIONS = ((zmq.HEARTBEAT_IVL, 1000), (zmq.HEARTBEAT_TIMEOUT, 3000), (zmq.HEARTBEAT_TTL, 3000),
                (zmq.RECONNECT_IVL, 200), (zmq.RECONNECT_IVL_MAX, 2000))


@dataclass(frozen=True)
class BusEndpoints:
    """Where publishers connect (``internal_pub``) and subscribers connect; the bus host's proxy also binds
    ``public`` (clients) and, if set, ``ingest`` (publishers on other hosts)."""

    internal_pub: str
    internal_sub: str
    public: str = DEFAULT_PUBLIC
    ingest: str = ""

    @classmethod
    def in_dir(cls, run_dir: str, public: str = DEFAULT_PUBLIC, ingest: str = "") -> "BusEndpoints":
        return cls(f"ipc://{run_dir}/pub.sock", f"ipc://{run_dir}/sub.sock", public, ingest)

    @classmethod
    def joining(cls, bus: BusConfig) -> "BusEndpoints":
        """A joined host's: publish to the bus host's ingest endpoint, subscribe to its public one."""
        return cls(bus.join_ingest or next_port(bus.join), bus.join, public="")


def next_port(endpoint: str) -> str:
    """``tcp://HOST:PORT`` -> ``tcp://HOST:PORT+1`` (where a bus host's ingest endpoint is by convention)."""
    url = urlparse(endpoint)
    if url.scheme != "tcp" or url.port is None:
        raise ConfigError(f"bus.join = {endpoint!r}: expected tcp://HOST:PORT (the bus host's bus.public); "
                          "set bus.join_ingest too if its ingest endpoint is not on PORT + 1")
    return f"tcp://{url.netloc.rsplit(':', 1)[0]}:{url.port + 1}"


def this_host(bus: BusConfig) -> str:
    """The name this host goes by in ``system.health``."""
    return bus.host or socket.gethostname()


ENDPOINT_FORMS = {"tcp": re.compile(r"tcp://(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+):(\d{1,5}|\*)"),
                  "ipc": re.compile(r"ipc://.+"), "inproc": re.compile(r"inproc://.+")}


def check_endpoint(endpoint: str) -> None:
    """ConfigError naming ``endpoint`` and the expected form, unless ZeroMQ can use it."""
    scheme = endpoint.partition("://")[0] if "://" in endpoint else ""
    form = ENDPOINT_FORMS.get(scheme)
    if not isinstance(endpoint, str) or form is None or not form.fullmatch(endpoint):
        hint = f" (did you mean tcp://{endpoint}?)" if scheme == "" and ":" in str(endpoint) else ""
        raise ConfigError(f"endpoint {endpoint!r} is not one ZeroMQ can use: expected tcp://HOST:PORT, e.g. "
                          f"{DEFAULT_PUBLIC}, or ipc:///PATH{hint}")


def wait_for_listener(endpoint: str, stop: threading.Event | None = None) -> None:
    """Until an ipc endpoint's socket file exists (the bus has bound it), ``stop``, or ``IPC_WAIT_MAX_S``
    (then libzmq's own retrying takes over). A socket that connects to an ipc path before the bus binds
    it sometimes comes up connected but deaf, receiving nothing, ever (seen under load with libzmq
    4.3.5: a lossless run's reader got none of the run's messages); other transports connect at once."""
    path = ipc_path(endpoint)
    stop = stop or threading.Event()
    deadline = time.monotonic() + IPC_WAIT_MAX_S
    while path and not os.path.exists(path) and time.monotonic() < deadline and not stop.wait(IPC_WAIT_S):
        pass


def ipc_path(endpoint: str) -> str:
    """The socket file of an ``ipc://`` endpoint ('' for any other)."""
    return endpoint[len("ipc://"):] if endpoint.startswith("ipc://") else ""


def set_link_options(sock: zmq.Socket) -> None:
    for option, value in LINK_OPTIONS:
        sock.setsockopt(option, value)


def set_curve_client(sock: zmq.Socket, curve: CurveClient) -> None:
    sock.setsockopt(zmq.CURVE_SERVERKEY, curve.server_key)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.public_key)
    sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret_key)


def run_proxy(endpoints: BusEndpoints, hwm: int = DEFAULT_HWM, context: zmq.Context | None = None,
              stop: threading.Event | None = None, curve: CurveServer | None = None) -> None:
    """Forward every message from publishers to subscribers until ``stop`` is set (or forever).

    The forwarding runs in a worker thread and the calling thread waits on
    ``stop`` in short steps: a signal may be delivered to one of libzmq's own
    threads, and Python runs its handler only when the main thread executes
    Python code, never while it sits inside ``zmq.proxy``.

    With ``curve`` the public endpoint and the ingest endpoint (only those: libzmq
    copies a socket's security options into each listener when it binds) are
    CURVE servers whose ZAP handler admits the keys of ``curve.client_keys`` at
    the public endpoint and of ``curve.publisher_keys`` at the ingest endpoint.
    Without it either endpoint off loopback is refused (ConfigError). Give each
    CURVE proxy of a process its own ``context``: a context holds one ZAP handler.
    """
    check_public_endpoint(endpoints.public, curve)
    check_public_endpoint(endpoints.ingest, curve, "bus.ingest")
    ctx = context or zmq.Context.instance()
    xsub = ctx.socket(zmq.XSUB)
    xpub = ctx.socket(zmq.XPUB)
    xsub.setsockopt(zmq.RCVHWM, hwm)
    xsub.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    xpub.setsockopt(zmq.SNDHWM, hwm)
    xpub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
    for sock in (xsub, xpub):
        set_link_options(sock)
    auth = None
    try:
        xsub.bind(endpoints.internal_pub)
        xpub.bind(endpoints.internal_sub)
        if curve is not None:
            auth = _start_authenticator(ctx, curve)
            for sock in (xsub, xpub):
                sock.setsockopt(zmq.CURVE_SERVER, 1)
                sock.setsockopt(zmq.CURVE_SECRETKEY, curve.secret_key)
            xsub.setsockopt(zmq.ZAP_DOMAIN, INGEST_DOMAIN.encode())  # its own allow-list
        xpub.bind(endpoints.public)
        if endpoints.ingest:
            xsub.bind(endpoints.ingest)
    except zmq.ZMQError:
        xsub.close(linger=0)
        xpub.close(linger=0)
        if auth is not None:
            auth.stop()
        raise
    control_address = f"inproc://moodwire-proxy-control-{id(xsub)}"
    command = ctx.socket(zmq.PAIR)
    command.bind(control_address)

    def forward() -> None:
        control = ctx.socket(zmq.PAIR)
        control.connect(control_address)
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
        finally:
            for sock in (control, xsub, xpub):
                sock.close(linger=0)

    worker = threading.Thread(target=forward, name="moodwire-proxy", daemon=True)
    worker.start()
    stop = stop or threading.Event()
    while not stop.wait(0.1) and worker.is_alive():
        pass
    command.send(b"TERMINATE")
    worker.join(timeout=2.0)
    command.close(linger=0)
    if auth is not None:
        auth.stop()


@dataclass(frozen=True)
class _AllowedKeys:
    """ZAP credentials provider: a client is admitted when its public key was in the folder at start."""

    keys: frozenset[bytes]

    def callback(self, domain: str, client_key: bytes) -> bool:
        return client_key in self.keys


def _start_authenticator(ctx: zmq.Context, curve: CurveServer) -> Any:
    """pyzmq's ZAP handler thread in ``ctx``; libzmq asks it about every CURVE handshake."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback("*", _AllowedKeys(curve.client_keys))
    auth.configure_curve_callback(INGEST_DOMAIN, _AllowedKeys(curve.publisher_keys))
    return auth


class Publisher:
    """Sends registered topics; fills ``seq`` (per topic), ``t_publish`` and ``source``."""

    def __init__(self, endpoint: str, source: str, *, bind: bool = False,
                 hwm: int = DEFAULT_HWM, context: zmq.Context | None = None,
                 curve: CurveClient | None = None) -> None:
        if bind and not is_local_endpoint(endpoint):
            raise ConfigError(f"a publisher binds only where this machine alone can reach it, not {endpoint!r}: "
                              "use tcp://127.0.0.1:PORT (publishing to other machines goes through the "
                              "pipeline's CURVE public endpoint, docs/security.md)")
        self.source = source
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, 500)
        set_link_options(self._socket)
        if curve is not None:
            set_curve_client(self._socket, curve)
        if bind:
            self._socket.bind(endpoint)
        else:
            wait_for_listener(endpoint)
            self._socket.connect(endpoint)
        self._seq: dict[str, itertools.count] = {}
        self.sent: collections.Counter[str] = collections.Counter()

    def send(self, topic: str, msg: Message) -> None:
        """Publish ``msg``. Its arrays are sent without a copy: do not modify them afterwards."""
        spec = get_topic(topic)
        if not isinstance(msg, spec.msg_type):
            raise TypeError(f"{topic} carries {spec.msg_type.__name__}, not {type(msg).__name__}")
        msg.seq = next(self._seq.setdefault(topic, itertools.count()))
        msg.source = self.source
        msg.t_publish = now_ns()
        self._socket.send_multipart(encode(topic, msg), copy=False)
        self.sent[topic] += 1

    def send_raw(self, frames: list[Any]) -> None:
        """Forward already-encoded frames (replay, fault injection)."""
        self._socket.send_multipart(frames, copy=False)

    def close(self) -> None:
        self._socket.close()


def finish_sends(linger_ms: int = SEND_LINGER_MS) -> None:
    """Close this process's ZeroMQ sockets and wait until their queued messages are sent (at most
    ``linger_ms``). Frames travel without a copy: libzmq's I/O thread reads the array after ``send`` has
    returned, and at interpreter exit Python would free arrays it still reads (EFAULT, "Bad address",
    SIGABRT in the node that sent its last frames just before it ended). Every node process calls this
    before it exits."""
    zmq.Context.instance().destroy(linger=linger_ms)


@dataclass
class TopicFreshness:
    """What a subscriber knows about one topic, measured from arrivals."""

    topic: str
    updated: bool  # a message arrived since the previous freshness() call
    alive: bool    # last arrival within 3 nominal periods (or the event timeout)
    age_s: float | None
    rate_hz: float
    received: int
    superseded: int  # LATEST messages replaced by a newer one before being read
    dropped: int     # QUEUED messages dropped because the queue was full


@dataclass
class _TopicState:
    arrivals: collections.deque = field(default_factory=collections.deque)
    last_ns: int = 0
    received: int = 0
    superseded: int = 0
    dropped: int = 0
    updated: bool = False


# a message waiting in a Subscriber: topic, frames, t_receive, and the message if already decoded
_Pending = tuple[str, list, int, Message | None]


@dataclass
class Received:
    topic: str  # as on the wire: NAME, or NAME@STREAM
    msg: Message
    t_receive: int

    @property
    def name(self) -> str:
        """The registered topic name, whatever the stream."""
        return split_topic(self.topic)[0]

    @property
    def stream(self) -> str:
        """The stream id ("" for the default stream)."""
        return split_topic(self.topic)[1]


class Subscriber:
    """Receives topics by prefix with per-topic delivery policy and freshness.

    ``recv`` never raises on a malformed message: it counts it in
    ``malformed``, keeps the text in ``last_error`` and goes on.

    ``stream``: only that stream's messages ("" the default stream's; None, every stream's).

    With ``curve`` it connects as a CURVE client; a refused handshake leaves
    no error in ``recv`` (libzmq keeps retrying) but its reason in
    ``handshake_error``, so a user learns why nothing arrives.
    """

    def __init__(self, endpoint: str, prefixes: Iterable[str] = ("",), *,
                 queue_limit: int = 10000, queue_everything: bool = False,
                 hwm: int = DEFAULT_HWM, context: zmq.Context | None = None,
                 curve: CurveClient | None = None, stream: str | None = None,
                 watch: LinkWatch | None = None) -> None:
        check_endpoint(endpoint)
        self._endpoint = endpoint
        self._watch = watch
        self._curve = curve
        self.handshake_error = ""
        self._stream = stream
        # a whole topic name on one stream is subscribed as such (the others' frames do not travel); any
        # other prefix takes every stream's, and _store keeps only this stream's
        self._prefixes = [stream_topic(p, stream) if stream and p in TOPICS and TOPICS[p].per_stream else p
                          for p in prefixes]
        self._queue_limit = queue_limit
        self._queue_everything = queue_everything
        self._hwm = hwm
        self._ctx = context or zmq.Context.instance()
        # (topic, frames, t_receive, the message where the receiver thread already decoded it: latest-only topics)
        self._pending: collections.OrderedDict[Any, _Pending] = collections.OrderedDict()
        self._states: dict[str, _TopicState] = collections.defaultdict(_TopicState)
        self._queued_count = 0
        self._keys = itertools.count()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.malformed = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._receive_loop, name="moodwire-sub", daemon=True)
        self._thread.start()
        if not ipc_path(endpoint) or os.path.exists(ipc_path(endpoint)):  # else it connects once the bus is up
            self._ready.wait(5.0)

    # ------------------------------------------------------------ consumer side

    def recv(self, timeout: float | None = None) -> Received | None:
        """Next message in arrival order, or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            item = self._next(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if item is None:
                return None
            topic, frames, t_receive, msg = item
            if msg is None:
                msg = self._decoded(frames)
            if msg is not None:
                return Received(topic, msg, t_receive)

    def recv_raw(self, timeout: float | None = None) -> tuple[str, list, int] | None:
        """Next undecoded ``(topic, frames, t_receive)``, or None on timeout."""
        item = self._next(timeout)
        return None if item is None else item[:3]

    def _next(self, timeout: float | None) -> _Pending | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending or self._stop.is_set(), timeout):
                return None
            if not self._pending:
                return None
            key, item = self._pending.popitem(last=False)
            if isinstance(key, int):
                self._queued_count -= 1
            return item

    def freshness(self, topic: str) -> TopicFreshness:
        now = now_ns()
        with self._cond:
            st = self._states[topic]
            updated, st.updated = st.updated, False
            age = (now - st.last_ns) / 1e9 if st.received else None
            rate = _rate(st.arrivals, now)
            received, superseded, dropped = st.received, st.superseded, st.dropped
        spec = find_topic(topic)
        window = spec.alive_within_s() if spec else 10.0
        alive = age is not None and age <= window
        return TopicFreshness(topic, updated, alive, age, rate, received, superseded, dropped)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ receiver thread

    def _receive_loop(self) -> None:
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, self._hwm)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        set_link_options(sock)
        if self._curve is not None:
            set_curve_client(sock, self._curve)
        events = (HANDSHAKE_EVENTS if self._curve is not None else 0) | (LINK_EVENTS if self._watch else 0)
        monitor = sock.get_monitor_socket(events) if events else None
        for prefix in self._prefixes:
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        wait_for_listener(self._endpoint, self._stop)
        sock.connect(self._endpoint)
        self._ready.set()
        try:
            while not self._stop.is_set():
                if monitor is not None:
                    self._check_link(monitor)
                if self._watch is not None:
                    self._watch.tick()
                if not sock.poll(50):
                    continue
                while True:
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._store(frames)
        finally:
            if monitor is not None:
                sock.disable_monitor()
                monitor.close(linger=0)
            sock.close(linger=0)

    def _check_link(self, monitor: zmq.Socket) -> None:
        """The monitor's events: a CURVE handshake's outcome (``handshake_error``), and for a ``LinkWatch``
        whether the socket is connected."""
        from zmq.utils.monitor import recv_monitor_message

        while monitor.poll(0):
            event = recv_monitor_message(monitor)
            kind, value = event["event"], event["value"]
            if kind & HANDSHAKE_EVENTS:
                self.handshake_error = _handshake_problem(kind, value, self._endpoint)
                if self.handshake_error and self._watch is not None:
                    self._watch.on_refused(self.handshake_error)
            elif self._watch is not None:
                self._watch.on_connected(kind == zmq.EVENT_CONNECTED)

    def _store(self, frames: list) -> None:
        t = now_ns()
        try:
            topic = frames[0].bytes.decode("utf-8")
        except UnicodeDecodeError:
            topic = "<undecodable>"
        if self._watch is not None:
            self._watch.on_message(topic)
        spec = find_topic(topic)
        if self._stream is not None and split_topic(topic)[1] != self._stream and (spec is None or spec.per_stream):
            return  # another stream's (the prefix subscription cannot tell cam2 from cam20)
        latest = spec is not None and spec.policy is Policy.LATEST and not self._queue_everything
        # a latest-only message is decoded here, so a malformed one never displaces the newest good one (a
        # flood of junk would starve us); recv() then uses this decoded message
        msg = self._decoded(frames) if latest else None
        if latest and msg is None:
            return
        with self._cond:
            st = self._states[topic]
            st.received += 1
            st.last_ns = t
            st.updated = True
            st.arrivals.append(t)
            while st.arrivals and t - st.arrivals[0] > RATE_WINDOW_S * 1e9:
                st.arrivals.popleft()
            if latest:
                if self._pending.pop(topic, None) is not None:
                    st.superseded += 1
                self._pending[topic] = (topic, frames, t, msg)
            else:
                self._enqueue(topic, st, (topic, frames, t, None))
            self._cond.notify()

    def _decoded(self, frames: list) -> Message | None:
        """The message, or None for a malformed one (counted in ``malformed``, its error in ``last_error``)."""
        try:
            return decode(frames)[1]
        except WireError as exc:
            with self._cond:
                self.malformed += 1
                self.last_error = str(exc)
            return None

    def _enqueue(self, topic: str, st: _TopicState, item: _Pending) -> None:
        if self._queued_count >= self._queue_limit:
            oldest = next((k for k in self._pending if isinstance(k, int)), None)
            if oldest is not None:
                dropped_topic = self._pending.pop(oldest)[0]
                self._states[dropped_topic].dropped += 1
                self._queued_count -= 1
        self._pending[next(self._keys)] = item
        self._queued_count += 1


def _handshake_problem(event: int, value: int, endpoint: str) -> str:
    """What a CURVE client's handshake event means for the user ('' when it succeeded)."""
    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return ""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return (f"{endpoint} refused this client's key (ZAP status {value}): put the client's public key "
                "(NAME.key) in the pipeline's bus.curve_clients folder and restart the pipeline")
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return (f"{endpoint} does not speak CURVE (protocol error {value:#x}): is bus.curve_server_secret set on "
                "the pipeline?")
    return (f"{endpoint} dropped the CURVE handshake: is --server-key that pipeline's server.key (its "
            "bus.curve_server_secret's public half)?")


def _rate(arrivals: collections.deque, now: int) -> float:
    """Messages per second over the arrivals kept in the rate window."""
    recent = [a for a in arrivals if now - a <= RATE_WINDOW_S * 1e9]
    if len(recent) < 2:
        return 0.0
    span = (recent[-1] - recent[0]) / 1e9
    return (len(recent) - 1) / span if span > 0 else 0.0

