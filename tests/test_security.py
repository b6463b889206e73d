"""Security over real ZeroMQ sockets: CURVE on the public endpoint, loopback by default, keys, size limits.

The proxy runs in a thread with its own context (a context holds one ZAP
handler); every endpoint is on 127.0.0.1 or ipc. docs/security.md says what
each test stands for.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
import zmq.auth

import moodwire
from moodwire.pipeline.core.bus import BusEndpoints, Publisher, Subscriber, run_proxy
from moodwire.pipeline.core.config import BusConfig, ConfigError
from moodwire.pipeline.core.keys import CurveClient, CurveServer, make_keys, server_curve
from moodwire.pipeline.core.messages import AudioChunk, NodeStats, VideoFrame
from moodwire.pipeline.core.wire import MAX_BUFFER_BYTES, encode
from moodwire.pipeline.runtime.cli import main
from moodwire.pipeline.runtime.recording import read_records
from tests.conftest import MOODWIRE, free_port


def chunk(i: int) -> AudioChunk:
    return AudioChunk(chunk_index=i, sample_rate=16000, samples=np.full(320, i, np.int16))


@pytest.fixture
def keys(tmp_path):
    return make_keys(tmp_path / "keys")


@pytest.fixture
def start_proxy(tmp_path, endpoint):
    """start(curve) -> BusEndpoints: the real proxy in a thread, public on 127.0.0.1, internal on ipc."""
    running: list[tuple[threading.Thread, threading.Event, zmq.Context]] = []

    def start(curve: CurveServer | None = None, ingest: str = "") -> BusEndpoints:
        endpoints = BusEndpoints.in_dir(str(tmp_path), endpoint, ingest)
        ctx, stop = zmq.Context(), threading.Event()
        thread = threading.Thread(target=run_proxy, args=(endpoints,),
                                  kwargs={"context": ctx, "stop": stop, "curve": curve}, daemon=True)
        thread.start()
        running.append((thread, stop, ctx))
        return endpoints

    yield start
    for thread, stop, ctx in running:
        stop.set()
        thread.join(5)
        assert not thread.is_alive(), "the proxy did not stop"
        ctx.destroy(linger=0)


@pytest.fixture
def curve_bus(start_proxy, keys):
    """A proxy whose public endpoint is a CURVE server admitting the client of ``keys``."""
    config = BusConfig(curve_server_secret=str(keys.server_secret), curve_clients=str(keys.client_public.parent))
    return start_proxy(server_curve(config))


def client_keys(keys) -> CurveClient:
    return CurveClient.from_files(keys.server_public, keys.client_secret)


def settle(pub: Publisher, *subs: Subscriber, timeout: float = 10.0) -> None:
    """Send probes until every one of ``subs`` has received one (their subscriptions reached the proxy),
    then drain the probes."""
    waiting = list(subs)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        pub.send("system.node", NodeStats(name="probe", pid=0))
        waiting = [sub for sub in waiting if sub.recv(0.05) is None]
    assert not waiting, f"no probe reached {len(waiting)} subscriber(s) in {timeout} s; handshake: " \
                        f"{[sub.handshake_error for sub in waiting]}"
    for sub in subs:
        while sub.recv(0.05) is not None:
            pass


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def wait_event(monitor: zmq.Socket, event: int, timeout: float = 10.0) -> bool:
    from zmq.utils.monitor import recv_monitor_message

    deadline = time.monotonic() + timeout
    while monitor.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        if recv_monitor_message(monitor)["event"] == event:
            return True
    return False


# ------------------------------------------------------------------ moodwire keys


def test_keys_command_writes_usable_curve_keys_with_private_secrets(tmp_path, capsys):
    folder = tmp_path / "made"
    assert main(["keys", str(folder)]) == 0
    out = capsys.readouterr().out
    secrets = [folder / "server.key_secret", folder / "client.key_secret"]
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        public, secret = zmq.auth.load_certificate(path)
        assert len(public) == 40 and zmq.curve_public(secret) == public
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert zmq.auth.load_certificate(folder / "server.key")[1] is None  # the public half only
    assert f'curve_server_secret = "{folder / "server.key_secret"}"' in out
    assert f'curve_clients = "{folder / "clients"}"' in out and "--server-key server.key" in out

    server_before = (folder / "server.key_secret").read_bytes()
    assert main(["keys", str(folder), "--client", "robot2"]) == 0  # adds a client, keeps the server keypair
    assert (folder / "server.key_secret").read_bytes() == server_before
    assert stat.S_IMODE((folder / "robot2.key_secret").stat().st_mode) == 0o600
    assert not list(folder.glob(".keys-*")), "the temporary folder is left behind"
    curve = server_curve(BusConfig(public="tcp://0.0.0.0:5560", curve_server_secret=str(secrets[0]),
                                   curve_clients=str(folder / "clients")))
    assert len(curve.client_keys) == 2

    assert main(["keys", str(folder), "--client", "robot2"]) == 2
    assert "exists already" in capsys.readouterr().err


# ------------------------------------------------------------------ CURVE on the public endpoint


def test_authenticated_client_receives_and_unauthenticated_client_gets_nothing(curve_bus, keys):
    pub = Publisher(curve_bus.internal_pub, "test")
    plain = Subscriber(curve_bus.public, ["audio.", "system."])
    internal = Subscriber(curve_bus.internal_sub, ["audio.", "system."])  # ipc: no CURVE, as before
    authed = Subscriber(curve_bus.public, ["audio.", "system."], curve=client_keys(keys))
    try:
        settle(pub, authed, internal)
        for i in range(20):
            pub.send("audio.chunk", chunk(i))
        assert [authed.recv(2.0).msg.chunk_index for _ in range(20)] == list(range(20))
        assert [internal.recv(2.0).msg.chunk_index for _ in range(20)] == list(range(20))
        assert authed.handshake_error == ""
        assert plain.recv_raw(0.5) is None  # not one probe nor chunk, while both others got them all
        assert plain.freshness("audio.chunk").received == 0 and plain.freshness("system.node").received == 0
    finally:
        for sock in (plain, internal, authed, pub):
            sock.close()


def test_clients_with_an_unlisted_key_or_the_wrong_server_key_get_nothing(curve_bus, keys):
    good = client_keys(keys)
    stranger = CurveClient(good.server_key, *zmq.curve_keypair())  # right server, key not in the folder
    wrong_server = CurveClient(zmq.curve_keypair()[0], good.public_key, good.secret_key)
    pub = Publisher(curve_bus.internal_pub, "test")
    subs = {name: Subscriber(curve_bus.public, ["audio.", "system."], curve=curve)
            for name, curve in (("good", good), ("stranger", stranger), ("wrong_server", wrong_server))}
    try:
        settle(pub, subs["good"])
        for i in range(5):
            pub.send("audio.chunk", chunk(i))
        assert subs["good"].recv(2.0).msg.chunk_index == 0
        assert wait_for(lambda: subs["stranger"].handshake_error and subs["wrong_server"].handshake_error)
        assert "refused this client's key" in subs["stranger"].handshake_error
        assert "bus.curve_clients" in subs["stranger"].handshake_error
        assert "--server-key" in subs["wrong_server"].handshake_error
        assert subs["stranger"].recv_raw(0.3) is None and subs["wrong_server"].recv_raw(0.3) is None
    finally:
        for sock in (*subs.values(), pub):
            sock.close()


def test_a_client_whose_key_is_refused_says_so_in_its_log(curve_bus, keys, caplog):
    import moodwire

    good = client_keys(keys)
    stranger = CurveClient(good.server_key, *zmq.curve_keypair())
    with moodwire.subscribe("affect.", curve_bus.public, curve=stranger):
        assert wait_for(lambda: any("refused this client's key" in r.getMessage() for r in caplog.records
                                    if r.name == "moodwire"))


@pytest.mark.slow
def test_curve_keys_on_a_running_pipeline_serve_listen_with_keys_only(start_pipeline, keys, tmp_path):
    """The real process tree: the bus node reads the keys from the config; `moodwire listen` uses client keys."""
    pipeline = start_pipeline("--set", "sources.video=none", "--set", "sources.audio=none",
                              "--set", "nodes.fusion=false",
                              "--set", f"bus.curve_server_secret={json.dumps(str(keys.server_secret))}",
                              "--set", f"bus.curve_clients={json.dumps(str(keys.client_public.parent))}")
    listen = [*MOODWIRE, "listen", "system.health", "--json", "--endpoint", pipeline.endpoint]
    with_keys = subprocess.Popen([*listen, "--count", "1", "--duration", "40", "--server-key",
                                  str(keys.server_public), "--client-key", str(keys.client_secret)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=pipeline.env)
    out, err = with_keys.communicate(timeout=60)
    without = subprocess.run([*listen, "--duration", "3"], capture_output=True, text=True, timeout=30,
                             env=pipeline.env)
    assert with_keys.returncode == 0 and without.returncode == 0, err + without.stderr
    assert json.loads(out)["topic"] == "system.health", f"{err}\n{pipeline.output()}"
    assert without.stdout == ""  # health goes out every second; the client without keys saw none of it


class FramePublisher:
    """Publishes small ``video.frame`` messages from a thread (a Publisher lives in its own thread)
    until stopped, so a viewer in the test's main thread has frames to draw."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint, self.stop = endpoint, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pub = Publisher(self.endpoint, "test")
        index = 0
        while not self.stop.wait(1 / 30):
            pub.send("video.frame", VideoFrame(frame_index=index, width=64, height=48, fps_nominal=30.0,
                                               image=np.full((48, 64, 3), 90, np.uint8)))
            index += 1
        pub.close()

    def __enter__(self) -> "FramePublisher":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def test_client_library_gets_messages_with_the_keys_and_nothing_without(curve_bus, keys):
    curve = moodwire.curve_keys(keys.server_public, keys.client_secret)
    pub = Publisher(curve_bus.internal_pub, "test")
    got: list[int] = []
    client = moodwire.Client(curve_bus.public, curve=curve).on("audio.", lambda m: got.append(m.chunk_index))
    try:
        with moodwire.subscribe(["audio.", "system."], curve_bus.public, curve=curve) as keyed, \
                moodwire.subscribe(["audio.", "system."], curve_bus.public) as plain, client.start():
            settle(pub, keyed.subscriber)
            assert wait_for(lambda: pub.send("audio.chunk", chunk(-1)) or got, 10.0), "the keyed Client got nothing"
            while keyed.get(0.2) is not None:  # the Client's warm-up chunks
                pass
            for i in range(10):
                pub.send("audio.chunk", chunk(i))
            assert [keyed.get(2.0).chunk_index for _ in range(10)] == list(range(10))
            assert wait_for(lambda: got[-10:] == list(range(10)))
            assert plain.get(0.5) is None  # not one probe nor chunk, while the keyed ones got them all
            assert plain.subscriber.freshness("audio.chunk").received == 0
    finally:
        pub.close()
    with pytest.raises(ConfigError, match="server_key needs client_key"):
        moodwire.curve_keys(keys.server_public, None)


