"""Bad input, property-based: every decoder and every node step fed random and malformed messages.

Decoders: a good message of every registered topic, its header mutated at any depth (a value replaced by a
random msgpack value, a key dropped or added, an array reference or buffer damaged, the wrong topic): the
decoder gives the registered type or a WireError, never another exception.

Steps: messages that DO decode (each field replaced by a random value of its own wire type: NaN, infinity,
huge and negative ints, arrays of any allowed dtype and shape, empty strings, wrong topic) go through
``moodwire.pipeline.core.node.handle``, what ``run_step`` calls: the step gives well-formed outputs or refuses with a
BadInput naming the problem; nothing else escapes, nothing hangs (hypothesis deadline, pytest-timeout).
Afterwards a good message gives the same output as on a step that never saw the bad ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.core.message_checks import problem
from moodwire.pipeline.core.messages import (AffectFrame, AffectUtterance, AudioChunk, ClockProbe, FaceTrack,
                                             FaceTracks, HeadPose, Message, ModalityInput, NodeHealth, NodeStats,
                                             PersonAffect, Progress, SpeechEvent, SystemHealth, TextAffect, Transcript,
                                             UtteranceAudio, VideoFrame, VoiceAffect, VoiceFeatures, Word)
from moodwire.pipeline.core.node import BadInput, handle
from moodwire.pipeline.core.topics import TOPICS
from moodwire.pipeline.core.wire import WireError, decode, encode

NS = 1_000_000_000
NAMES = ["jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight"] + [f"shape{i}" for i in range(49)]
HAPPY = [0.02, 0.01, 0.02, 0.85, 0.02, 0.03, 0.05]
BAD = settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
# function_scoped_fixture: the step under test is module-scoped on purpose (its state must survive every
# example); too_slow: drawing arrays and messages of many fields is slow to generate, not to run.


def tone(seconds: float, hz: float = 200.0) -> np.ndarray:
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


def features() -> VoiceFeatures:
    return VoiceFeatures(duration_s=1.0, voiced_fraction=0.5, f0_mean_hz=float("nan"), f0_range_st=2.0,
                         energy_db=-20.0, energy_range_db=10.0, speaking_rate=3.0, speaking_rate_source="energy-peaks",
                         jitter=0.01, shimmer=0.05, hnr_db=10.0)


def face_track(track_id: int = 1) -> FaceTrack:
    return FaceTrack(track_id=track_id, box=[10.0, 10.0, 40.0, 40.0], landmarks=np.full((478, 3), 20.0, np.float32),
                     blendshapes=np.zeros(52, np.float32), head_pose=HeadPose(yaw=0.0, pitch=0.0, roll=0.0),
                     crop=np.zeros((64, 64), np.uint8), expression=np.array(HAPPY, np.float32),
                     valence=0.6, arousal=0.3)


def good(topic: str, t: int | None = None) -> Message:
    """A well-formed message of ``topic`` captured at ``t`` (default: now)."""
    t = now_ns() - NS if t is None else t
    uid = t - NS
    messages: dict[str, typing.Callable[[], Message]] = {
        "video.frame": lambda: VideoFrame(frame_index=1, width=8, height=6, fps_nominal=30.0,
                                          image=np.zeros((6, 8, 3), np.uint8)),
        "audio.chunk": lambda: AudioChunk(chunk_index=1, sample_rate=AUDIO_RATE, samples=tone(0.02)),
        "face.tracks": lambda: FaceTracks(frame_index=1, width=64, height=64, faces=[face_track()],
                                          expression_labels=list(LABELS), blendshape_names=NAMES),
        "speech.vad": lambda: SpeechEvent(utterance_id=uid, kind="end", t_start=uid, t_end=t, t_speech_end=t,
                                          reason="pause", vad_backend="webrtcvad"),
        "speech.audio": lambda: UtteranceAudio(utterance_id=uid, t_start=uid, offset=0, sample_rate=AUDIO_RATE,
                                               samples=tone(0.2), final=True),
        "speech.transcript": lambda: Transcript(utterance_id=uid, t_start=uid, t_end=t, text="I am happy",
                                                words=[Word(word="happy", t_start=uid, t_end=t, probability=0.9)],
                                                final=True),
        "voice.affect": lambda: VoiceAffect(utterance_id=uid, t_start=uid, t_end=t, features=features(),
                                            arousal=0.2, arousal_rule="rule", confidence=0.5),
        "text.affect": lambda: TextAffect(utterance_id=uid, t_start=uid, t_end=t, text="I am happy", final=True,
                                          labels=list(LABELS), probs=HAPPY, valence=0.5, arousal=0.2, confidence=0.6),
        "affect.frame": lambda: AffectFrame(frame_index=1, persons=[PersonAffect(
            track_id=1, labels=list(LABELS), probs=HAPPY, valence=0.1, arousal=0.1, confidence=0.5,
            modalities={"face": 1.0}, inputs=[ModalityInput(modality="face", present=True, weight=1.0)])],
            missing=["voice"], notes={"voice": "silence"}),
        "affect.utterance": lambda: AffectUtterance(utterance_id=uid, t_start=uid, t_end=t, text="hi",
                                                    speaker_track_id=None, speaker_scores={"1": 0.2}),
        "system.health": lambda: SystemHealth(nodes=[NodeHealth(name="face", alive=True, pid=3, restarts=0,
                                                                uptime_s=1.0, rate_hz=30.0)]),
        "system.node": lambda: NodeStats(name="face", pid=3, published={"face.tracks": 3}, rates_hz={"x": 1.0}),
        "system.host": lambda: SystemHealth(host="robot", nodes=[NodeHealth(name="video_source", alive=True, pid=3,
                                                                            restarts=0, uptime_s=1.0, rate_hz=30.0)]),
        "system.clock": lambda: ClockProbe(host="robot", reply=True, t_sent=5, t_received=7, t_replied=8),
        "system.progress": lambda: Progress(node="vad", kind="watermark", stream="cam2", watermark=t - 5, host="robot"),
    }
    msg = messages[topic]()
    msg.t_capture = t
    return msg


def test_every_registered_topic_has_a_good_sample_that_passes_its_checks():
    for topic, spec in TOPICS.items():
        msg = good(topic)
        assert type(msg) is spec.msg_type and problem(msg, now_ns()) == "", topic
        assert type(decode([bytes(f) for f in encode(topic, msg)])[1]) is spec.msg_type


# ---------------------------------------------------------------- decoders

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


def header_paths(node: typing.Any, path: tuple = ()) -> list[tuple]:
    """Every key/index path inside a decoded header."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    out = []
    for key, value in items:
        out.append((*path, key))
        out += header_paths(value, (*path, key))
    return out


