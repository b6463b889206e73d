"""``moodwire dashboard``: the state it folds the stream into, who may reach it, its HTTP endpoints on a
real server fed by a real publisher, and (slow) the page in a real headless Chromium on a running
pipeline, checked against the stream the test receives itself."""

from __future__ import annotations

import io
import json
import math
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from typing import Callable, Iterator

import pytest

from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.bus import Publisher, Subscriber
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.config import ConfigError
from moodwire.pipeline.core.messages import (AffectFrame, AffectUtterance, FaceTracks, ModalityInput, NodeHealth,
                                             PersonAffect, SystemHealth, Transcript)
from moodwire.pipeline.dashboard.access import Access, check_bind
from moodwire.pipeline.dashboard.run import DashboardOptions, run_dashboard, serving
from moodwire.pipeline.dashboard.server import DashboardServer
from moodwire.pipeline.dashboard.state import SERIES_S, STALE_S, TRAIL_S, DashboardState
from tests.conftest import MOODWIRE, free_port

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
S = 1_000_000_000  # ns
T0 = 1_000 * S


def probs_for(label: str) -> list[float]:
    return [0.64 if name == label else 0.06 for name in LABELS]


def person(track_id: int | None, valence: float, arousal: float = 0.2, label: str = "happy") -> PersonAffect:
    return PersonAffect(track_id=track_id, labels=list(LABELS), probs=probs_for(label), valence=valence,
                        arousal=arousal, confidence=0.5, modalities={"face": 1.0}, valence_raw=valence + 0.1,
                        arousal_raw=arousal,
                        inputs=[ModalityInput(modality="face", present=True, weight=1.0, confidence=0.5),
                                ModalityInput(modality="voice", present=False, reason="silence")])


def frame(index: int, persons: list[PersonAffect], t: int, latency_ms: float = 20.0) -> AffectFrame:
    return AffectFrame(frame_index=index, t_capture=t, persons=persons, missing=["voice"],
                       notes={"voice": "silence"}, latency_ms=latency_ms, fusion_backend="test")


def utterance(uid: int, text: str, label: str, t_end: int, speaker: int | None = 3) -> AffectUtterance:
    present = ("face", "text")
    return AffectUtterance(utterance_id=uid, t_start=t_end - 2 * S, t_end=t_end, t_capture=t_end,
                           t_publish=t_end + 400_000_000, text=f" {text} ", labels=list(LABELS),
                           probs=probs_for(label), valence=0.3, arousal=0.1, confidence=0.6,
                           inputs=[ModalityInput(modality=m, present=m in present) for m in ("face", "voice", "text")],
                           missing=["voice"], notes={"voice": "voice node down"}, speaker_track_id=speaker)


def health(t: int) -> SystemHealth:
    return SystemHealth(t_capture=t, nodes=[
        NodeHealth(name="face", alive=True, pid=11, restarts=0, uptime_s=12.5, rate_hz=30.0),
        NodeHealth(name="asr", alive=False, pid=0, restarts=2, uptime_s=0.0, rate_hz=0.0, state="backoff",
                   last_error="killed by SIGKILL")], notes=["camera missing: sample clip"])


def thirty_fps(state: DashboardState, seconds: float, make: Callable[[int], list[PersonAffect]],
               start: int = T0, first_index: int = 0) -> int:
    """Frames at 30 fps for ``seconds``, each received 20 ms after capture; returns the last capture time."""
    t = start
    for k in range(int(seconds * 30)):
        t = start + k * S // 30
        state.add(frame(first_index + k, make(k), t), t + 20_000_000)
    return t


# ---------------------------------------------------------------- state


def test_the_view_shows_the_newest_frame_per_person_with_a_short_trail():
    state = DashboardState()
    last = thirty_fps(state, 3.0, lambda k: [person(3, valence=k / 100), person(None, -0.5, label="sad")])
    view = state.view(last + 50_000_000)
    assert view["frame"]["frame_index"] == 89 and view["frame"]["missing"] == ["voice"]
    three, voice = view["persons"]
    assert (three["key"], three["track_id"], three["label"]) == ("3", 3, "happy")
    assert three["valence"] == 0.89 and three["valence_raw"] == 0.99 and three["probs"][3] == 0.64
    assert (voice["key"], voice["track_id"], voice["label"]) == ("voice", None, "sad")
    assert [i["modality"] for i in three["inputs"]] == ["face", "voice"]
    assert three["inputs"][1] == {**three["inputs"][1], "present": False, "reason": "silence"}
    trail = three["trail"]
    assert len(trail) == int(TRAIL_S * 30) + 1  # the last 2 s of frames, both ends included
    assert trail[-1] == [0.89, 0.2] and trail[0][0] == pytest.approx(0.89 - TRAIL_S * 30 / 100)
    assert view["stream"]["alive"] and view["stream"]["fps"] == pytest.approx(30.0, abs=0.5)
    assert view["latency"]["receive_ms_p50"] == 20.0 and view["latency"]["fusion_ms_p90"] == 20.0


