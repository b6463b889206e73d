"""The ROS4HRI mapping (moodwire/ros4hri.py) and the bridge's --dry-run against a real publisher.

No ROS is installed here: the bridge's rclpy path did not run; its --dry-run prints the same
RosMessage objects it would publish, and the test reads them.
"""

from __future__ import annotations

import json
import math
import queue
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime

import pytest

from moodwire.pipeline.core.messages import AffectFrame, Word
from moodwire.ros4hri import (EXPRESSION_TYPE, IDS_LIST_TYPE, IDS_MATCH_TYPE, LIVE_SPEECH_TYPE, Ros4hriError,
                              Ros4hriIds, Ros4hriMapper, RosClock)
from tests import test_client
from tests.test_client import (LABELS, ROOT, example_env, frame, interrupt, lines_of, person, start_example, until,
                               utterance)

publisher = test_client.publisher  # the same fixture: a real Publisher bound on a free port

# hri_msgs/msg/Expression.msg (ros4hri/hri_msgs): every constant's value
HRI_EXPRESSIONS = {"neutral", "angry", "sad", "happy", "surprised", "disgusted", "scared", "pleading", "vulnerable",
                   "despaired", "guilty", "disappointed", "embarrassed", "horrified", "skeptical", "annoyed",
                   "furious", "suspicious", "rejected", "bored", "tired", "asleep", "confused", "amazed", "excited"}
EXPECTED = {"angry": "angry", "disgust": "disgusted", "fear": "scared", "happy": "happy", "sad": "sad",
            "surprise": "surprised", "neutral": "neutral"}


def mapper() -> Ros4hriMapper:
    return Ros4hriMapper(Ros4hriIds("mw_"), RosClock(offset_ns=0), frame_id="camera")


def by_topic(messages) -> dict[str, dict]:
    return {m.topic: m.fields for m in messages}


def heard(index: int, persons) -> AffectFrame:
    """A frame in which voice and text are present (an utterance is recent)."""
    return replace(frame(index, persons), missing=[], notes={})


# ---------------------------------------------------------------- the mapping


@pytest.mark.parametrize("label", LABELS)
def test_every_class_maps_to_its_hri_msgs_expression_constant(label):
    msgs = by_topic(mapper().messages(frame(1, [person(3, 0.2, label=label)])))
    expression = msgs["/humans/faces/mw_f3/expression"]["expression"]
    assert expression == EXPECTED[label] and expression in HRI_EXPRESSIONS


def test_a_frame_gives_per_face_expressions_and_the_tracked_lists():
    f = frame(7, [person(3, 0.41, arousal=-0.2, confidence=0.63), person(5, -0.3, label="sad")])
    out = mapper().messages(f)
    msgs = by_topic(out)
    assert {m.topic: m.msg_type for m in out} == {
        "/humans/faces/tracked": IDS_LIST_TYPE, "/humans/voices/tracked": IDS_LIST_TYPE,
        "/humans/faces/mw_f3/expression": EXPRESSION_TYPE, "/humans/faces/mw_f5/expression": EXPRESSION_TYPE}
    assert msgs["/humans/faces/tracked"]["ids"] == ["mw_f3", "mw_f5"]
    assert msgs["/humans/voices/tracked"]["ids"] == []  # this frame has voice and text missing
    face = msgs["/humans/faces/mw_f3/expression"]
    assert face["valence"] == pytest.approx(0.41) and face["arousal"] == pytest.approx(-0.2)
    assert face["confidence"] == pytest.approx(0.63)  # the fused confidence, not the top class's 0.64
    stamp = face["header"]["stamp"]
    assert stamp["sec"] * 10**9 + stamp["nanosec"] == f.t_capture and face["header"]["frame_id"] == "camera"


def test_a_person_without_a_face_is_the_voice():
    msgs = by_topic(mapper().messages(heard(2, [person(3, 0.5), person(None, -0.4, label="angry")])))
    assert msgs["/humans/voices/tracked"]["ids"] == ["mw_voice"]
    assert msgs["/humans/faces/tracked"]["ids"] == ["mw_f3"]  # never listed as a face
    voice = msgs["/humans/voices/mw_voice/expression"]
    assert voice["expression"] == "angry" and voice["valence"] == pytest.approx(-0.4)


