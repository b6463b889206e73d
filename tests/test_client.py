"""The client library (moodwire/) and its examples, over real ZeroMQ sockets.

A real ``moodwire.pipeline.core.bus.Publisher`` binds a free port and sends real messages; the client connects
to it as it would to ``moodwire run``'s public endpoint. One slow test runs a real pipeline.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

import pytest

import moodwire
from moodwire.pipeline.core.bus import Publisher
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.link_watch import LinkWatch
from moodwire.pipeline.core.messages import (AffectFrame, AffectUtterance, Message, ModalityInput, PersonAffect,
                                             SystemHealth)
from moodwire.pipeline.core.topics import UnknownPrefixError

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


# ---------------------------------------------------------------- real messages


def probs_for(label: str) -> list[float]:
    return [0.64 if name == label else 0.06 for name in LABELS]


def person(track_id: int | None, valence: float, arousal: float = 0.1, confidence: float = 0.6,
           label: str = "happy") -> PersonAffect:
    return PersonAffect(track_id=track_id, labels=list(LABELS), probs=probs_for(label), valence=valence,
                        arousal=arousal, confidence=confidence, modalities={"face": 1.0},
                        valence_raw=valence, arousal_raw=arousal,
                        inputs=[ModalityInput(modality="face", present=True, weight=1.0, confidence=confidence)])


def frame(index: int, persons: list[PersonAffect], age_s: float = 0.0) -> AffectFrame:
    return AffectFrame(frame_index=index, t_capture=now_ns() - int(age_s * 1e9), persons=persons,
                       missing=["voice", "text"], notes={"voice": "silence", "text": "silence"},
                       fusion_backend="test")


def modality(name: str, present: bool) -> ModalityInput:
    return ModalityInput(modality=name, present=present, weight=0.5 if present else 0.0,
                         reason="" if present else "not heard")


def utterance(uid: int, text: str, speaker: int | None, label: str, valence: float, arousal: float,
              present: tuple[str, ...] = ("face", "voice", "text")) -> AffectUtterance:
    t_end = now_ns()
    return AffectUtterance(utterance_id=uid, t_start=t_end - 2_000_000_000, t_end=t_end, t_capture=t_end,
                           text=text, labels=list(LABELS), probs=probs_for(label), valence=valence,
                           arousal=arousal, confidence=0.55,
                           inputs=[modality(m, m in present) for m in ("face", "voice", "text")],
                           missing=[m for m in ("face", "voice", "text") if m not in present],
                           speaker_track_id=speaker, speaker_reason="test")


UTTERANCES = [  # (text, speaker, label, valence, arousal, modalities present)
    ("I am so glad you came", 3, "happy", 0.61234, 0.3, ("face", "voice", "text")),
    ('Well, "fine", if you say so', None, "angry", -0.4, 0.55, ("voice", "text")),
    ("this is the end", 7, "sad", -0.25, -0.35, ("face", "voice")),
]


def make_utterances() -> list[AffectUtterance]:
    return [utterance(1000 + i, *u) for i, u in enumerate(UTTERANCES)]


# ---------------------------------------------------------------- sockets


@pytest.fixture
def publisher(endpoint) -> Iterator[Publisher]:
    pub = Publisher(endpoint, "test_publisher", bind=True)
    yield pub
    pub.close()


def until(condition: Callable[[], object], timeout: float, step: Callable[[], None] = lambda: None,
          what: str = "condition") -> None:
    """Call ``step`` every 20 ms until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        step()
        time.sleep(0.02)


class FrameStream:
    """A background thread publishing ``affect.frame`` at ``hz`` from ``make(index)``, like fusion does."""

    def __init__(self, pub: Publisher, make: Callable[[int], AffectFrame | None], hz: float = 30.0) -> None:
        self.pub, self.make, self.period = pub, make, 1.0 / hz
        self.sent: dict[int, AffectFrame] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "FrameStream":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        index = 0
        while not self._stop.wait(self.period):
            msg = self.make(index)
            if msg is not None:  # None: a pause in the stream
                self.pub.send("affect.frame", msg)
                self.sent[msg.frame_index] = msg
            index += 1


def warm_up(pub: Publisher, seen: Callable[[], bool]) -> None:
    """Publish frames until the subscriber shows it receives them (ZeroMQ's subscription is asynchronous)."""
    until(seen, 10.0, lambda: pub.send("affect.frame", frame(-1, [])), "the subscription reaching the publisher")


