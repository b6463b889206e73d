"""Several hosts, without sockets: the clock offset exchange, the offset file the nodes follow, the bus
host's view of joined hosts, and the settings that place nodes on hosts. tests/test_two_hosts.py runs
the real thing across network namespaces."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from moodwire.pipeline.core import clock
from moodwire.pipeline.core.bus import BusEndpoints, next_port
from moodwire.pipeline.core.config import ConfigError, load_config
from moodwire.pipeline.core.keys import joining_curve, make_keys
from moodwire.pipeline.core.messages import ClockProbe, HostHealth, NodeHealth, SystemHealth
from moodwire.pipeline.runtime.clock_sync import ClockFollower, ClockSample, OffsetEstimator, answer, sample_from
from moodwire.pipeline.runtime.hosts import JoinedHosts
from moodwire.pipeline.runtime.process_table import enabled_nodes

HOURS = 3600 * 10**9
MS = 10**6


def exchange(offset: int, t_sent: int, out_ns: int, back_ns: int, hold_ns: int) -> tuple[ClockProbe, int]:
    """A probe sent at ``t_sent`` (asking host's clock) to a bus host whose clock is ``offset`` ahead; the reply,
    and when it arrives (asking host's clock)."""
    t_received = t_sent + out_ns + offset
    reply = answer(ClockProbe(host="robot", t_sent=t_sent), t_received, t_received + hold_ns)
    return reply, t_sent + out_ns + hold_ns + back_ns


def test_a_probe_gives_the_offset_within_half_its_round_trip():
    offset = 5 * HOURS + 123_456
    reply, t_back = exchange(offset, 10**9, out_ns=3 * MS, back_ns=1 * MS, hold_ns=40 * MS)
    sample = sample_from(reply, t_back)
    assert sample.delay_ns == 4 * MS  # the bus host's 40 ms before answering is not round trip
    assert sample.offset_ns == offset + 1 * MS  # asymmetric: off by half the difference of the two ways
    assert abs(sample.offset_ns - offset) <= sample.delay_ns / 2


def test_the_estimate_is_the_least_delayed_sample_and_its_bound_holds():
    rng = random.Random(7)
    offset = -3 * HOURS
    estimator = OffsetEstimator()
    for k in range(20):
        reply, t_back = exchange(offset, k * 10**9, rng.randint(0, 30 * MS), rng.randint(0, 30 * MS),
                                 rng.randint(0, 50 * MS))
        estimator.add(sample_from(reply, t_back))
        est = estimator.estimate(t_back)
        assert est.offset_ns == min(estimator.samples, key=lambda s: s.delay_ns).offset_ns
        assert abs(est.offset_ns - offset) <= est.uncertainty_ns
    assert len(estimator.samples) == 8


def test_the_uncertainty_grows_with_the_age_of_the_sample():
    estimator = OffsetEstimator()
    estimator.add(ClockSample(offset_ns=0, delay_ns=2 * MS, at_ns=0))
    assert estimator.estimate(0).uncertainty_ns == 1 * MS
    assert estimator.estimate(100 * 10**9).uncertainty_ns == 1 * MS + 1_500_000  # 15 ppm of 100 s


def test_the_follower_takes_only_its_own_replies_and_writes_the_offset(tmp_path):
    follower = ClockFollower("robot", clock.OffsetFile(tmp_path / "offset", create=True))
    probe = follower.probe()
    assert not probe.reply and probe.host == "robot"
    other = answer(ClockProbe(host="camera2", t_sent=probe.t_sent), probe.t_sent + HOURS, probe.t_sent + HOURS)
    assert not follower.on_reply(other, probe.t_sent) and not follower.synced
    assert not follower.on_reply(probe, probe.t_sent)  # a probe, not a reply
    mine = answer(probe, probe.t_sent + HOURS, probe.t_sent + HOURS)
    assert follower.on_reply(mine, probe.t_sent)
    assert follower.synced and clock.OffsetFile(tmp_path / "offset").read() == HOURS
    assert abs(follower.bus_ns() - clock.local_ns() - HOURS) < 10 * MS


def test_a_process_following_the_offset_file_lives_on_the_bus_clock(tmp_path):
    offset_file = clock.OffsetFile(tmp_path / "offset", create=True)
    offset_file.write(-2 * HOURS)
    code = ("import sys, time; from moodwire.pipeline.core import clock; clock.follow_offset_file(sys.argv[1]); "
            "print(clock.now_ns() - time.monotonic_ns(), clock.local_ns() - time.monotonic_ns())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "offset")], capture_output=True, text=True,
                         check=True).stdout.split()
    assert abs(int(out[0]) + 2 * HOURS) < 50 * MS and abs(int(out[1])) < 50 * MS
    assert abs(clock.now_ns() - clock.local_ns()) < 50 * MS  # this process follows no file


def test_a_silent_host_is_unreachable_and_so_are_its_nodes():
    node = NodeHealth(name="video_source", alive=True, pid=7, restarts=0, uptime_s=5, rate_hz=30, host="robot")
    own = HostHealth(name="robot", bus=False, reachable=True, clock_offset_ms=-36e6, clock_uncertainty_ms=0.4)
    hosts = JoinedHosts(timeout_s=3.0)
    hosts.on_report(SystemHealth(nodes=[node], host="robot", hosts=[own]), now_s=100.0)
    assert hosts.nodes(102.0) == [node]
    [seen] = hosts.hosts(102.0)
    assert seen.reachable and seen.report_age_s == 2.0 and seen.clock_uncertainty_ms == 0.4
    [gone] = hosts.nodes(104.0)
    assert (gone.alive, gone.state, gone.rate_hz, gone.host) == (False, "unreachable", 0.0, "robot")
    assert gone.last_error == "host robot unreachable: no report from its manager for 4.0 s"
    assert not hosts.hosts(104.0)[0].reachable
    hosts.on_report(SystemHealth(nodes=[node], host="robot", hosts=[own]), now_s=110.0)
    assert hosts.nodes(110.5) == [node]


@pytest.mark.parametrize("settings, problem", [
    (["manager.nodes=video_source,camera"], "manager.nodes names camera, not in the process table"),
    (["manager.nodes=face,fusion"], "manager.nodes leaves out bus, and bus.join is not set"),
    (["bus.join=tcp://127.0.0.1:5560"], "bus.join is set but manager.nodes is not"),
    (["bus.join=tcp://127.0.0.1:5560", "manager.nodes=bus,video_source"], "manager.nodes has bus, but bus.join"),
])
def test_placing_nodes_on_hosts_refuses_what_cannot_work(settings, problem):
    with pytest.raises(ConfigError, match=problem):
        enabled_nodes(load_config(overrides=settings))


def test_a_host_runs_the_nodes_it_is_given_and_joins_the_bus_on_the_next_port():
    robot = load_config(overrides=["bus.join=tcp://10.1.0.1:5560", "manager.nodes=video_source, audio_source"])
    assert [s.name for s in enabled_nodes(robot)] == ["video_source", "audio_source"]
    assert BusEndpoints.joining(robot.bus) == BusEndpoints("tcp://10.1.0.1:5561", "tcp://10.1.0.1:5560", public="")
    server = load_config(overrides=["manager.nodes=bus,face,fusion"])
    assert [s.name for s in enabled_nodes(server)] == ["bus", "face", "fusion"]
    assert len(enabled_nodes(load_config())) == 9
    with pytest.raises(ConfigError, match="expected tcp://HOST:PORT"):
        next_port("ipc:///tmp/bus")


def test_joining_over_the_network_needs_keys(tmp_path):
    remote = load_config(overrides=["bus.join=tcp://10.1.0.1:5560", "manager.nodes=video_source"])
    with pytest.raises(ConfigError, match="needs CURVE keys: set bus.server_key and bus.client_secret"):
        joining_curve(remote.bus)
    assert joining_curve(load_config(overrides=["bus.join=tcp://127.0.0.1:5560"]).bus) is None
    made = make_keys(tmp_path, client="robot")
    keyed = load_config(overrides=["bus.join=tcp://10.1.0.1:5560", f"bus.server_key={made.server_public}",
                                   f"bus.client_secret={made.client_secret}"])
    curve = joining_curve(keyed.bus)
    assert curve.public_key == made.client_public.read_text().split('public-key = "')[1][:40].encode()
    swapped = load_config(overrides=["bus.join=tcp://10.1.0.1:5560", f"bus.server_key={made.server_public}",
                                     f"bus.client_secret={made.client_public}"])
    with pytest.raises(ConfigError, match="bus.client_secret"):
        joining_curve(swapped.bus)


def test_the_deployment_examples_split_the_pipeline_between_robot_and_server():
    folder = Path(__file__).parent.parent / "examples" / "deployment"
    server, robot = (load_config(folder / f"{side}.toml") for side in ("server", "robot"))
    on_server, on_robot = ({s.name for s in enabled_nodes(c)} for c in (server, robot))
    assert not on_server & on_robot
    assert on_server | on_robot == {s.name for s in enabled_nodes(load_config())}
    assert BusEndpoints.joining(robot.bus).internal_pub.endswith(server.bus.ingest.rsplit(":", 1)[1])
    for side in ("server", "robot"):
        unit = (folder / f"moodwire-{side}.service").read_text()
        assert f"--config /etc/moodwire/{side}.toml" in unit and "KillSignal=SIGINT" in unit
