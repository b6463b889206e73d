"""The fusion node's step, driven with real message objects on a simulated clock, through the real
exported fusion model (exporters/fusion.py, run by ONNX Runtime); and the node in a running pipeline.

The simulation: 30 fps video, ``video.frame`` reaching fusion 1 ms after capture and its
``face.tracks`` 20 ms after; speech messages at the times a real speech path sends them.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.config import Config, FusionConfig
from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.core.messages import (AffectFrame, AffectUtterance, FaceTrack, FaceTracks, HeadPose, Message,
                                             NodeHealth, SpeechEvent, SystemHealth, TextAffect, Transcript,
                                             UtteranceAudio, VideoFrame, VoiceAffect, VoiceFeatures, Word)
from moodwire.pipeline.fusion.model import Estimate, FusionBatch, FusionModel
from moodwire.pipeline.fusion.frame import LabelHold
from moodwire.pipeline.fusion.step import Absence, FusionStep
from moodwire.pipeline.sources.spoken import espeak_available

NS = 1_000_000_000
MS = 1_000_000
T0 = 10**12
PERIOD = NS // 30
HANGOVER = 400 * MS  # the VAD's end comes this long after the speech's
FACE_DELAY = 20 * MS
NAMES = ["jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight"] + [f"shape{i}" for i in range(49)]
HAPPY = np.array([0.02, 0.01, 0.02, 0.85, 0.02, 0.03, 0.05], np.float32)
SAD = np.array([0.05, 0.02, 0.05, 0.02, 0.80, 0.01, 0.05], np.float32)
SR = 16000
IMAGE = np.zeros((4, 4, 3), np.uint8)


@pytest.fixture(scope="module")
def model(session_cache) -> FusionModel:
    from moodwire.engines.fusion_spec import fusion_onnx
    from moodwire.engines.loader import load_engine

    engine = load_engine(fusion_onnx(""), "cpu", threads=1)
    engine.warm_up()
    return FusionModel(engine)


# ---------------------------------------------------------------- messages


def t_frame(i: int) -> int:
    return T0 + i * PERIOD


def video(i: int) -> VideoFrame:
    return VideoFrame(frame_index=i, width=4, height=4, fps_nominal=30.0, image=IMAGE, t_capture=t_frame(i))


def face(track_id: int = 1, probs: np.ndarray = HAPPY, valence: float = 0.6, arousal: float = 0.3,
         mouth: float = 0.0) -> FaceTrack:
    shapes = np.zeros(52, np.float32)
    shapes[:3] = mouth
    return FaceTrack(track_id=track_id, box=[0, 0, 2, 2], landmarks=np.zeros((478, 3), np.float32),
                     blendshapes=shapes, head_pose=HeadPose(yaw=0, pitch=0, roll=0), crop=np.zeros((64, 64), np.uint8),
                     expression=probs, valence=valence, arousal=arousal)


def tracks(i: int, faces: list[FaceTrack]) -> FaceTracks:
    return FaceTracks(frame_index=i, width=4, height=4, faces=faces, expression_labels=list(LABELS),
                      blendshape_names=NAMES, t_capture=t_frame(i))


@dataclass
class Speech:
    """One utterance from t_start to t_end (ns) and the messages the speech path sends about it."""

    t_start: int
    t_end: int
    text: str = "I am really happy to see you today."
    asr_ok: bool = True
    voice_probs: list[float] = field(default_factory=list)
    voice_delay: int = 320 * MS  # after the end (voice.wait_transcript_s = 0 gives it at once)

    def messages(self) -> list[tuple[int, str, Message]]:
        uid, out = self.t_start, []
        out.append((self.t_start + 300 * MS, "speech.vad", SpeechEvent(utterance_id=uid, kind="start",
                                                                        t_start=self.t_start)))
        audio = syllables(self.t_end - self.t_start)
        piece = SR // 5
        for off in range(0, len(audio), piece):
            final = off + piece >= len(audio)
            t_cap = self.t_start + off * NS // SR
            out.append((t_cap + 200 * MS + MS, "speech.audio", UtteranceAudio(
                utterance_id=uid, t_start=self.t_start, offset=off, sample_rate=SR, samples=audio[off:off + piece],
                final=final, t_capture=t_cap)))
        end = self.t_end
        out.append((end + 2 * MS, "speech.vad", SpeechEvent(utterance_id=uid, kind="end", t_start=self.t_start,
                                                             t_end=end, t_speech_end=end - HANGOVER, t_capture=end,
                                                             reason="pause")))
        words = [Word(word=w, t_start=self.t_start, t_end=end, probability=0.9) for w in self.text.split()]
        transcript = Transcript(utterance_id=uid, t_start=self.t_start, t_end=end, final=True, t_capture=end,
                                text=self.text if self.asr_ok else "", words=words if self.asr_ok else [],
                                valid=self.asr_ok, error="" if self.asr_ok else "decoder crashed")
        out.append((end + 300 * MS, "speech.transcript", transcript))
        out.append((end + self.voice_delay, "voice.affect", voice_affect(uid, self.t_start, end, self.voice_probs)))
        out.append((end + 340 * MS, "text.affect", text_affect(transcript)))
        return out


def syllables(duration_ns: int) -> np.ndarray:
    """Speech-like audio: a 150 Hz tone whose loudness follows 4 Hz syllables (like ``mouth_at``)."""
    t = np.arange(int(duration_ns * SR / NS)) / SR
    return (np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) * 8000).astype(np.int16)


def mouth_at(t_ns: int, speech: Speech | None) -> float:
    if speech is None or not speech.t_start <= t_ns <= speech.t_end:
        return 0.05
    return 0.05 + 0.3 * (0.5 + 0.5 * math.sin(2 * math.pi * 4 * (t_ns - speech.t_start) / NS))


def voice_affect(uid: int, t_start: int, t_end: int, probs: list[float]) -> VoiceAffect:
    features = VoiceFeatures(duration_s=(t_end - t_start) / NS, voiced_fraction=0.8, f0_mean_hz=150,
                             f0_range_st=6, energy_db=-20, energy_range_db=10, speaking_rate=3,
                             speaking_rate_source="asr-words", jitter=0.01, shimmer=0.05, hnr_db=15)
    return VoiceAffect(utterance_id=uid, t_start=t_start, t_end=t_end, features=features, arousal=0.8,
                       arousal_rule="prosody-arousal-v2", confidence=0.6, t_capture=t_end,
                       labels=list(LABELS) if probs else [], probs=probs,
                       valence=0.2 if probs else None, valence_confidence=0.2 if probs else 0.0)


def text_affect(transcript: Transcript) -> TextAffect:
    common = dict(utterance_id=transcript.utterance_id, t_start=transcript.t_start, t_end=transcript.t_end,
                  text=transcript.text, final=True, labels=list(LABELS), t_capture=transcript.t_capture)
    if not transcript.valid:
        return TextAffect(**common, probs=[1 / 7] * 7, valid=False, note=f"transcription failed: {transcript.error}")
    return TextAffect(**common, probs=[0.02, 0.02, 0.02, 0.8, 0.04, 0.05, 0.05], valence=0.7, arousal=0.4,
                      confidence=0.6, method="prototype-similarity-v1")


# ---------------------------------------------------------------- the simulation


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Sim:
    """Feeds a step messages at their arrival times, calling ``idle`` every 10 ms in between."""

    step: FusionStep
    clock: Clock
    out: list[tuple[int, str, Message]] = field(default_factory=list)

    def run(self, events: list[tuple[int, str, Message]], until: int) -> "Sim":
        events = sorted(events, key=lambda e: e[0])
        t = self.clock.now
        for at, topic, msg in events:
            t = self._idle_until(t, at)
            self.clock.now = at
            self.out.extend((at, tp, m) for tp, m in self.step.process(topic, msg))
        self._idle_until(t, until)
        return self

    def _idle_until(self, t: int, until: int) -> int:
        while t + 10 * MS < until:
            t += 10 * MS
            self.clock.now = t
            self.out.extend((t, tp, m) for tp, m in self.step.idle(t))
        return t

    def frames(self) -> list[AffectFrame]:
        return [m for _, tp, m in self.out if tp == "affect.frame"]

    def utterances(self, stage: str = "final") -> list[AffectUtterance]:
        return [m for _, tp, m in self.out if tp == "affect.utterance" and m.stage == stage]

    def published_at(self, stage: str = "final") -> int:
        """When the first utterance record of ``stage`` went out, on the step's clock."""
        return next(at for at, tp, m in self.out if tp == "affect.utterance" and m.stage == stage)

    def frame_at(self, seconds: float) -> AffectFrame:
        i = round(seconds * 30)
        return next(f for f in self.frames() if f.frame_index == i)