# ---------------------------------------------------------------- subscribe()


def test_subscribe_yields_the_published_messages_typed_and_in_order(publisher, endpoint):
    with moodwire.subscribe("affect.", endpoint, queue_everything=True) as stream:
        warm_up(publisher, lambda: isinstance(stream.get(0), AffectFrame))
        while stream.get(0.2) is not None:  # drain the warm-up frames
            pass
        sent: list[Message] = [*make_utterances(), frame(5, [person(1, 0.5), person(None, -0.2)])]
        for msg in sent:
            publisher.send("affect.utterance" if isinstance(msg, AffectUtterance) else "affect.frame", msg)
        got = list(stream.messages(idle_timeout=1.0))
    assert [type(m) for m in got] == [AffectUtterance] * 3 + [AffectFrame]
    assert got == sent  # every field, nested persons and inputs included, as published
    assert got[0].source == "test_publisher" and [m.seq for m in got[:3]] == [0, 1, 2]
    assert stream.get(0) is None and list(stream) == []  # closed: nothing more, no blocking


def test_subscribe_filters_by_prefix(publisher, endpoint):
    with moodwire.subscribe("affect.utterance", endpoint) as stream:
        first = make_utterances()[0]
        until(lambda: stream.get(0) is not None, 10.0,
              lambda: publisher.send("affect.utterance", first), "the subscription")
        while stream.get(0.2) is not None:
            pass
        publisher.send("affect.frame", frame(1, [person(1, 0.5)]))
        publisher.send("affect.utterance", make_utterances()[1])
        got = list(stream.messages(idle_timeout=0.5))
    assert [type(m) for m in got] == [AffectUtterance] and got[0].text == UTTERANCES[1][0]


def test_subscribe_refuses_an_empty_prefix_list(endpoint):
    with pytest.raises(ValueError, match="at least one topic prefix"):
        moodwire.subscribe([], endpoint)


# ---------------------------------------------------------------- Latest


def test_latest_gives_the_newest_estimate_with_its_age_and_marks_it_stale(publisher, endpoint):
    with moodwire.Latest(endpoint, max_age_s=1.0) as latest:
        assert latest.person() is None and latest.frame() is None and latest.frame_age_s() is None
        warm_up(publisher, lambda: latest.frame() is not None)
        for i in range(5):  # the newest wins; two people, track 2 the more confident
            publisher.send("affect.frame", frame(i, [person(1, 0.1 * i, confidence=0.3),
                                                     person(2, -0.1 * i, confidence=0.8, label="sad")], age_s=0.05))
        until(lambda: latest.frame().frame_index == 4, 5.0, what="frame 4 arriving")
        before = now_ns()
        est = latest.person()
        after = now_ns()
        sent_t = latest.frame().t_capture
        assert (est.track_id, est.frame_index, est.label) == (2, 4, "sad")
        assert est.valence == pytest.approx(-0.4) and est.confidence == 0.8 and not est.stale
        assert (before - sent_t) / 1e9 <= est.age_s <= (after - sent_t) / 1e9 and est.age_s >= 0.05
        assert latest.person(track_id=1).valence == pytest.approx(0.4)
        assert latest.person(track_id=99) is None  # not in view
        assert [e.track_id for e in latest.persons()] == [1, 2]

        time.sleep(1.0)  # the stream stops: the last estimate grows old
        old = latest.person()
        assert old.stale and old.age_s > 1.0 and old.frame_index == 4
        assert not latest.person(max_age_s=30.0).stale  # the caller's own max age

        publisher.send("affect.frame", AffectFrame(frame_index=5, t_capture=now_ns(), valid=False))
        until(lambda: latest.frame().frame_index == 5, 5.0, what="the invalid frame arriving")
        assert latest.person() is None  # no usable estimate now: not the old one