def test_a_person_who_leaves_loses_the_trail_but_keeps_the_plot_for_its_window():
    state = DashboardState()
    last = thirty_fps(state, 2.0, lambda k: [person(3, 0.4)])
    last = thirty_fps(state, 1.0, lambda k: [person(5, -0.2)], start=last + S // 30, first_index=60)
    view = state.view(last)
    assert [p["key"] for p in view["persons"]] == ["5"]
    assert set(view["series"]["persons"]) == {"3", "5"}  # 3 is still in the last 30 s of the plot
    points = view["series"]["persons"]["3"]
    assert len(points) == 20  # 2 s at most 10 points a second, not 30
    assert all(-3.1 <= t <= -0.9 for t, _, _ in points) and all(v == 0.4 for _, v, _ in points)
    later = thirty_fps(state, SERIES_S + 1, lambda k: [person(5, -0.2)], start=last + S // 30, first_index=90)
    assert set(state.view(later)["series"]["persons"]) == {"5"}  # 3 fell out of the window


def test_the_stream_is_stale_after_a_second_without_frames_and_an_older_frame_is_ignored():
    state = DashboardState()
    last = thirty_fps(state, 1.0, lambda k: [person(3, 0.1)])
    state.add(frame(5, [person(3, 0.9)], T0), last + S)  # a late, older frame
    view = state.view(last + 20_000_000 + int(STALE_S * S) + 1)
    assert view["frame"]["frame_index"] == 29 and view["persons"][0]["valence"] == 0.1
    assert not view["stream"]["alive"] and view["stream"]["frame_age_s"] == pytest.approx(1.0, abs=0.01)
    assert DashboardState().view(T0)["stream"] == {"alive": False, "frame_age_s": None, "fps": 0.0}


def test_an_utterances_final_record_replaces_its_acoustic_one_in_place():
    import dataclasses

    state = DashboardState()
    first = dataclasses.replace(utterance(7, "", "sad", T0), stage="acoustic")
    state.add(first, T0)
    state.add(utterance(8, "later", "happy", T0 + S), T0 + S)
    assert [(u["utterance_id"], u["stage"]) for u in state.view(T0 + S)["utterances"]] == [("8", "final"),
                                                                                            ("7", "acoustic")]
    state.add(utterance(7, "I am so sad", "sad", T0), T0 + 2 * S)
    shown = state.view(T0 + 2 * S)["utterances"]
    assert [(u["utterance_id"], u["stage"], u["text"]) for u in shown] == [("8", "final", "later"),
                                                                         ("7", "final", "I am so sad")]


def test_utterances_come_newest_first_with_their_emotion_and_a_partial_shows_until_its_utterance():
    state = DashboardState()
    state.add(utterance(2**62 + 1, "hello there", "happy", T0), T0)
    state.add(Transcript(utterance_id=7, t_start=T0, t_end=T0 + S, text=" I am so ", final=False), T0 + S)
    assert state.view(T0 + S)["hearing"] == "I am so"
    state.add(utterance(7, "I am so sad", "sad", T0 + 2 * S, speaker=None), T0 + 2 * S)
    view = state.view(T0 + 3 * S)
    assert view["hearing"] == ""
    newest, oldest = view["utterances"]
    assert newest["text"] == "I am so sad" and newest["label"] == "sad" and newest["speaker_track_id"] is None
    assert oldest["utterance_id"] == str(2**62 + 1)  # text: a JS number would round it
    assert oldest["modalities"] == ["face", "text"] and oldest["notes"] == {"voice": "voice node down"}
    assert oldest["age_s"] == 3.0 and oldest["duration_s"] == 2.0
    assert view["latency"]["utterance_delay_ms"] == 400.0


def test_health_and_the_rules_that_derive_valence_and_arousal_are_shown():
    state = DashboardState()
    state.add(health(T0), T0)
    state.add(FaceTracks(frame_index=0, width=640, height=480, va_rule="circumplex-v1"), T0)
    view = state.view(T0 + 2 * S)
    assert view["health"]["age_s"] == 2.0 and view["health"]["notes"] == ["camera missing: sample clip"]
    face, asr = view["health"]["nodes"]
    assert face == {"name": "face", "alive": True, "state": "running", "pid": 11, "restarts": 0,
                    "uptime_s": 12.5, "rate_hz": 30.0, "last_error": ""}
    assert (asr["alive"], asr["state"], asr["last_error"]) == (False, "backoff", "killed by SIGKILL")
    assert view["rules"] == {"face": "circumplex-v1"}


def test_the_view_is_strict_json_even_when_a_value_is_not_a_number():
    state = DashboardState()
    state.add(frame(0, [person(1, math.nan, arousal=math.inf)], T0), T0)
    view = state.view(T0)
    assert view["persons"][0]["valence"] is None and view["persons"][0]["arousal"] is None
    json.dumps(view, allow_nan=False)


# ---------------------------------------------------------------- access


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "my-laptop.local"])
def test_serving_beyond_loopback_is_refused_without_allow_remote_and_says_why(host):
    with pytest.raises(ConfigError, match=r"--allow-remote") as info:
        check_bind(host, allow_remote=False)
    assert "transcripts" in str(info.value) and "ssh -L" in str(info.value)
    check_bind(host, allow_remote=True)
    assert Access.for_bind(host, allow_remote=True).token  # then a token is needed


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_flag_and_no_token(host):
    assert Access.for_bind(host, allow_remote=False).token == ""