def make_sim(model: FusionModel, absence: Absence | None = None, **settings: float) -> Sim:
    clock = Clock()
    return Sim(FusionStep(model, FusionConfig(**settings), absence, clock), clock)


def stream(n_frames: int, faces_of=lambda i: [face()], face_ok=lambda i: True, face_delay=lambda i: FACE_DELAY,
           speech: list[Speech] = ()) -> list[tuple[int, str, Message]]:
    """Video frames, their face.tracks (``faces_of(i)``; none where ``face_ok(i)`` is False) and speech."""
    events = []
    for i in range(n_frames):
        events.append((t_frame(i) + MS, "video.frame", video(i)))
        if face_ok(i):
            events.append((t_frame(i) + face_delay(i), "face.tracks", tracks(i, faces_of(i))))
    for s in speech:
        events.extend(s.messages())
    return events


def talking_face(speech: Speech, track_id: int = 1):
    return lambda i: [face(track_id, mouth=mouth_at(t_frame(i), speech))]


def inputs_of(person) -> dict:
    return {x.modality: x for x in person.inputs}


# ---------------------------------------------------------------- tests: frames and utterances


def test_one_face_and_an_utterance_give_frames_with_all_three_and_one_utterance(model):
    speech = Speech(T0 + 300 * MS, T0 + 2300 * MS)
    sim = make_sim(model).run(stream(120, talking_face(speech), speech=[speech]), until=t_frame(120))
    frames = sim.frames()
    assert [f.frame_index for f in frames] == list(range(120))  # every frame once, in order
    assert all(f.t_capture == t_frame(f.frame_index) for f in frames)
    assert not frames[0].valid and frames[0].notes["face"] == "no face.tracks yet: face node starting or down"
    assert all(f.valid for f in frames[1:])  # from the first face.tracks on, frames wait for theirs
    before, after = sim.frame_at(1.0), sim.frame_at(3.5)
    assert [p.track_id for p in before.persons] == [1] and set(before.persons[0].modalities) == {"face"}
    assert before.missing == ["voice", "text"] and "utterance is in progress" in before.notes["voice"]
    person = after.persons[0]
    assert person.track_id == 1 and set(person.modalities) == {"face", "voice", "text"} and not after.missing
    assert all(w > 0 for w in person.modalities.values()) and sum(person.modalities.values()) == pytest.approx(1)
    voice = inputs_of(person)["voice"]
    assert voice.present and voice.arousal == 0.8 and voice.valence is None and voice.probs == []
    assert "arousal only" in voice.reason and voice.utterance_id == speech.t_start
    assert person.arousal_raw > before.persons[0].arousal_raw  # the loud voice raised arousal
    assert abs(sum(person.probs) - 1) < 1e-5 and person.labels == list(LABELS)
    assert np.argmax(person.probs) == LABELS.index("happy") and 0 < person.confidence <= 1

    [utt] = sim.utterances()
    assert utt.utterance_id == speech.t_start and (utt.t_start, utt.t_end) == (speech.t_start, speech.t_end)
    assert utt.t_speech_end == speech.t_end - HANGOVER  # when the speech stopped, as the VAD said
    assert utt.text == speech.text and len(utt.words) == 8 and utt.valid and utt.t_capture == speech.t_end
    assert [x.modality for x in utt.inputs] == ["face", "voice", "text"] and all(x.present for x in utt.inputs)
    assert not utt.missing and utt.speaker_track_id == 1 and "mouth moved with the voice" in utt.speaker_reason
    assert utt.speaker_scores["1"] > 0.3
    assert "speaker's face (track 1)" in utt.inputs[0].reason and np.argmax(utt.probs) == LABELS.index("happy")
    assert sim.published_at() == speech.t_end + 340 * MS  # as soon as text.affect, the last of the three, came