def test_view_and_record_work_with_the_keys_and_get_nothing_without(curve_bus, keys, tmp_path, capsys):
    view = ["view", "--endpoint", curve_bus.public, "--every", "1"]
    with_keys = ["--server-key", str(keys.server_public), "--client-key", str(keys.client_secret)]
    keyed, plain = tmp_path / "keyed", tmp_path / "plain"
    record = ["record", "--endpoint", curve_bus.public]
    with FramePublisher(curve_bus.internal_pub):
        assert main([*view, "--out", str(plain), "--duration", "2"]) == 0
        assert main([*view, "--out", str(keyed), "--frames", "5", "--duration", "30", *with_keys]) == 0
        assert main([*record, str(tmp_path / "plain.mwrec"), "--topics", "video.", "--duration", "2"]) == 0
        assert main([*record, str(tmp_path / "keyed.mwrec"), "--topics", "video.", "--count", "5", "--duration", "30", *with_keys]) == 0
    assert len(list(keyed.glob("view_*.png"))) == 5, capsys.readouterr().err
    assert list(plain.glob("view_*.png")) == []  # two seconds of frames at 30 Hz, none drawn without keys
    assert [r.topic for r in read_records(tmp_path / "keyed.mwrec")] == ["video.frame"] * 5
    assert list(read_records(tmp_path / "plain.mwrec")) == []
    assert main([*view, "--out", str(plain), "--client-key", str(keys.client_secret)]) == 2
    assert "--client-key needs --server-key" in capsys.readouterr().err