@st.composite
def damaged_frames(draw) -> list[bytes]:
    topic = draw(st.sampled_from(sorted(TOPICS)))
    frames = [bytes(f) for f in encode(topic, good(topic))]
    header = msgpack.unpackb(frames[1])
    for _ in range(draw(st.integers(1, 3))):
        paths = header_paths(header)
        *parent_path, key = draw(st.sampled_from(paths))
        parent = header
        for step in parent_path:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace" or isinstance(parent, list):
            parent[key] = draw(msgpack_values)
        elif action == "delete":
            del parent[key]
        else:
            parent[draw(st.text(max_size=6))] = draw(msgpack_values)
    frames[1] = msgpack.packb(header)
    if len(frames) > 2 and draw(st.booleans()):
        i = draw(st.integers(2, len(frames) - 1))
        frames[i] = frames[i][:draw(st.integers(0, max(0, len(frames[i]) - 1)))]  # a truncated buffer
    if draw(st.booleans()):
        frames[0] = draw(st.sampled_from(sorted(TOPICS))).encode()  # the wrong topic for the message
    return frames


@settings(max_examples=60, deadline=500)
@given(damaged_frames())
def test_damaged_messages_of_every_topic_decode_or_raise_a_wire_error_that_names_a_field(frames):
    try:
        topic, msg = decode(frames)
    except WireError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return
    assert type(msg) is TOPICS[topic].msg_type