def test_an_utterance_gets_a_first_record_from_face_and_voice_at_once_then_the_final_with_the_words(model):
    speech = Speech(T0 + 300 * MS, T0 + 2300 * MS, voice_delay=40 * MS)
    sim = make_sim(model).run(stream(120, talking_face(speech), speech=[speech]), until=t_frame(120))
    [first], [final] = sim.utterances("acoustic"), sim.utterances("final")
    assert sim.published_at("acoustic") == speech.t_end + 40 * MS  # as soon as voice.affect came
    assert sim.published_at("final") == speech.t_end + 340 * MS
    assert first.utterance_id == final.utterance_id and first.t_speech_end == final.t_speech_end
    assert first.text == "" and first.words == [] and first.missing == ["text"]
    assert first.notes["text"] == "the words come with the final record (stage final)"
    assert first.speaker_track_id == final.speaker_track_id == 1
    assert [x.modality for x in first.inputs if x.present] == ["face", "voice"]
    assert final.text == speech.text and not final.missing


def test_a_first_record_waits_for_the_voice_no_longer_than_the_acoustic_wait(model):
    speech = Speech(T0 + 300 * MS, T0 + 1300 * MS, voice_delay=320 * MS)
    sim = make_sim(model, acoustic_wait_s=0.1).run(stream(90, talking_face(speech), speech=[speech]),
                                                   until=t_frame(90))
    [first] = sim.utterances("acoustic")
    assert speech.t_end + 100 * MS <= sim.published_at("acoustic") <= speech.t_end + 140 * MS
    assert first.missing == ["voice", "text"] and "no voice.affect 0.1 s after the end" in first.notes["voice"]
    [final] = sim.utterances("final")
    assert "voice" not in final.missing  # the final record has it


def test_voice_class_probabilities_count_only_when_a_trained_voice_model_gives_them(model):
    angry = [0.7, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]
    people = {}
    for name, probs in (("rule", []), ("model", angry)):
        speech = Speech(T0 + 300 * MS, T0 + 2300 * MS, voice_probs=probs)
        sim = make_sim(model).run(stream(90, talking_face(speech), speech=[speech]), until=t_frame(90))
        people[name] = sim.frame_at(2.8).persons[0]
    voice = inputs_of(people["model"])["voice"]
    assert voice.valence == 0.2 and voice.probs == pytest.approx(angry) and "arousal only" not in voice.reason
    assert people["model"].probs[0] > people["rule"].probs[0] + 0.05  # the voice model's "angry" pulled the pool
    assert people["model"].valence_raw < people["rule"].valence_raw  # and its valence 0.2 < face and text
    # its valence is weighed by the model's own low confidence (0.2, decayed), not the prosody rule's 0.6
    assert voice.valence_confidence == pytest.approx(0.2 * voice.confidence / 0.6)
    assert inputs_of(people["model"])["face"].valence_confidence == inputs_of(people["model"])["face"].confidence
    assert inputs_of(people["rule"])["voice"].valence_confidence == 0.0