# ------------------------------------------------------------------ exposure needs keys


@pytest.mark.parametrize("public", ["tcp://0.0.0.0:5560", "tcp://*:5560", "tcp://192.168.1.20:5560",
                                    "tcp://eth0:5560", "tcp://[::]:5560", "tcp://robot.local:5560"])
def test_public_endpoint_off_loopback_without_keys_is_refused(public, tmp_path):
    with pytest.raises(ConfigError, match="bus.public") as err:
        server_curve(BusConfig(public=public))
    assert "moodwire keys" in str(err.value) and "bus.curve_server_secret" in str(err.value)
    with pytest.raises(ConfigError, match="moodwire keys"):  # the proxy itself refuses too, before binding
        run_proxy(BusEndpoints.in_dir(str(tmp_path), public), context=zmq.Context.instance())


@pytest.mark.parametrize("public", ["tcp://127.0.0.1:5560", "tcp://localhost:5560", "tcp://[::1]:5560",
                                    "tcp://127.0.0.2:5560", "ipc:///tmp/moodwire.sock"])
def test_loopback_and_ipc_need_no_keys(public):
    assert server_curve(BusConfig(public=public)) is None


def test_default_public_endpoint_is_loopback():
    assert BusConfig().public == "tcp://127.0.0.1:5560"
    assert server_curve(BusConfig()) is None