def test_on_loopback_only_a_loopback_host_header_is_served():
    access = Access()
    for ok in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST", "127.0.0.2:8765"):
        assert access.refusal(ok, "", None, 8765) == "", ok
    for bad in ("evil.example:8765", "evil.example", None, "", "127.0.0.1.evil.example:8765", "10.0.0.1:8765",
                "[", "[::1", "x@127.0.0.1:8765", "127.0.0.1/x:8765"):
        assert "not a loopback name" in access.refusal(bad, "", None, 8765), bad


def test_beyond_loopback_the_token_is_needed_in_the_query_or_the_cookie():
    access = Access(token="s3cret")
    assert access.refusal("10.0.0.5:8765", "token=s3cret", None, 8765) == ""
    assert access.refusal("10.0.0.5:8765", "", "moodwire_dashboard=s3cret; other=1", 8765) == ""
    for query, cookie in (("", None), ("token=wrong", None), ("", "moodwire_dashboard=wrong"), ("", "bad\x00")):
        assert "access token" in access.refusal("10.0.0.5:8765", query, cookie, 8765)


# ---------------------------------------------------------------- HTTP on a real server and a real publisher


def get(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def fed_server() -> Iterator[tuple[str, Publisher]]:
    """A dashboard on a free port, fed by a real publisher on a free endpoint (as moodwire run's public one)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    publisher = Publisher(endpoint, "test_publisher", bind=True)
    with serving(DashboardOptions(endpoint, port=0)) as server:
        yield f"http://127.0.0.1:{server.port}", publisher
    publisher.close()


def wait_for_view(base: str, condition: Callable[[dict], bool], step: Callable[[], None],
                  timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        step()
        view = json.loads(get(base + "/api/state")[2])
        if condition(view):
            return view
        assert time.monotonic() < deadline, f"the view never showed it: {view}"
        time.sleep(0.05)


def test_the_state_endpoint_serves_what_was_published(fed_server):
    base, pub = fed_server
    utt = utterance(42, "nice to meet you", "happy", now_ns())
    view = wait_for_view(base, lambda v: bool(v["persons"]) and bool(v["utterances"]),
                         lambda: (pub.send("affect.frame", frame(1, [person(4, 0.25)], now_ns())),
                                  pub.send("affect.utterance", utt)))
    assert view["persons"][0]["key"] == "4" and view["persons"][0]["valence"] == 0.25
    assert view["utterances"][0]["text"] == "nice to meet you" and view["subscriber"]["endpoint"].startswith("tcp://")
    status, headers, _ = get(base + "/api/state")
    assert status == 200 and headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"


def test_the_page_and_its_files_are_served_and_load_nothing_from_elsewhere(fed_server):
    base, _ = fed_server
    status, headers, page = get(base + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert b'id="circumplex"' in page and b"/static/dashboard.js" in page
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        status, headers, body = get(f"{base}/static/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
        assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"")  # no CDN
    assert b"innerHTML" not in get(base + "/static/dashboard.js")[2]  # stream text goes in as text only


def test_unknown_paths_and_foreign_host_headers_are_refused(fed_server):
    base, _ = fed_server
    for path in ("/nope", "/static/../run.py", "/static/missing.js"):
        status, _, body = get(base + path)
        assert status == 404 and b"dashboard is at /" in body, path
    status, _, body = get(base + "/api/state", host="attacker.example")
    assert status == 403 and b"not a loopback name" in body


def test_the_event_stream_pushes_the_view_again_and_again(fed_server):
    base, pub = fed_server
    pub.send("affect.frame", frame(1, [person(4, 0.25)], now_ns()))
    with urllib.request.urlopen(base + "/api/events", timeout=5) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        events, started = [], time.monotonic()
        while len(events) < 3:
            line = response.readline().decode()
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: "):]))
    assert time.monotonic() - started >= 0.4  # pushed a few times a second, not in one burst
    assert all(e["view"] == 1 and "persons" in e for e in events)


def test_a_token_server_sets_its_cookie_and_refuses_requests_without_it():
    with_token = DashboardServer("127.0.0.1", 0, lambda: b"{}", Access(token="t0ken")).start()
    try:
        base = f"http://127.0.0.1:{with_token.port}"
        assert get(base + "/api/state")[0] == 403
        status, headers, _ = get(base + "/?token=t0ken")
        assert status == 200 and headers["Set-Cookie"].startswith("moodwire_dashboard=t0ken;")
        assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
        assert with_token.url("10.1.2.3") == f"http://10.1.2.3:{with_token.port}/?token=t0ken"
    finally:
        with_token.close()


def test_a_port_in_use_is_one_clear_error_and_stop_ends_the_run():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"127.0.0.1:{port}.*--port"):
            run_dashboard(DashboardOptions("tcp://127.0.0.1:1", port=port), threading.Event())
    stop, out = threading.Event(), []
    runner = threading.Thread(target=lambda: out.append(
        run_dashboard(DashboardOptions("tcp://127.0.0.1:1", port=0), stop, out=io.StringIO())))
    runner.start()
    stop.set()
    runner.join(5.0)
    assert out == [0]


def test_the_command_refuses_a_public_host_with_the_reason():
    run = subprocess.run([*MOODWIRE, "dashboard", "--host", "0.0.0.0", "--duration", "1"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--allow-remote" in run.stderr and "without a login" in run.stderr


# ---------------------------------------------------------------- a real browser on a running pipeline


class Recorder:
    """What the test itself receives from the public endpoint: every affect.frame and affect.utterance."""

    def __init__(self, endpoint: str) -> None:
        self.frames: dict[int, AffectFrame] = {}
        self.utterances: dict[str, AffectUtterance] = {}
        self._sub = Subscriber(endpoint, ["affect.frame", "affect.utterance"], queue_everything=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self._sub.recv(0.1)
            msg = got.msg if got is not None else None
            if isinstance(msg, AffectFrame):
                self.frames[msg.frame_index] = msg
            elif isinstance(msg, AffectUtterance):  # its records by stage: acoustic, then final
                self.utterances[f"{msg.utterance_id}/{msg.stage}"] = msg

    def wait_for(self, store: dict, key, timeout: float = 3.0):
        deadline = time.monotonic() + timeout
        while key not in store:
            assert time.monotonic() < deadline, f"the test never received {key} that the page shows"
            time.sleep(0.02)
        return store[key]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sub.close()


FACE_PERSON = '#persons .person[data-track]:not([data-track="voice"])'  # a tracked face, not voice only
SHOWN_PERSON = """(selector) => {
  const card = document.querySelector(selector);
  if (!card) return null;
  const dot = document.getElementById('dot-' + card.dataset.track);
  return {track: card.dataset.track, frame: Number(card.dataset.frameIndex), label: card.dataset.label,
          valence: Number(card.dataset.valence), arousal: Number(card.dataset.arousal),
          confidence: Number(card.dataset.confidence),
          dot: dot && [Number(dot.getAttribute('cx')), Number(dot.getAttribute('cy'))],
          header: Number(document.getElementById('frame').dataset.frameIndex)};
}"""
SHOWN_UTTERANCE = """() => {
  const item = document.querySelector('#transcript .utterance');
  return item && {id: item.dataset.utteranceId, stage: item.dataset.stage, label: item.dataset.label,
                  valence: Number(item.dataset.valence), text: item.querySelector('.text').textContent};
}"""
SHOWN_NODES = """() => Array.from(document.querySelectorAll('#health-rows tr.node')).map(
  (row) => [row.dataset.node, row.dataset.alive, row.dataset.state])"""


def start_dashboard(endpoint: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([*MOODWIRE, "dashboard", "--endpoint", endpoint, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()  # the URL, once it serves
    assert f"http://127.0.0.1:{port}/" in line, line + proc.stderr.read()
    return proc, f"http://127.0.0.1:{port}/"


def check_person_matches_the_stream(shown: dict, recorder: Recorder) -> None:
    sent = recorder.wait_for(recorder.frames, shown["frame"])
    key = shown["track"]
    person_sent = next(p for p in sent.persons if (str(p.track_id) if p.track_id is not None else "voice") == key)
    assert shown["valence"] == pytest.approx(person_sent.valence, abs=1e-4)
    assert shown["arousal"] == pytest.approx(person_sent.arousal, abs=1e-4)
    assert shown["confidence"] == pytest.approx(person_sent.confidence, abs=1e-4)
    assert shown["label"] == top_label(person_sent)  # the steady label, as sent
    assert shown["dot"] == pytest.approx([shown["valence"], -shown["arousal"]])  # drawn where the numbers say
    assert shown["header"] == shown["frame"]  # one view drawn whole


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_page_in_a_real_browser_shows_the_live_stream_of_a_running_pipeline(start_pipeline):
    from moodwire.pipeline.dashboard.browser import find_chromium, headless_page

    pytest.importorskip("playwright", reason="playwright is in the dev extra: pip install -e .[dev]")
    if find_chromium() is None:
        pytest.skip("no Chromium installed (apt-get install chromium; tools/setup.sh --dev installs it)")
    pipeline = start_pipeline("--config", "configs/sample.toml")
    nodes = {n.name for n in pipeline.wait_healthy(timeout=150).nodes}
    recorder = Recorder(pipeline.endpoint)
    dashboard, url = start_dashboard(pipeline.endpoint, pipeline.env)
    try:
        with headless_page(url) as page:
            page.wait_for_selector(FACE_PERSON, timeout=90_000)  # the sample clip's drawn face, once the face node runs
            samples = []
            for _ in range(6):
                page.wait_for_selector(FACE_PERSON, timeout=10_000)
                samples.append(page.evaluate(SHOWN_PERSON, FACE_PERSON))
                check_person_matches_the_stream(samples[-1], recorder)
                page.wait_for_timeout(700)
            frames = [s["frame"] for s in samples]
            assert frames == sorted(frames) and len(set(frames)) == len(frames), frames  # it moves on
            assert len({(s["valence"], s["arousal"], s["confidence"]) for s in samples}) > 1, samples

            page.wait_for_selector("#transcript .utterance", timeout=60_000)
            shown = page.evaluate(SHOWN_UTTERANCE)
            sent = recorder.wait_for(recorder.utterances, f"{shown['id']}/{shown['stage']}")
            none = "(the words are coming)" if sent.stage == "acoustic" else "(no words)"
            assert shown["text"] == (sent.text.strip() or none)
            assert shown["label"] == top_label(sent.labels, sent.probs)
            assert shown["valence"] == pytest.approx(sent.valence, abs=1e-4)

            rows = page.evaluate(SHOWN_NODES)
            assert {name for name, _, _ in rows} == nodes
            assert all(alive == "true" and state == "running" for _, alive, state in rows), rows
            assert page.text_content("#latency-fusion").endswith(" ms")
            assert int(page.get_attribute("#va-plot", "data-points")) > 0
            assert page.text_content("#rule-face") == "circumplex-v1"
            assert page.get_attribute("#stream-status", "data-alive") == "true"
    finally:
        recorder.close()
        dashboard.terminate()
        assert dashboard.wait(10) == 0, dashboard.stderr.read()