def test_no_face_in_view_gives_a_voice_and_text_person_that_decays_then_an_invalid_frame(model):
    speech = Speech(T0 + 300 * MS, T0 + 1300 * MS)
    sim = make_sim(model, speech_hold_s=3.0, speech_decay_s=1.0)
    sim.run(stream(180, faces_of=lambda i: [], speech=[speech]), until=t_frame(180))
    early, later = sim.frame_at(2.0), sim.frame_at(4.0)
    for frame in (early, later):
        [person] = frame.persons
        assert person.track_id is None and set(person.modalities) == {"voice", "text"}
        assert frame.missing == ["face"] and frame.notes["face"] == "no face in view"
        assert inputs_of(person)["face"].reason == "no face in view"
    decay = inputs_of(later.persons[0])["text"].confidence / inputs_of(early.persons[0])["text"].confidence
    assert decay == pytest.approx(math.exp(-2.0), rel=1e-3)
    assert later.persons[0].confidence < early.persons[0].confidence
    gone = sim.frame_at(5.0)  # 3.7 s after the end: past the hold
    assert not gone.valid and gone.persons == [] and gone.missing == ["face", "voice", "text"]
    assert gone.notes["voice"].startswith("silence: the last utterance ended 3.7 s ago")
    assert "nothing to fuse" in gone.note
    [utt] = sim.utterances()
    assert utt.missing == ["face"] and utt.notes["face"] == "no face in view during the utterance"
    assert utt.speaker_track_id is None


def test_silence_gives_face_only(model):
    sim = make_sim(model).run(stream(30), until=t_frame(30))
    for frame in sim.frames()[1:]:
        [person] = frame.persons
        assert frame.valid and set(person.modalities) == {"face"} and person.modalities["face"] == 1.0
        assert frame.missing == ["voice", "text"] and frame.notes["voice"] == "silence: no speech heard yet"
        assert person.valence_raw == pytest.approx(0.6, abs=1e-5)  # face alone: its own valence
    assert sim.utterances() == []


def test_face_node_down_frames_keep_coming_without_the_face_and_come_back_after_restart(model):
    down = range(30, 90)  # the face node dies at frame 30 and is back at frame 90
    sim = make_sim(model).run(stream(150, face_ok=lambda i: i not in down), until=t_frame(150))
    frames = sim.frames()
    assert [f.frame_index for f in frames] == list(range(150))
    published = {m.frame_index: at for at, tp, m in sim.out if tp == "affect.frame"}
    # frame_wait_s (100 ms) at most, plus the simulation's 10 ms idle period
    assert max(published[i] - t_frame(i) for i in range(150)) <= 111 * MS
    for f in frames:
        for p in f.persons:
            x = inputs_of(p)["face"]
            assert not x.present or abs(x.age_ms) <= 500  # never a face older than face_timeout_s
    without = [f for f in frames if f.frame_index in down and "face" in f.missing]
    assert without and min(f.frame_index for f in without) <= 30 + 16  # within 0.5 s (face_timeout_s)
    assert all(f.notes["face"].startswith("face node down: no face.tracks for") for f in without)
    latest_late = max(published[f.frame_index] - f.t_capture for f in without[5:])
    assert latest_late <= 2 * MS  # once the node is judged down, frames no longer wait for it
    assert all(set(f.persons[0].modalities) == {"face"} for f in frames if f.frame_index >= 91)


def test_a_slow_face_node_never_gives_face_values_older_than_the_timeout(model):
    # face.tracks come 300 ms after capture for every 4th frame only: the others never come
    sim = make_sim(model, face_timeout_s=0.2).run(
        stream(90, face_ok=lambda i: i % 4 == 0, face_delay=lambda i: 300 * MS), until=t_frame(95))
    frames = sim.frames()
    assert [f.frame_index for f in frames] == list(range(90))
    ages = [inputs_of(p)["face"].age_ms for f in frames for p in f.persons if inputs_of(p)["face"].present]
    assert ages and max(abs(a) for a in ages) <= 200
    late = [f for f in frames if "face" in f.missing]
    assert late and all(f.notes["face"].startswith(("face.tracks late", "no face.tracks yet")) for f in late)


def test_a_face_that_leaves_and_returns_is_never_reported_while_away(model):
    away = range(40, 80)
    sim = make_sim(model).run(stream(120, faces_of=lambda i: [] if i in away else [face()]), until=t_frame(120))
    for f in sim.frames():
        if f.frame_index in away:
            assert f.persons == [] and not f.valid and f.notes["face"] == "no face in view"
        elif f.frame_index > 0:
            assert f.persons[0].track_id == 1