def test_run_binding_every_interface_without_keys_exits_with_the_fix(isolated_env):
    result = subprocess.run([*MOODWIRE, "run", "--set", f"bus.public=tcp://0.0.0.0:{free_port()}",
                             "--set", "sources.video=synthetic", "--set", "sources.audio=none", "--duration", "1"],
                            capture_output=True, text=True, timeout=60, env=isolated_env)
    assert result.returncode == 2, result.stderr
    assert "bus.public" in result.stderr and "moodwire keys" in result.stderr
    assert "bus.curve_server_secret" in result.stderr and "Traceback" not in result.stderr
    assert not list(Path(isolated_env["XDG_RUNTIME_DIR"]).iterdir()), "a run directory was made: nodes started"


def test_publisher_binds_only_where_this_machine_alone_reaches_it():
    with pytest.raises(ConfigError, match="127.0.0.1"):
        Publisher(f"tcp://0.0.0.0:{free_port()}", "replay", bind=True)


def test_bad_key_settings_name_the_setting_and_the_fix(keys, tmp_path):
    clients = str(keys.client_public.parent)

    def refused(secret: str | Path, folder: str = clients) -> str:
        with pytest.raises(ConfigError) as err:
            server_curve(BusConfig(curve_server_secret=str(secret), curve_clients=folder))
        return str(err.value)

    garbage = tmp_path / "garbage.key_secret"
    garbage.write_text("not a key\n")
    garbage.chmod(0o600)
    loose = tmp_path / "loose.key_secret"
    loose.write_bytes(keys.server_secret.read_bytes())
    loose.chmod(0o644)
    empty = tmp_path / "empty"
    empty.mkdir()

    assert "bus.curve_server_secret" in (msg := refused(tmp_path / "nope")) and "moodwire keys" in msg
    assert "holds only a public key" in refused(keys.server_public)
    assert "not a ZeroMQ key file" in refused(garbage)
    assert "chmod 600" in refused(loose)
    assert "bus.curve_clients" in (msg := refused(keys.server_secret, str(tmp_path / "none"))) \
        and "no such folder" in msg
    assert "holds no client public keys" in refused(keys.server_secret, str(empty))
    with pytest.raises(ConfigError, match="bus.curve_clients is not set.*go together"):
        server_curve(BusConfig(curve_server_secret=str(keys.server_secret)))
    if os.geteuid() != 0:  # root reads any file
        keys.server_secret.chmod(0)
        assert "cannot be read" in refused(keys.server_secret)


def test_listen_with_half_the_client_keys_says_what_is_missing(keys, capsys):
    assert main(["listen", "--server-key", str(keys.server_public), "--count", "1"]) == 2
    assert "--server-key needs --client-key" in capsys.readouterr().err
    assert main(["listen", "--server-key", str(keys.client_secret), "--client-key", str(keys.server_public),
                 "--count", "1"]) == 2
    assert "--client-key" in capsys.readouterr().err


# ------------------------------------------------------------------ size limits at the socket