def test_an_invalid_frame_publishes_empty_lists_and_no_estimates():
    out = mapper().messages(replace(frame(3, [person(3, 0.5)]), valid=False))
    assert [(m.topic, m.fields["ids"]) for m in out] == [("/humans/faces/tracked", []), ("/humans/voices/tracked", [])]


def test_ids_are_stable_per_track_and_carry_the_prefix():
    m = Ros4hriMapper(Ros4hriIds("robot1_"), RosClock(offset_ns=0))
    first = by_topic(m.messages(frame(1, [person(3, 0.1), person(12, 0.2)])))
    second = by_topic(m.messages(frame(2, [person(12, 0.3), person(3, 0.4)])))
    assert first["/humans/faces/tracked"]["ids"] == ["robot1_f3", "robot1_f12"]
    assert second["/humans/faces/tracked"]["ids"] == ["robot1_f12", "robot1_f3"]
    assert second["/humans/faces/robot1_f3/expression"]["valence"] == pytest.approx(0.4)


@pytest.mark.parametrize("field_name, value, expected", [
    ("valence", 1.7, 1.0), ("valence", -3.0, -1.0), ("arousal", -1.2, -1.0), ("confidence", 1.5, 1.0),
    ("confidence", -0.1, 0.0), ("valence", -0.999, -0.999)])
def test_values_are_kept_in_the_ranges_hri_msgs_documents(field_name, value, expected):
    p = replace(person(3, 0.0), **{field_name: value})
    assert by_topic(mapper().messages(frame(1, [p])))["/humans/faces/mw_f3/expression"][field_name] == expected


def test_a_non_finite_value_or_an_unknown_class_is_refused_by_name():
    with pytest.raises(Ros4hriError, match="valence is nan"):
        mapper().messages(frame(1, [replace(person(3, 0.0), valence=math.nan)]))
    odd = replace(person(3, 0.0), labels=[*LABELS[:-1], "contempt"], probs=[0.0] * 6 + [1.0])
    with pytest.raises(Ros4hriError, match="'contempt' has no hri_msgs/Expression constant"):
        mapper().messages(frame(1, [odd]))


def test_an_utterance_gives_live_speech_its_expression_and_the_speaking_face():
    u = utterance(9, "I am so glad", 3, "happy", 0.6, 0.3)
    u.words = [Word(word="I", t_start=1, t_end=2, probability=0.9), Word(word="am", t_start=2, t_end=3, probability=0.7)]
    u.speaker_scores = {"3": 0.82, "5": 0.1}
    msgs = by_topic(mapper().messages(u))
    speech = msgs["/humans/voices/mw_voice/speech"]
    assert speech["final"] == "I am so glad" and speech["incremental"] == ""
    assert speech["confidence"] == pytest.approx(0.8)  # the mean word probability
    expression = msgs["/humans/voices/mw_voice/utterance_expression"]
    assert expression["expression"] == "happy" and expression["valence"] == pytest.approx(0.6)
    assert expression["header"]["stamp"]["sec"] * 10**9 + expression["header"]["stamp"]["nanosec"] == u.t_end
    assert msgs["/humans/candidate_matches"] == {"id1": "mw_f3", "id1_type": 2, "id2": "mw_voice", "id2_type": 4,
                                                 "confidence": pytest.approx(0.82)}


def test_an_utterance_without_a_speaker_classes_or_words_keeps_what_it_has():
    u = replace(utterance(9, "", None, "sad", -0.2, 0.4), labels=[], probs=[])
    out = mapper().messages(u)
    msgs = by_topic(out)
    assert IDS_MATCH_TYPE not in {m.msg_type for m in out}  # no face named: no match
    assert msgs["/humans/voices/mw_voice/speech"]["final"] == ""
    assert msgs["/humans/voices/mw_voice/speech"]["confidence"] == 0.0
    expression = msgs["/humans/voices/mw_voice/utterance_expression"]
    assert expression["expression"] == "" and expression["arousal"] == pytest.approx(0.4)
    invalid = by_topic(mapper().messages(replace(u, valid=False)))
    assert list(invalid) == ["/humans/voices/mw_voice/speech"]  # the words, but no estimate to trust