def test_asr_failure_gives_an_utterance_from_voice_and_face_saying_so(model):
    speech = Speech(T0 + 300 * MS, T0 + 2300 * MS, asr_ok=False)
    sim = make_sim(model).run(stream(120, talking_face(speech), speech=[speech]), until=t_frame(120))
    [utt] = sim.utterances()
    assert utt.valid and utt.missing == ["text"] and utt.notes["text"] == "ASR failed: decoder crashed"
    assert [x.present for x in utt.inputs] == [True, True, False] and utt.text == ""
    frame = sim.frame_at(3.5)
    assert set(frame.persons[0].modalities) == {"face", "voice"}
    assert frame.notes["text"] == "the last utterance gave none: transcription failed: decoder crashed"


def test_slow_asr_the_utterance_goes_out_after_the_wait_with_what_came(model):
    speech = Speech(T0 + 300 * MS, T0 + 1300 * MS)
    events = [e for e in stream(120, talking_face(speech), speech=[speech])
              if e[1] not in ("speech.transcript", "text.affect")]
    sim = make_sim(model, utterance_wait_s=2.0).run(events, until=t_frame(120))
    [utt] = sim.utterances()
    at = sim.published_at()
    assert speech.t_end + 2 * NS <= at <= speech.t_end + 2 * NS + 20 * MS
    assert utt.missing == ["text"] and "no transcript 2.0 s after the end: ASR failed or slow" == utt.notes["text"]


def test_system_health_names_a_node_that_is_down(model):
    speech = Speech(T0 + 300 * MS, T0 + 1300 * MS)
    events = [e for e in stream(60, talking_face(speech), speech=[speech]) if e[1] not in ("text.affect",)]
    health = SystemHealth(nodes=[NodeHealth(name="text", alive=False, pid=0, restarts=2, uptime_s=0, rate_hz=0,
                                            state="backoff")])
    events.append((speech.t_end + 100 * MS, "system.health", health))
    sim = make_sim(model).run(events, until=t_frame(60))
    [utt] = sim.utterances()
    assert utt.notes["text"] == "text node down (backoff)"
    assert sim.published_at() < speech.t_end + 400 * MS  # not waited for: the node is known to be down


def test_the_steady_label_changes_only_after_the_new_class_has_led_for_the_hold():
    hold = LabelHold(0.3)
    shown = [hold.update(1, t_frame(i), top) for i, top in enumerate(
        ["happy"] * 5 + ["sad"] * 3 + ["happy"] * 5 + ["sad"] * 12 + ["fear"] * 2 + ["sad"] * 3)]
    assert shown[:13] == ["happy"] * 13  # three frames of sad (0.1 s) never show
    lead = math.ceil(0.3 * NS / PERIOD)  # frames from sad's first frame until it has led for 0.3 s of capture time
    assert shown[13:13 + lead] == ["happy"] * lead and shown[13 + lead:] == ["sad"] * (17 - lead)  # fear: too short
    assert LabelHold(0.0).update(1, 0, "fear") == "fear" and hold.update(2, t_frame(40), "angry") == "angry"


def test_affect_frame_carries_the_steady_label_and_the_unfiltered_probabilities(model):
    flicker = {10, 11, 20, 21, 22}  # two short dips into sad
    sim = make_sim(model, label_hold_s=0.3).run(
        stream(60, faces_of=lambda i: [face(probs=SAD if i in flicker or i >= 40 else HAPPY)]), until=t_frame(60))
    persons = {f.frame_index: f.persons[0] for f in sim.frames() if f.persons}
    assert set(range(1, 59)) <= set(persons)
    assert {persons[i].label for i in range(1, 48)} == {"happy"}
    assert all(top_label(persons[i].labels, persons[i].probs) == "sad" for i in flicker)  # the probabilities as fused
    assert persons[max(persons)].label == "sad" and top_label(persons[max(persons)]) == "sad"


def test_smoothing_a_step_in_face_valence_reaches_63_percent_after_tau(model):
    step_at = 30
    sim = make_sim(model, smoothing_tau_s=0.3).run(
        stream(90, faces_of=lambda i: [face(valence=-0.5 if i < step_at else 0.5)]), until=t_frame(90))
    at_tau = next(f for f in sim.frames() if f.frame_index == step_at + 8).persons[0]  # 0.3 s after the step
    assert at_tau.valence_raw == pytest.approx(0.5, abs=1e-5)
    assert at_tau.valence == pytest.approx(-0.5 + 1.0 * (1 - math.exp(-1)), abs=0.01)
    before = next(f for f in sim.frames() if f.frame_index == step_at - 1).persons[0]
    assert before.valence == pytest.approx(-0.5, abs=1e-5)
    unsmoothed = make_sim(model, smoothing_tau_s=0.0).run(
        stream(40, faces_of=lambda i: [face(valence=-0.5 if i < step_at else 0.5)]), until=t_frame(40))
    assert unsmoothed.frame_at(1.0).persons[0].valence == pytest.approx(0.5, abs=1e-5)


def test_latency_is_capture_to_message(model):
    sim = make_sim(model).run(stream(10), until=t_frame(10))
    assert sim.frames()[0].latency_ms == pytest.approx(1.0)  # no face.tracks yet: published on arrival
    assert all(f.latency_ms == pytest.approx(FACE_DELAY / MS) for f in sim.frames()[1:])
    assert all(f.fusion_backend == "onnxruntime:CPUExecutionProvider" for f in sim.frames())