def test_oversized_frame_from_a_rogue_publisher_is_dropped_and_the_bus_goes_on(start_proxy):
    bus = start_proxy()
    ctx = zmq.Context.instance()
    rogue = ctx.socket(zmq.PUB)
    rogue_events = rogue.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    rogue.connect(bus.internal_pub)
    greedy = ctx.socket(zmq.SUB)  # a public client with a huge subscription
    greedy_events = greedy.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    greedy.setsockopt(zmq.SUBSCRIBE, b"a" * 100_000)
    greedy.connect(bus.public)
    pub = Publisher(bus.internal_pub, "test")
    sub = Subscriber(bus.public, ["audio.", "system."], queue_everything=True)
    try:
        settle(pub, sub)
        header = {"v": 1, "seq": 0, "t_capture": 0, "t_publish": 0, "source": "rogue", "valid": True,
                  "chunk_index": -1, "sample_rate": 16000,
                  "samples": {"$buf": 0, "dtype": "|u1", "shape": [MAX_BUFFER_BYTES + 1]}}
        rogue.send_multipart([b"audio.chunk", msgpack.packb(header), bytes(MAX_BUFFER_BYTES + 1)], copy=False)
        assert wait_event(rogue_events, zmq.EVENT_DISCONNECTED), "the proxy did not drop the rogue publisher"
        assert wait_event(greedy_events, zmq.EVENT_DISCONNECTED), "the proxy did not drop the huge subscription"
        for i in range(10):
            pub.send("audio.chunk", chunk(i))
        got = [sub.recv(2.0) for _ in range(10)]
        assert [g.msg.chunk_index for g in got] == list(range(10))  # the proxy lives and forwards
        assert sub.recv_raw(0.3) is None and sub.malformed == 0  # nothing of the rogue's ever arrived
    finally:
        for sock in (rogue_events, rogue, greedy_events, greedy):
            sock.close(linger=0)
        sub.close()
        pub.close()


def test_subscriber_drops_an_oversized_frame_itself(endpoint):
    """A rogue server (not the proxy, which never forwards such a frame) sends a huge frame straight to a
    subscriber: libzmq drops it unread and, as for any protocol error, closes that connection for good."""
    rogue = zmq.Context.instance().socket(zmq.PUB)
    events = rogue.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
    rogue.bind(endpoint)
    sub = Subscriber(endpoint, ["audio."])
    try:
        assert wait_event(events, zmq.EVENT_ACCEPTED)
        good = encode("audio.chunk", chunk(7))
        got = None
        deadline = time.monotonic() + 10
        while got is None and time.monotonic() < deadline:  # until the subscription has reached the rogue
            rogue.send_multipart(good)
            got = sub.recv(0.05)
        assert got is not None and got.msg.chunk_index == 7
        rogue.send_multipart([b"audio.chunk", b"\x80", bytes(MAX_BUFFER_BYTES + 1)], copy=False)
        assert wait_event(events, zmq.EVENT_DISCONNECTED), "the subscriber did not drop the huge frame"
        rogue.send_multipart(good)
        assert sub.recv_raw(0.5) is None and sub.malformed == 0  # the huge message never reached decoding
        assert sub.freshness("audio.chunk").received == 1
    finally:
        sub.close()
        events.close(linger=0)
        rogue.close(linger=0)


def test_the_ingest_endpoint_admits_only_the_publishers_keys(start_proxy, tmp_path):
    """Nodes of a joined host publish through bus.ingest; a key that may only listen cannot publish there."""
    keys = make_keys(tmp_path / "keys", client="listener")
    robot = make_keys(tmp_path / "keys", client="robot")
    publishers = tmp_path / "publishers"
    publishers.mkdir()
    (publishers / "robot.key").write_bytes(robot.client_public.read_bytes())
    config = BusConfig(curve_server_secret=str(keys.server_secret), curve_clients=str(keys.client_public.parent),
                       curve_publishers=str(publishers))
    curve = server_curve(config)
    assert curve.publisher_keys < curve.client_keys
    endpoints = start_proxy(curve, ingest=f"tcp://127.0.0.1:{free_port()}")
    listener_keys = CurveClient.from_files(keys.server_public, keys.client_secret)
    robot_keys = CurveClient.from_files(keys.server_public, robot.client_secret)
    with Subscriber(endpoints.public, ["audio."], curve=listener_keys) as sub:
        intruder = Publisher(endpoints.ingest, "intruder", curve=listener_keys)
        allowed = Publisher(endpoints.ingest, "robot", curve=robot_keys)
        try:
            deadline, got = time.monotonic() + 10, None
            while got is None and time.monotonic() < deadline:
                intruder.send("audio.chunk", chunk(1))
                allowed.send("audio.chunk", chunk(2))
                got = sub.recv(0.1)
            assert got is not None and got.msg.source == "robot"
            for i in range(20):
                intruder.send("audio.chunk", chunk(1))
            time.sleep(0.5)
            sources = set()
            while (more := sub.recv(0.1)) is not None:
                sources.add(more.msg.source)
            assert "intruder" not in sources
        finally:
            intruder.close()
            allowed.close()