def test_stamps_are_wall_clock_and_keep_the_capture_spacing():
    clock, t = RosClock(), time.monotonic_ns()
    a, b = clock.stamp(t), clock.stamp(t + 1_250_000_000)
    assert abs(a["sec"] + a["nanosec"] / 1e9 - time.time()) < 1.0
    assert (b["sec"] - a["sec"]) * 10**9 + b["nanosec"] - a["nanosec"] == 1_250_000_000


# ---------------------------------------------------------------- the bridge script


def ros_messages(lines: "queue.Queue[str]", until_text: str, timeout: float) -> list[dict]:
    """JSON lines from the bridge until one LiveSpeech says ``until_text``."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while not any(m["type"] == LIVE_SPEECH_TYPE and m["msg"]["final"] == until_text for m in got):
        assert time.monotonic() < deadline, f"no LiveSpeech {until_text!r} within {timeout} s; got {got[-3:]}"
        try:
            got.append(json.loads(lines.get(timeout=0.5)))
        except queue.Empty:
            pass
    return got


@pytest.mark.slow
def test_the_dry_run_bridge_prints_the_ros_messages_of_a_real_stream(publisher, endpoint):
    proc = start_example("ros4hri_bridge.py", "--dry-run", "--endpoint", endpoint, "--seconds", "90")
    try:
        lines = lines_of(proc.stdout)
        until(lambda: not lines.empty(), 30.0, lambda: publisher.send("affect.frame", frame(-1, [])),
              "the bridge's first message")
        publisher.send("affect.frame", heard(42, [person(3, 0.41, label="surprise"), person(None, -0.3)]))
        sent = [utterance(1, "hello there", 3, "happy", 0.5, 0.2), utterance(2, "go away", None, "angry", -0.6, 0.7)]
        for u in sent:
            publisher.send("affect.utterance", u)
        got = ros_messages(lines, "go away", 20.0)
    finally:
        code, err = interrupt(proc)
    assert code == 0, err
    faces = [m for m in got if m["topic"] == "/humans/faces/mw_f3/expression"]
    assert len(faces) == 1 and faces[0]["type"] == EXPRESSION_TYPE
    assert faces[0]["msg"]["expression"] == "surprised" and faces[0]["msg"]["valence"] == pytest.approx(0.41)
    stamp = faces[0]["msg"]["header"]["stamp"]
    assert abs(datetime.now().timestamp() - stamp["sec"]) < 60  # wall clock, where ROS expects it
    tracked = [m["msg"]["ids"] for m in got if m["topic"] == "/humans/faces/tracked"]
    assert ["mw_f3"] in tracked and [] in tracked  # the warm-up frames had no one
    voice = next(m for m in got if m["topic"] == "/humans/voices/mw_voice/expression")
    assert voice["msg"]["valence"] == pytest.approx(-0.3)
    speech = [m["msg"]["final"] for m in got if m["type"] == LIVE_SPEECH_TYPE]
    assert speech == ["hello there", "go away"]
    matches = [m["msg"] for m in got if m["type"] == IDS_MATCH_TYPE]
    assert [(m["id1"], m["id2"]) for m in matches] == [("mw_f3", "mw_voice")]  # only the attributed utterance
    assert "mapped" in err


@pytest.mark.slow
def test_without_ros_the_bridge_says_what_to_install_and_how_to_dry_run(endpoint):
    if subprocess.run([sys.executable, "-c", "import rclpy"], capture_output=True).returncode == 0:
        pytest.skip("rclpy is installed here")
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "ros4hri_bridge.py"), "--endpoint", endpoint,
                          "--seconds", "1"], capture_output=True, text=True, timeout=60, env=example_env())
    assert run.returncode == 2
    assert "rclpy and hri_msgs" in run.stderr and "--dry-run" in run.stderr and "setup.bash" in run.stderr