def test_two_faces_speech_goes_to_the_face_whose_mouth_moved(model):
    speech = Speech(T0 + 300 * MS, T0 + 2300 * MS)
    faces_of = lambda i: [face(1, SAD, -0.6, -0.3, mouth=0.05),  # noqa: E731
                          face(2, HAPPY, 0.6, 0.3, mouth=mouth_at(t_frame(i), speech))]
    sim = make_sim(model).run(stream(100, faces_of, speech=[speech]), until=t_frame(100))
    [utt] = sim.utterances()
    assert utt.speaker_track_id == 2 and "track 2" in utt.inputs[0].reason
    frame = sim.frame_at(3.0)
    by_track = {p.track_id: p for p in frame.persons}
    assert set(by_track) == {1, 2} and set(by_track[2].modalities) == {"face", "voice", "text"}
    assert set(by_track[1].modalities) == {"face"}
    assert inputs_of(by_track[1])["voice"].reason == "speech attributed to track 2"


def test_two_faces_and_no_speaker_give_a_separate_voice_text_person(model):
    speech = Speech(T0 + 300 * MS, T0 + 1300 * MS)
    faces_of = lambda i: [face(1, mouth=0.05), face(2, mouth=0.05)]  # noqa: E731: nobody's mouth moves
    sim = make_sim(model).run(stream(70, faces_of, speech=[speech]), until=t_frame(70))
    [utt] = sim.utterances()
    assert utt.speaker_track_id is None and utt.missing == ["face"]
    assert utt.notes["face"].startswith("2 faces in view and the speaker not attributed")
    persons = {p.track_id: p for p in sim.frame_at(2.0).persons}
    assert set(persons) == {1, 2, None} and set(persons[None].modalities) == {"voice", "text"}
    assert persons[None].inputs[0].reason == "speaker not attributed among the faces in view"


def test_what_the_config_leaves_out_is_named_and_not_waited_for(model):
    config = Config()
    config.sources.audio = "none"
    sim = make_sim(model, Absence.from_config(config)).run(stream(10), until=t_frame(10))
    assert sim.frames()[-1].notes == {"voice": "no microphone (sources.audio = none)",
                                      "text": "no microphone (sources.audio = none)"}
    config = Config()
    config.sources.video, config.nodes.asr = "none", False
    absence = Absence.from_config(config)
    assert absence.reasons == {"face": "no camera (sources.video = none)", "text": "ASR disabled (nodes.asr = false)"}
    speech = Speech(T0 + 300 * MS, T0 + 1300 * MS)
    events = [e for e in speech.messages() if e[1] not in ("speech.transcript", "text.affect")]
    sim = make_sim(model, absence).run(events, until=T0 + 3 * NS)
    [utt] = sim.utterances()
    assert sim.frames() == [] and utt.missing == ["face", "text"]
    assert sim.published_at() == speech.t_end + 320 * MS


def test_a_source_without_class_probabilities_never_moves_the_fused_classes(model):
    face_est = Estimate("face", HAPPY, 0.6, 0.3, 0.8, T0)
    voice_est = Estimate("voice", None, None, 0.9, 0.6, T0)
    with_voice, without = (model.fuse(FusionBatch([(face_est, v, None)])) for v in (voice_est, None))
    np.testing.assert_allclose(with_voice.probs, without.probs, atol=1e-6)
    assert with_voice.weights[0, 1] > 0 and with_voice.va[0, 1] > without.va[0, 1]
    assert with_voice.va[0, 0] == pytest.approx(without.va[0, 0], abs=1e-6)  # voice has no valence


# ---------------------------------------------------------------- the node in a running pipeline


SAMPLE = ("--config", "configs/sample.toml")


def assert_frame_rate(frames: list[AffectFrame], fps: float = 30.0) -> None:
    span_s = (frames[-1].t_capture - frames[0].t_capture) / 1e9
    assert 0.9 * fps <= (len(frames) - 1) / span_s <= 1.1 * fps
    indices = [f.frame_index for f in frames]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)