def test_latest_is_safe_to_read_from_several_threads(publisher, endpoint):
    errors: list[BaseException] = []
    seen: list[list[int]] = [[] for _ in range(4)]

    def reader(out: list[int], latest: moodwire.Latest, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                est = latest.person()
                if est is not None and est.frame_index >= 0:
                    out.append(est.frame_index)
                time.sleep(0.001)
        except BaseException as exc:  # reported below
            errors.append(exc)

    with moodwire.Latest(endpoint) as latest:
        warm_up(publisher, lambda: latest.frame() is not None)
        stop = threading.Event()
        threads = [threading.Thread(target=reader, args=(out, latest, stop)) for out in seen]
        for t in threads:
            t.start()
        with FrameStream(publisher, lambda i: frame(i, [person(1, 0.2)]), hz=200):
            time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(2.0)
    assert not errors
    for out in seen:  # each reader saw frames, never going back in time
        assert len(set(out)) > 10 and out == sorted(out)


def test_latest_refuses_a_non_positive_max_age(endpoint):
    with pytest.raises(ValueError, match="max_age_s must be positive"):
        moodwire.Latest(endpoint, max_age_s=0)


# ---------------------------------------------------------------- callbacks


def test_callbacks_fire_for_their_prefix_only(publisher, endpoint):
    utterances: list[Message] = []
    everything: list[Message] = []
    client = moodwire.Client(endpoint).on("affect.utterance", utterances.append).on("affect.", everything.append)
    client.start()
    try:
        warm_up(publisher, lambda: bool(everything))
        sent = make_utterances()[:2]
        for msg in sent:
            publisher.send("affect.utterance", msg)
        until(lambda: len(utterances) == 2, 5.0, what="two utterance callbacks")
        with pytest.raises(RuntimeError, match="before run"):  # while running, the subscription is fixed
            client.on("affect.frame", print)
    finally:
        client.stop()
    assert utterances == sent
    assert sent[0] in everything and sent[1] in everything and any(isinstance(m, AffectFrame) for m in everything)


def test_a_callback_can_stop_run_and_its_exception_reaches_the_caller(publisher, endpoint):
    calls: list[int] = []
    client = moodwire.on("affect.frame", lambda f: (calls.append(f.frame_index), client.stop()), endpoint)
    with FrameStream(publisher, lambda i: frame(i, [])):
        client.run(seconds=20)  # returns at the first frame, by the callback's stop()
    assert len(calls) == 1

    def boom(msg: Message) -> None:
        raise RuntimeError("callback failed")

    failing = moodwire.on("affect.frame", boom, endpoint)
    with FrameStream(publisher, lambda i: frame(i, [])):
        with pytest.raises(RuntimeError, match="callback failed"):
            failing.run(seconds=20)
        failing.start()
        until(lambda: failing._thread is not None and not failing._thread.is_alive(), 10.0,
              what="the failing client stopping")
        with pytest.raises(RuntimeError, match="callback failed"):
            failing.stop()


# ---------------------------------------------------------------- failures that speak, new runs


@pytest.mark.parametrize("make", [lambda e: moodwire.subscribe("affect.", e), lambda e: moodwire.Latest(e),
                                  lambda e: moodwire.Client(e)], ids=["subscribe", "Latest", "Client"])
def test_an_endpoint_zeromq_cannot_use_is_refused_at_the_call_with_the_form_expected(make):
    with pytest.raises(moodwire.ConfigError, match=r"'localhost:5560' .*tcp://HOST:PORT.*did you mean "
                                                   r"tcp://localhost:5560"):
        make("localhost:5560")


def test_a_prefix_no_topic_starts_with_is_refused_with_the_topics(endpoint):
    for prefix in ("affect.utterances", "afect."):
        with pytest.raises(UnknownPrefixError, match=rf"no topic starts with '{prefix}'.*affect.utterance, "):
            moodwire.subscribe(prefix, endpoint)
    with pytest.raises(UnknownPrefixError):
        moodwire.Client(endpoint).on("affect.utterances", print)
    moodwire.subscribe(["affect.utterance@cam2", "system.", ""], endpoint).close()  # a stream's topic, a prefix


def test_with_nothing_running_a_client_says_what_it_waits_for_and_how_to_check(endpoint, caplog):
    with moodwire.Latest(endpoint) as latest:
        assert not latest.wait(0.5)
    notes = [r.getMessage() for r in caplog.records if r.name == "moodwire"]
    assert len(notes) == 1 and f"no connection to {endpoint}" in notes[0], notes
    assert f"moodwire listen system.health --endpoint {endpoint}" in notes[0]


def test_a_stream_connected_but_silent_says_so_once(publisher, endpoint):
    said: list[str] = []
    watch = LinkWatch(endpoint, ["affect.utterance"], said.append, after_s=0.3)
    with moodwire.subscribe("affect.utterance", endpoint, watch=watch) as stream:
        assert stream.get(timeout=1.0) is None
    assert len(said) == 1 and f"connected to {endpoint}, but nothing under 'affect.utterance'" in said[0], said


def test_listen_exits_non_zero_on_an_unusable_endpoint_or_an_unknown_prefix():
    for args, problem in ((["affect.", "--endpoint", "localhost:5560"], "tcp://HOST:PORT"),
                          (["afect."], "no topic starts with 'afect.'")):
        done = subprocess.run([sys.executable, "-m", "moodwire.pipeline.runtime.cli", "listen", *args, "--count", "1"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and problem in done.stderr and "Traceback" not in done.stderr, done.stderr


def health(run_id: str) -> SystemHealth:
    return SystemHealth(run_id=run_id, t_capture=now_ns())


def test_a_new_run_is_told_to_client_callbacks_and_to_latest(publisher, endpoint):
    runs: list[str] = []
    client = moodwire.Client(endpoint).on("affect.frame", lambda m: None).on_run(runs.append).start()
    with moodwire.Latest(endpoint) as latest:
        until(lambda: runs and latest.run_id == "run1", 10.0, lambda: publisher.send("system.health", health("run1")))
        assert not latest.run_changed()  # the first run seen is not a change
        warm_up(publisher, lambda: latest.frame() is not None)
        until(lambda: latest.run_id == "run2", 10.0, lambda: publisher.send("system.health", health("run2")))
        assert latest.run_changed() and not latest.run_changed()  # told once
        assert latest.frame() is None  # the old run's frame is gone
        until(lambda: runs[-1:] == ["run2"], 10.0, what="the client's on_run")
    client.stop()
    assert runs == ["run1", "run2"]


def test_run_for_seconds_returns_and_a_client_needs_callbacks(endpoint):
    t0 = time.monotonic()
    moodwire.on("affect.frame", print, endpoint).run(seconds=0.3)  # nothing published: just returns
    assert 0.3 <= time.monotonic() - t0 < 5.0
    with pytest.raises(ValueError, match="no callbacks"):
        moodwire.Client(endpoint).run(seconds=0.1)
    with pytest.raises(TypeError, match="must be callable"):
        moodwire.Client(endpoint).on("affect.", "print")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the examples


def example_env() -> dict[str, str]:
    """The examples import ``moodwire`` as an installed package; from a checkout, put it on the path."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1")


def start_example(name: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "examples" / name), *args], env=example_env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines_of(stream) -> "queue.Queue[str]":
    """A pipe's lines, read by a thread, so a test can wait for one with a timeout."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in stream], daemon=True).start()
    return lines


def interrupt(proc: subprocess.Popen) -> tuple[int, str]:
    """Ctrl-C, as a user would; returns the exit code and what it wrote on stderr."""
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
    return code, proc.stderr.read()


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_utterance_logger_writes_one_row_per_published_utterance(publisher, endpoint, tmp_path):
    out = tmp_path / "utterances.csv"
    proc = start_example("utterance_logger.py", str(out), "--endpoint", endpoint, "--seconds", "90")
    try:
        def rows() -> list[dict[str, str]]:
            return list(csv.DictReader(out.open(newline=""))) if out.exists() else []

        warm = utterance(1, "warm-up", None, "neutral", 0.0, 0.0)  # until the logger has subscribed
        until(lambda: rows(), 30.0, lambda: publisher.send("affect.utterance", warm), "the logger's first row")
        sent = make_utterances()
        for msg in sent:
            publisher.send("affect.utterance", msg)
        until(lambda: len([r for r in rows() if r["text"] != "warm-up"]) == len(sent), 10.0,
              what="a row per utterance")
    finally:
        code, err = interrupt(proc)
    assert code == 0, err
    got = [r for r in rows() if r["text"] != "warm-up"]
    assert list(got[0]) == ["time", "duration_s", "speaker_track_id", "text", "top_emotion", "valence", "arousal",
                            "confidence", "modalities"]
    for row, msg, (text, speaker, label, valence, arousal, present) in zip(got, sent, UTTERANCES):
        assert row["text"] == text and row["top_emotion"] == label
        assert row["speaker_track_id"] == ("" if speaker is None else str(speaker))
        assert float(row["valence"]) == pytest.approx(valence, abs=5e-5)
        assert float(row["arousal"]) == pytest.approx(arousal, abs=5e-5)
        assert float(row["confidence"]) == pytest.approx(0.55) and row["duration_s"] == "2.00"
        assert row["modalities"] == "+".join(present)
        started = datetime.fromisoformat(row["time"])  # wall clock at the utterance's start: 2 s ago
        assert abs((datetime.now().astimezone() - started).total_seconds() - 2.0) < 30
    assert f"wrote {len(rows())} utterance(s)" in err  # the warm-up rows too


def test_robot_policy_has_hysteresis():
    robot = load_example("robot_behaviour")
    th = robot.Thresholds()

    def est(valence: float, arousal: float = 0.0, confidence: float = 0.8, stale: bool = False):
        return moodwire.PersonEstimate(person(1, valence, arousal, confidence), 0, 0, 0.0, stale)

    state, seen = robot.IDLE, []
    for v in (0.2, 0.35, 0.2, 0.12, 0.05, -0.2, -0.35, -0.2, -0.12, -0.05):
        state = robot.next_behaviour(state, est(v), th)
        seen.append(state)
    assert seen == ["idle", "approach", "approach", "approach", "idle",
                    "idle", "back off", "back off", "back off", "idle"]
    assert robot.next_behaviour(robot.IDLE, est(-0.05, arousal=0.8), th) == robot.BACK_OFF  # agitated
    assert robot.next_behaviour(robot.BACK_OFF, est(-0.05, arousal=0.6), th) == robot.BACK_OFF
    assert robot.next_behaviour(robot.BACK_OFF, est(-0.05, arousal=0.4), th) == robot.IDLE
    assert robot.next_behaviour(robot.APPROACH, est(0.9, stale=True), th) == robot.IDLE
    assert robot.next_behaviour(robot.APPROACH, est(0.9, confidence=0.1), th) == robot.IDLE
    assert robot.next_behaviour(robot.APPROACH, None, th) == robot.IDLE


def test_robot_example_approaches_backs_off_and_idles_on_a_stale_stream(publisher, endpoint):
    proc = start_example("robot_behaviour.py", "--endpoint", endpoint, "--seconds", "90", "--rate", "20",
                         "--max-age", "0.5")
    out = lines_of(proc.stdout)
    printed: list[str] = []

    def wait_line(word: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = out.get(timeout=0.1)
            except queue.Empty:
                continue
            printed.append(line)
            if line.split()[1:3][:len(word.split())] == word.split():
                return line
        raise AssertionError(f"no {word!r} line in {timeout} s; printed: {printed}; stderr: {proc.stderr.read()}")

    phase = {"valence": 0.6}  # what the published person feels; None: the stream stops
    try:
        wait_line("idle", 30.0)  # started (the first line)
        with FrameStream(publisher, lambda i: None if phase["valence"] is None else frame(
                i, [person(4, phase["valence"], 0.2, 0.9), person(None, -0.9, 0.9, 0.2)])):
            approach = wait_line("approach", 20.0)
            phase["valence"] = -0.6
            back_off = wait_line("back off", 10.0)
            phase["valence"] = None
            idle = wait_line("idle", 10.0)
    finally:
        code, err = interrupt(proc)
    assert code == 0, err
    assert "person 4: happy valence +0.60" in approach  # the confident person, not the voice-only one
    assert "person 4: happy valence -0.60" in back_off
    assert "stale stream" in idle


# ---------------------------------------------------------------- a real pipeline


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_client_reads_a_real_pipeline(start_pipeline):
    pipeline = start_pipeline("--config", "configs/sample.toml", "--set", "sources.audio=none")
    pipeline.wait_healthy(timeout=150)
    with moodwire.subscribe("affect.frame", pipeline.endpoint) as stream:
        frames = [m for _, m in zip(range(10), stream.messages(idle_timeout=10.0))]
    assert len(frames) == 10 and all(isinstance(f, AffectFrame) and f.source == "fusion" for f in frames)
    with moodwire.Latest(pipeline.endpoint, max_age_s=2.0) as latest:
        assert latest.wait(10.0)
        deadline = time.monotonic() + 60
        while (est := latest.person()) is None or est.track_id is None:  # the sample clip's drawn face
            assert time.monotonic() < deadline, f"no face in 60 s: {latest.frame()}"
            time.sleep(0.05)
    assert not est.stale and 0 < est.age_s < 2.0 and est.label in est.person.labels
    assert -1.0 <= est.valence <= 1.0 and -1.0 <= est.arousal <= 1.0 and 0.0 <= est.confidence <= 1.0