# ---------------------------------------------------------------- messages that decode, with bad values

WIRE_DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.float32, np.float64, np.bool_]
CLOCKED = ("t_capture", "t_start", "t_end", "t_speech_end", "utterance_id")


def any_array() -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(st.sampled_from(WIRE_DTYPES), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))


def clock_values() -> st.SearchStrategy[int]:
    """Capture times: in the past (usable), negative, or ahead of this host's clock (refused)."""
    past = st.integers(0, 10**13).map(lambda ago: max(0, now_ns() - ago))
    ahead = st.integers(61 * NS, 10**13).map(lambda ahead: now_ns() + ahead)
    return past | ahead | st.sampled_from([-1, 2**63 - 1]) | st.integers(-2**63, 2**63 - 1)


def value_of(hint: typing.Any, name: str = "") -> st.SearchStrategy:
    """Any value of a field's wire type (what decoding lets through), extremes included."""
    origin = typing.get_origin(hint)
    if name in CLOCKED:
        return clock_values()
    if hint is np.ndarray:
        return any_array()
    if hint is int:
        return st.integers(-2**63, 2**63 - 1) | st.sampled_from([0, -1, 1, 16000, 48000, 2**63 - 1])
    if hint is float:
        return st.floats(width=64) | st.sampled_from([float("nan"), float("inf"), -1e308, 0.0, 1.0])
    if hint is str:
        return st.text(max_size=12) | st.sampled_from(["", "start", "end", "happy"])
    if hint is bool:
        return st.booleans()
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.none() | value_of(inner, name)
    if origin is list:
        return st.lists(value_of(typing.get_args(hint)[0]), max_size=3)
    if origin is dict:
        key, val = typing.get_args(hint)
        return st.dictionaries(value_of(key), value_of(val), max_size=3)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return st.builds(hint, **{f.name: value_of(hints[f.name], f.name) for f in dataclasses.fields(hint)})
    raise AssertionError(f"no strategy for {hint}")


@st.composite
def bad_message(draw, topics: tuple[str, ...]) -> tuple[str, Message]:
    """A good message of one of ``topics`` with 1-3 fields replaced, sent through the wire; sometimes the wrong
    topic for its type (possible in-process only: the wire refuses it)."""
    topic = draw(st.sampled_from(topics))
    msg = good(topic)
    hints = typing.get_type_hints(type(msg))
    names = [f.name for f in dataclasses.fields(msg) if f.name != "v"]
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        setattr(msg, name, draw(value_of(hints[name], name)))
    _, msg = decode([bytes(f) for f in encode(topic, msg)])
    if draw(st.integers(0, 9)) == 0:
        topic = draw(st.sampled_from(sorted(TOPICS)))
    return topic, msg


def feed_bad(step, topic: str, msg: Message) -> bool:
    """What run_step does with one message: outputs, each well-formed, or a BadInput that names the problem
    and says what to do. True when the step took the message."""
    try:
        outputs = handle(step, topic, msg)
    except BadInput as exc:
        names = [topic, *(f.name for f in dataclasses.fields(msg))]
        assert any(name in str(exc) for name in names), f"{exc} names neither the topic nor a field"
        return False
    for out_topic, out in outputs:
        assert out_topic in TOPICS and problem(out, now_ns() + 3600 * NS) == "", (out_topic, out)
        decode([bytes(f) for f in encode(out_topic, out)])
    return True


def fed_bad_messages(step, topics: tuple[str, ...], extra: st.SearchStrategy | None = None) -> None:
    """The property, on one step kept across every example: its state must survive them all. Both
    outcomes must occur, or the property tested nothing (every message refused, or none)."""
    cases = bad_message(topics) if extra is None else st.one_of(bad_message(topics), extra)
    taken = []

    @BAD
    @given(cases)
    def property_(case):
        taken.append(feed_bad(step, *case))
        for out_topic, out in step.idle(now_ns()):  # what run_step does when nothing else came
            assert problem(out, now_ns() + 3600 * NS) == "", (out_topic, out)

    property_()
    assert any(taken) and not all(taken), f"{sum(taken)} of {len(taken)} bad messages taken"