def finals(sub: Subscriber, count: int, timeout: float) -> list[AffectUtterance]:
    """The next ``count`` final utterance records (each within ``timeout`` s); fewer when one does not come."""
    out: list[AffectUtterance] = []
    while len(out) < count and (got := sub.recv(timeout=timeout)) is not None:
        if got.msg.stage == "final":
            out.append(got.msg)
    return out


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_pipeline_on_the_sample_clip_gives_frames_at_frame_rate_and_one_utterance_per_sentence(start_pipeline):
    from moodwire.pipeline.sources.sample_clip import SENTENCES

    pipeline = start_pipeline(*SAMPLE)
    pipeline.wait_healthy(timeout=120)
    spoken = Subscriber(pipeline.endpoint, ["affect.utterance"], queue_everything=True)  # meanwhile
    try:
        frames = pipeline.collect("affect.frame", 150, timeout=30.0)
        assert all(isinstance(f, AffectFrame) and f.source == "fusion" for f in frames)
        assert_frame_rate(frames)
        assert all(f.persons or f.notes for f in frames) and all(set(f.missing) == set(f.notes) for f in frames)
        if not espeak_available():
            return  # tone bursts, not sentences: the count of utterances would mean nothing
        # every sentence of the clip and the first again (one loop); the first that comes may have begun
        # before the VAD was listening (the sources start with the nodes): left out
        got = finals(spoken, len(SENTENCES) + 2, timeout=20.0)
    finally:
        spoken.close()
    assert len(got) == len(SENTENCES) + 2, pipeline.output()[-3000:]
    utterances = got[1:]
    for utt in utterances:  # every one names its modalities, and says why one is missing
        assert [x.modality for x in utt.inputs] == ["face", "voice", "text"] and utt.valid
        assert "voice" not in utt.missing and set(utt.missing) == set(utt.notes)
        assert 1.5 < (utt.t_end - utt.t_start) / 1e9 < 5.0  # a whole sentence, not a fragment
    gaps = np.diff([u.t_start for u in utterances]) / 1e9
    assert all(3.0 < g < 5.0 for g in gaps), gaps  # the clip's sentences start every 4 s: one utterance each
    assert any(u.text and "text" not in u.missing for u in utterances)
    status = re.findall(r"moodwire: +([\d.]+) fps \| latency \d+ ms \| faces 1 .*\| last: ", pipeline.output())
    assert status and 0 < float(status[-1]) <= 35  # the live status line (every 10 s into a log)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_killing_the_face_node_frames_go_on_without_the_face_and_it_comes_back(start_pipeline):
    import os
    import signal

    from moodwire.pipeline.core.clock import now_ns

    pipeline = start_pipeline(*SAMPLE, "--set", "sources.audio=none")
    health = pipeline.wait_healthy(timeout=120)
    assert wait_for_face(pipeline, within_s=30), "the sample clip's drawn face was never found"
    os.kill(next(n.pid for n in health.nodes if n.name == "face"), signal.SIGKILL)
    killed = now_ns()
    after = pipeline.collect("affect.frame", 90, timeout=5.0)
    assert_frame_rate(after)
    down = [f for f in after if f.notes.get("face", "").startswith("face node down")]
    assert down and (down[0].t_capture - killed) / 1e9 < 2.0
    assert all(p.track_id is None or "face" not in f.missing for f in down for p in f.persons)
    frames = wait_for_face(pipeline, within_s=60)
    assert frames, "the face never came back after the face node's restart"
    assert_frame_rate(frames)