def wrong_topics(step) -> list[Exception | list]:
    """A message of another type on each input topic, and each input's message on a topic not taken."""
    outcomes = []
    for topic in step.inputs:
        other = "system.node" if topic != "system.node" else "video.frame"
        for t, msg in ((topic, good(other)), (other, good(topic))):
            try:
                outcomes.append(handle(step, t, msg))
            except BadInput as exc:
                outcomes.append(exc)
    return outcomes


def refuses_wrong_topics(step) -> None:
    outcomes = wrong_topics(step)
    assert all(isinstance(o, BadInput) for o in outcomes), outcomes
    assert any("carries" in str(o) for o in outcomes) and any("not an input" in str(o) for o in outcomes)


def abuse(step, extra: st.SearchStrategy | None = None) -> None:
    """Random and malformed messages (and ``extra`` ones) on every input topic, then on the wrong topics."""
    fed_bad_messages(step, step.inputs, extra)
    refuses_wrong_topics(step)


# ---------------------------------------------------------------- VAD

@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    from moodwire.pipeline.sources.spoken import espeak_available, speak

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    silence = np.zeros(AUDIO_RATE, np.int16)
    return np.concatenate([silence, speak("I am really happy to see you today."), silence])


def vad_heard(step, audio: np.ndarray) -> list[tuple[str, int, int | None]]:
    """(kind, start, end) of each event, in ms from the start of ``audio``, fed as a fresh stream."""
    t0, first = now_ns() - 60 * NS, 10**9
    out = []
    for k, i in enumerate(range(0, audio.size - 319, 320)):
        chunk = AudioChunk(chunk_index=first + k, sample_rate=AUDIO_RATE, samples=audio[i:i + 320],
                           t_capture=t0 + i * NS // AUDIO_RATE)
        out += handle(step, "audio.chunk", chunk)
    out += step.finish()
    return [(m.kind, (m.t_start - t0) // 1_000_000, (m.t_end - t0) // 1_000_000 if m.t_end else None)
            for topic, m in out if topic == "speech.vad" and m.t_start >= t0]


@pytest.mark.timeout(60)
def test_vad_step_survives_bad_chunks_and_then_hears_speech_as_a_fresh_one_does(speech):
    from moodwire.pipeline.vad.step import build_vad_step

    step = build_vad_step()
    abuse(step)
    expected = vad_heard(build_vad_step(), speech)
    assert [kind for kind, *_ in expected] == ["start", "end"]
    assert vad_heard(step, speech) == expected


# ---------------------------------------------------------------- ASR (a stand-in model: the step's bookkeeping)

def asr_final(step, audio: np.ndarray) -> list[str]:
    from tests.test_asr import pieces

    uid = now_ns() - 30 * NS
    out = [m for msg in pieces(audio, uid=uid) for topic, m in handle(step, "speech.audio", msg)]
    return [(m.text, m.final, m.valid) for m in out if m.utterance_id == uid]


@pytest.mark.timeout(60)
def test_asr_step_survives_bad_pieces_and_then_transcribes_as_a_fresh_one_does():
    from moodwire.pipeline.asr.step import AsrStep
    from tests.test_asr import FakeTranscriber, loud

    step = AsrStep(FakeTranscriber(), "stand-in")
    abuse(step)
    expected = asr_final(AsrStep(FakeTranscriber(), "stand-in"), loud(2.5))
    assert expected == [("w0 w1", True, True)]
    assert asr_final(step, loud(2.5)) == expected


# ---------------------------------------------------------------- voice

def voice_of(step, audio: np.ndarray) -> tuple:
    uid = now_ns() - 30 * NS
    audio_msg = UtteranceAudio(utterance_id=uid, t_start=uid, offset=0, sample_rate=AUDIO_RATE, samples=audio,
                               final=True, t_capture=uid)
    t_end = uid + audio.size * NS // AUDIO_RATE
    words = [Word(word=w, t_start=uid + i * NS // 4, t_end=uid + (i + 1) * NS // 4, probability=0.9)
             for i, w in enumerate("I am really happy".split())]
    transcript = Transcript(utterance_id=uid, t_start=uid, t_end=t_end, text="I am really happy", words=words,
                            final=True, t_capture=t_end)
    out = handle(step, "speech.audio", audio_msg) + handle(step, "speech.transcript", transcript)
    [affect] = [m for topic, m in out if topic == "voice.affect" and m.utterance_id == uid]
    return affect.arousal, affect.confidence, affect.features.speaking_rate_source, affect.features.f0_mean_hz


@pytest.mark.timeout(60)
def test_voice_step_survives_bad_audio_and_transcripts_and_then_measures_as_a_fresh_one_does(speech):
    from moodwire.pipeline.voice.step import VoiceStep

    step = VoiceStep()
    abuse(step)
    expected = voice_of(VoiceStep(), speech)
    assert expected[2] == "asr-words" and expected[3] > 50
    assert voice_of(step, speech) == expected


# ---------------------------------------------------------------- text (the real encoder)

@pytest.fixture(scope="module")
def text_classifier(session_cache):
    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.text.step import build_classifier

    return build_classifier(Config())[0]


def text_of(step, sentence: str) -> list[float]:
    t = now_ns() - NS
    msg = Transcript(utterance_id=t - NS, t_start=t - NS, t_end=t, text=sentence, final=True, t_capture=t)
    [(topic, affect)] = handle(step, "speech.transcript", msg)
    assert affect.valid
    return affect.probs


@pytest.mark.timeout(90)
def test_text_step_survives_bad_transcripts_and_then_scores_as_a_fresh_one_does(text_classifier):
    from moodwire.pipeline.text.step import TextStep

    step = TextStep(text_classifier, "test", partials=True)
    abuse(step)
    expected = text_of(TextStep(text_classifier, "test"), "I am so happy to see you.")
    assert LABELS[int(np.argmax(expected))] == "happy"
    assert np.allclose(text_of(step, "I am so happy to see you."), expected, atol=1e-6)


# ---------------------------------------------------------------- fusion (the real exported model)

@pytest.fixture(scope="module")
def fusion_model(session_cache):
    from moodwire.engines.fusion_spec import fusion_onnx
    from moodwire.engines.loader import load_engine
    from moodwire.pipeline.fusion.model import FusionModel

    engine = load_engine(fusion_onnx(""), "cpu", threads=1)
    engine.warm_up()
    return FusionModel(engine)


def fused_face(step) -> tuple:
    """A new frame and its face.tracks: the face's part of the affect.frame."""
    t = now_ns() + NS  # newer than anything the property sent (its capture times are in the past)
    frame, tracks = good("video.frame", t), good("face.tracks", t)
    frame.frame_index = tracks.frame_index = 10**6
    out = handle(step, "face.tracks", tracks) + handle(step, "video.frame", frame)
    [affect] = [m for topic, m in out if topic == "affect.frame" and m.t_capture == t]
    assert problem(affect, now_ns() + 2 * NS) == ""
    [person] = affect.persons
    face = person.inputs[0]
    return person.track_id, face.present, face.probs, face.valence, face.arousal, face.confidence


@pytest.mark.timeout(90)
def test_fusion_step_survives_bad_inputs_of_every_topic_and_then_fuses_a_face_as_a_fresh_one_does(fusion_model):
    from moodwire.pipeline.fusion.step import FusionStep

    step = FusionStep(fusion_model)
    abuse(step)
    # the two ways one message used to poison fusion for good: a face.tracks from the future (every later one
    # counted as older and ignored) and a NaN arousal (held, then smoothed into every frame after it)
    future, nan_voice = good("face.tracks", now_ns() + 3600 * NS), good("voice.affect")
    nan_voice.arousal = float("nan")
    with pytest.raises(BadInput, match="t_capture is 3600 s ahead of the pipeline's clock"):
        handle(step, "face.tracks", future)
    with pytest.raises(BadInput, match="VoiceAffect.arousal is nan; a finite number is expected"):
        handle(step, "voice.affect", nan_voice)
    expected = fused_face(FusionStep(fusion_model))
    assert expected[:2] == (1, True)
    assert fused_face(step) == expected


# ---------------------------------------------------------------- face (mediapipe and the expression model)

@st.composite
def odd_frames(draw) -> tuple[str, VideoFrame]:
    """Frames that are well-formed but odd: any size from 1x1, any content."""
    image = draw(hnp.arrays(np.uint8, st.tuples(st.integers(1, 48), st.integers(1, 48), st.just(3))))
    return "video.frame", VideoFrame(frame_index=draw(st.integers(0, 10**6)), width=image.shape[1],
                                     height=image.shape[0], fps_nominal=draw(st.floats(0, 1000)), image=image,
                                     t_capture=draw(clock_values()))


@pytest.fixture(scope="module")
def face_step(face_models):
    from moodwire.pipeline.face.step import build_face_step

    step = build_face_step()
    yield step
    step.close()


def face_of(step, image: np.ndarray) -> tuple:
    frame = VideoFrame(frame_index=1, width=image.shape[1], height=image.shape[0], fps_nominal=30.0, image=image,
                       t_capture=now_ns())
    [(topic, tracks)] = handle(step, "video.frame", frame)
    return [(np.round(f.expression, 3).tolist(), round(f.valence, 3)) for f in tracks.faces]


@pytest.mark.timeout(120)
def test_face_step_survives_bad_and_odd_frames_and_then_sees_a_real_face_as_a_fresh_one_does(face_step,
                                                                                            reference_clips):
    from moodwire.pipeline.face.step import build_face_step
    from moodwire.tools.media.reference import read_frames

    image = read_frames(reference_clips["one_face"])[0]
    fresh = build_face_step()
    try:
        expected = face_of(fresh, image)
    finally:
        fresh.close()
    assert len(expected) == 1
    abuse(face_step, odd_frames())
    assert face_of(face_step, image) == expected


# ---------------------------------------------------------------- a running node (real processes, real bus)

@pytest.mark.slow
@pytest.mark.timeout(120)
def test_running_nodes_refuse_well_formed_bad_frames_by_name_and_keep_serving(start_pipeline):
    """Beyond the undecodable bytes of test_manager: a frame that decodes but whose image does not match
    its size reaches the face and fusion steps; both say why in system.health and go on, unrestarted."""
    import time

    from moodwire.pipeline.core.bus import Publisher, Subscriber
    from tests.conftest import SYNTHETIC

    pipeline = start_pipeline(*SYNTHETIC, "--set", "nodes.asr=false")
    before = {n.name: n for n in pipeline.wait_healthy().nodes}
    intruder = Publisher(f"ipc://{pipeline.run_dir()}/pub.sock", "intruder")
    bad = VideoFrame(frame_index=0, width=640, height=480, fps_nominal=30.0, image=np.zeros((2, 2, 3), np.uint8))
    deadline, reported = time.monotonic() + 20, {}
    try:
        while time.monotonic() < deadline and len(reported) < 2:
            bad.t_capture = now_ns()
            intruder.send("video.frame", bad)
            nodes = {n.name: n for n in pipeline.health().nodes}
            reported.update({name: nodes[name] for name in ("face", "fusion")
                             if "image is uint8 of shape (2, 2, 3)" in nodes[name].last_error})
    finally:
        intruder.close()
    assert set(reported) == {"face", "fusion"}, {n: before[n].last_error for n in before}
    assert "expected uint8 of shape (480, 640, 3)" in reported["face"].last_error
    assert "intruder" in reported["face"].last_error  # the publisher to fix is named
    for name, health in reported.items():
        assert health.alive and health.restarts == 0 and health.pid == before[name].pid
    with Subscriber(pipeline.endpoint, ["face.tracks", "affect.frame"]) as sub:
        got = {sub.recv(5.0).topic for _ in range(10)}
    assert got == {"face.tracks", "affect.frame"}  # still serving