def wait_for_face(pipeline, within_s: float) -> list | None:
    """The first 30 affect.frame messages (within ``within_s``) of which at least 25 use the face.

    A window rather than a single count: the first frames after start or restart may precede the
    face node's first detection, and a shared CI machine may stall a frame or two on the way.
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        frames = pipeline.collect("affect.frame", 30, timeout=5.0)
        if sum("face" not in f.missing for f in frames) >= 25:
            return frames
    return None


def file_source(path, *more: str) -> list[str]:
    return ["--set", "sources.video=file", "--set", f"sources.file={path}", "--set", "sources.loop=true", *more]


def with_a_sentence(clip):
    """``clip`` with one espeak-ng sentence from 0.2 s (before the face leaves), or silence where
    espeak-ng is missing; and its length in frames."""
    from moodwire.pipeline.core.audio import AUDIO_RATE
    from moodwire.pipeline.sources.spoken import speak
    from moodwire.tools.media.reference import FPS, read_frames, write_video

    out = clip.with_name(f"{clip.stem}_spoken.mp4")
    frames = read_frames(clip, size=None)
    if not out.is_file():
        audio = np.zeros(len(frames) * AUDIO_RATE // FPS, np.int16)
        if espeak_available():
            voice = speak("I am really happy to see you again.")[: audio.size - AUDIO_RATE // 5]
            audio[AUDIO_RATE // 5: AUDIO_RATE // 5 + voice.size] = voice
        write_video(out, frames, FPS, audio)
    return out, len(frames)


@pytest.mark.slow
def test_a_face_that_leaves_and_returns_through_the_running_nodes_is_never_stale(analyzed, reference_clips):
    """The real cut-away clip with one spoken sentence, through the real processes losslessly: while the
    face is away, the frames carry voice/text only (no track) or nothing, never a stale face; when it is
    back, the face is used again."""
    from moodwire.tools.media.reference import LEAVE_SPAN

    clip, length = with_a_sentence(reference_clips["leaves_and_returns"])
    frames = analyzed(clip)["frames"]
    assert sorted(frames["frame_index"].unique()) == list(range(length))
    first = frames.drop_duplicates("frame_index").set_index("frame_index")
    away = first.loc[[i for i in LEAVE_SPAN[3:]]]  # the detector may take a frame or two
    assert away["track_id"].isna().all() and away["missing"].str.contains("face").all()
    voiced = away[away["modalities"].notna()]
    print(f"{len(voiced)} of {len(away)} frames without a face carry voice/text")
    assert len(voiced) or not espeak_available()  # the sentence is held (fusion.speech_hold_s) past the cut
    assert all(set(m.split(";")) <= {"voice", "text"} for m in voiced["modalities"])
    back = first.loc[[i for i in range(length) if i not in range(LEAVE_SPAN.start - 3, LEAVE_SPAN.stop + 10)]]
    assert back["track_id"].notna().mean() >= 0.9


@pytest.mark.slow
@pytest.mark.skipif(not espeak_available(), reason="the two-face clip's voice is made by espeak-ng")
def test_two_faces_one_speaking_through_the_running_nodes_the_utterances_name_the_speaking_face(
        analyzed, session_cache):
    """The real two-face clip (tools/media/two_faces.py: the left face speaks, the right one is
    still) through the real processes, losslessly (``moodwire analyze``); the track ids come from
    the frames table, left or right by where the box is."""
    from moodwire.tools.media.two_faces import two_faces

    folder = session_cache / "reference"
    folder.mkdir(exist_ok=True)
    clip = two_faces(folder, "still", "shaped")
    result = analyzed(clip.path)
    frames, utterances = result["frames"].dropna(subset=["track_id"]), result["utterances"]
    centre = frames.assign(x=(frames["box_x0"] + frames["box_x1"]) / 2).groupby("track_id")["x"].mean()
    side = {int(t): "left" if x < 320 else "right" for t, x in centre.items()}
    assert sorted(side.values()) == ["left", "right"]
    assert len(utterances) >= 3, utterances
    for _, utt in utterances.iterrows():
        assert side.get(utt["speaker_track_id"]) == "left", (utt.to_dict(), side)
        assert pd.isna(utt["face_missing"]) and pd.isna(utt["voice_missing"])


def video_source_health(state: str) -> SystemHealth:
    return SystemHealth(nodes=[NodeHealth(name="video_source", alive=False, pid=0, restarts=0, uptime_s=0, rate_hz=0,
                                          state=state, host="robot")])


@pytest.mark.parametrize("state", ["unreachable", "backoff"])
def test_frames_go_on_without_video_while_the_video_source_is_down_or_unreachable(model, state):
    events = stream(30) + [(t_frame(30) + k * NS, "system.health", video_source_health(state)) for k in range(3)]
    sim = make_sim(model).run(events, until=t_frame(30) + 3 * NS)
    real = [f for f in sim.frames() if f.frame_index >= 0]
    stand_ins = [(at, f) for at, tp, f in sim.out if tp == "affect.frame" and f.frame_index == -1]
    assert len(real) == 30
    assert stand_ins and stand_ins[0][0] >= t_frame(30)  # only once health says so
    gaps = [b[0] - a[0] for a, b in zip(stand_ins, stand_ins[1:])]
    assert min(gaps) >= PERIOD and len(stand_ins) >= 2.5 * NS / (PERIOD + 10 * MS)  # one a period, or an idle tick
    frame = stand_ins[-1][1]
    assert not frame.valid and frame.persons == [] and frame.t_capture == stand_ins[-1][0]
    assert frame.notes["face"].startswith("no video.frame for ") and frame.notes["face"].endswith(
        f"video_source is {state}")


def test_no_frames_without_video_once_the_video_source_has_finished(model):
    events = stream(30) + [(t_frame(30) + k * NS, "system.health", video_source_health("finished")) for k in range(3)]
    sim = make_sim(model).run(events, until=t_frame(30) + 3 * NS)
    assert [f.frame_index for f in sim.frames()] == list(range(30))


def test_each_stream_has_its_own_fusion_state_and_the_models_are_shared(model):
    from moodwire.pipeline.core.streams import PerStream

    first = FusionStep(model, FusionConfig(), None, Clock())
    per = PerStream(first)
    out: list[tuple[str, Message]] = []
    for i in range(10):
        for stream, probs in (("cam1", HAPPY), ("cam2", SAD)):
            first.clock.now = t_frame(i) + FACE_DELAY
            out += per.process(f"video.frame@{stream}", video(i))
            out += per.process(f"face.tracks@{stream}", tracks(i, [face(probs=probs)]))
    assert per.steps["cam1"] is first and per.steps["cam2"] is not first
    assert per.steps["cam2"].model is first.model
    frames = {topic: [m for t, m in out if t == topic] for topic in ("affect.frame@cam1", "affect.frame@cam2")}
    assert [f.frame_index for f in frames["affect.frame@cam1"]] == list(range(10))
    assert [f.frame_index for f in frames["affect.frame@cam2"]] == list(range(10))  # not "older than published"
    top = {topic: LABELS[int(np.argmax(fs[-1].persons[0].probs))] for topic, fs in frames.items()}
    assert top == {"affect.frame@cam1": "happy", "affect.frame@cam2": "sad"}
    first.clock.now = t_frame(10) + NS
    health = SystemHealth(nodes=[*video_source_health("unreachable").nodes[:1]])
    health.nodes[0].stream = "cam2"  # only cam2's camera is gone
    per.process("system.health", health)
    later = per.idle(t_frame(10) + 2 * NS)
    assert [t for t, m in later if t.startswith("affect.frame") and m.frame_index == -1] == ["affect.frame@cam2"]
