"""The VAD: the segmenter's rules on decision patterns, the step on real speech (espeak-ng) with
both backends, broken streams and bad input, the Silero model's checks, and the node in a pipeline."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from moodwire.engines import registry
from moodwire.engines.registry import ChecksumMismatch, ModelError, ModelMissing
from moodwire.pipeline.core.audio import PAUSE_S
from moodwire.pipeline.core.config import Config, VadConfig
from moodwire.pipeline.core.messages import AudioChunk, Message, SpeechEvent, UtteranceAudio
from moodwire.pipeline.core.node import BadInput
from moodwire.pipeline.sources.spoken import Span, SpokenScript, espeak_available, speak, spoken_script, write_wav
from moodwire.pipeline.vad.segmenter import Closed, Opened, Segmenter, SegmenterSettings
from moodwire.pipeline.vad.step import VadStep, build_vad_step
from moodwire.pipeline.vad.webrtc import WebrtcClassifier

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")

T0 = 10**12  # capture ns of the first sample fed
NS = 62_500  # ns per sample at 16 kHz: sample i is captured at T0 + i * NS, exactly
CHUNK = 320
SENTENCES = ["The weather is lovely today.", "I would like a cup of tea please.",
             "Where did you put my keys?", "This meeting is running very late.",
             "Thank you so much for your help."]
MONOLOGUE = ["We walked along the river in the morning.", "The water was calm and very clear.",
             "Small boats were waiting near the old bridge.", "A man was selling bread from his cart.",
             "We bought two loaves and sat on a bench.", "The sun came out and the town woke up.",
             "Children ran past us on their way to school.", "Then we went home for a cup of coffee."]

# ---------------------------------------------------------------- the segmenter, on decision patterns

FRAME = 10  # samples per pattern character
RULES = SegmenterSettings(pre_roll=30, hangover=40, min_speech=30, max_utterance=200, split_pause=20, hard_max=400)


def segment(pattern: str, settings: SegmenterSettings = RULES, finish: bool = False) -> list:
    """Events of a pattern: 'S' a speech frame, '.' a non-speech one, FRAME samples each."""
    seg = Segmenter(settings)
    events = [e for i, c in enumerate(pattern) for e in seg.push((i + 1) * FRAME, c == "S")]
    return events + (seg.finish() if finish else [])


def test_an_utterance_reaches_back_by_the_pre_roll_and_ends_after_the_hangover():
    events = segment("......SSSSSS" + "." * 8)
    assert events == [Opened(start=30, onset=60, decided_at=90),
                      Closed(start=30, end=160, speech_end=120, reason="pause")]


def test_pre_roll_never_reaches_before_the_stream_or_into_the_previous_utterance():
    first, closed, second, _ = segment("SSSS....SSSS....")
    assert first.start == 0 and closed.end == 80
    assert second.onset == 80 and second.start == 80  # the pre-roll would be 50, inside the first


def test_bursts_shorter_than_min_speech_are_dropped_but_close_bursts_add_up():
    assert segment("..SS" + "...." + "SS" + "....." + "S" + "....") == []
    events = segment("..SS.S" + "." * 6)
    assert [type(e) for e in events] == [Opened, Closed] and events[0].onset == 20


def test_a_pause_shorter_than_the_hangover_keeps_one_utterance():
    events = segment("SSS...SSS...SSS" + "." * 5)
    assert [type(e) for e in events] == [Opened, Closed]
    assert events[1] == Closed(start=0, end=190, speech_end=150, reason="pause")


def test_past_max_utterance_the_next_short_pause_splits_and_speech_reopens_at_once():
    # pauses of 2 frames (20 samples = split_pause, below the 40-sample hangover)
    events = segment(("SSSSSSSS.." * 3) + "S" * 5 + "." * 5)
    assert events == [Opened(start=0, onset=0, decided_at=30),
                      Closed(start=0, end=200, speech_end=180, reason="max_length"),  # the pause reaching 200
                      Opened(start=200, onset=200, decided_at=230),  # no pre-roll into the first
                      Closed(start=200, end=390, speech_end=350, reason="pause")]


def test_hard_max_cuts_without_a_pause_and_the_speech_goes_on_in_a_new_utterance():
    events = segment("S" * 50 + "." * 5)
    assert events[1] == Closed(start=0, end=400, speech_end=400, reason="max_length")
    assert events[2].start == 400 and events[3].reason == "pause" and events[3].end == 540


def test_stream_end_closes_an_open_utterance_and_drops_a_pending_one():
    assert segment("..SSSSS", finish=True)[-1] == Closed(start=0, end=70, speech_end=70, reason="stream_end")
    assert segment("....SS", finish=True) == []


def test_the_audio_kept_covers_the_pre_roll_of_any_future_utterance():
    seg = Segmenter(RULES)
    for i in range(10):
        seg.push((i + 1) * FRAME, False)
    assert seg.keep_from == 100 - 30
    seg.push(110, True)
    seg.push(120, False)
    assert seg.keep_from == 100 - 30  # pending: from the onset's pre-roll
    seg.push(130, True)
    seg.push(140, True)
    assert seg.is_open and seg.keep_from == 70


def test_settings_come_from_the_config_in_samples():
    s = SegmenterSettings.from_config(VadConfig())
    assert (s.pre_roll, s.hangover, s.min_speech, s.max_utterance, s.split_pause, s.hard_max) == \
        (4800, 6400, 4000, 192000, 1920, 320000)


# ---------------------------------------------------------------- the step, on real speech


def chunks(samples: np.ndarray, first_index: int = 0, t0: int = T0) -> list[AudioChunk]:
    return [AudioChunk(chunk_index=first_index + k, sample_rate=16000, samples=samples[i:i + CHUNK],
                       t_capture=t0 + i * NS) for k, i in enumerate(range(0, samples.size, CHUNK))]


def feed(step: VadStep, items: list[AudioChunk], finish: bool = True) -> list[tuple[str, Message]]:
    out = [o for c in items for o in step.process("audio.chunk", c)]
    return out + (step.finish() if finish else [])


@dataclass
class Heard:
    start: SpeechEvent
    end: SpeechEvent
    pieces: list[UtteranceAudio]

    @property
    def span(self) -> tuple[int, int]:
        """(first, end) sample index in the fed stream."""
        return (self.start.t_start - T0) // NS, (self.end.t_end - T0) // NS


def heard(out: list[tuple[str, Message]]) -> list[Heard]:
    """Utterances in publishing order, checking the order of start, pieces and end on the way."""
    done, current = [], None
    for topic, msg in out:
        if topic == "speech.vad" and msg.kind == "start":
            assert current is None
            current = Heard(msg, None, [])
        elif topic == "speech.vad":
            assert current and msg.utterance_id == current.start.utterance_id and current.pieces[-1].final
            current.end = msg
            done.append(current)
            current = None
        else:
            assert current and msg.utterance_id == current.start.utterance_id and not (
                current.pieces and current.pieces[-1].final)
            current.pieces.append(msg)
    assert current is None
    return done


def voiced(samples: np.ndarray, start_s: float, end_s: float) -> tuple[int, int]:
    """Sample range from the first to the last loud sample of a sentence (espeak-ng pads its output)."""
    lo = int(start_s * 16000)
    loud = np.flatnonzero(np.abs(samples[lo:int(end_s * 16000)].astype(np.int32)) > 300)
    return lo + int(loud[0]), lo + int(loud[-1]) + 1


def with_vad(**changes) -> Config:
    return dataclasses.replace(Config(), vad=dataclasses.replace(VadConfig(), **changes))


@pytest.fixture(scope="module")
def script():
    return spoken_script(SENTENCES, gap_s=1.5)


@pytest.fixture(scope="module", params=["webrtcvad", "silero"])
def detected(request, script) -> tuple[str, list[Heard]]:
    step = build_vad_step(with_vad(backend=request.param))
    return request.param, heard(feed(step, chunks(script.samples)))


def test_each_sentence_is_one_utterance_that_contains_all_of_its_speech(detected, script):
    backend, utterances = detected
    assert len(utterances) == len(SENTENCES)
    for u, span in zip(utterances, script.spans):
        first, last = voiced(script.samples, span.start_s, span.end_s)
        start, end = u.span
        assert start <= first and last <= end, (backend, span.text, u.span, (first, last))
        assert first - start < 0.3 * 16000 + 512 and end - last < 1.0 * 16000  # pre-roll, hangover, padding
        assert u.start.utterance_id == u.start.t_start == u.end.t_start
        assert u.start.vad_backend == u.end.vad_backend == backend
        assert u.end.reason == "pause" and u.start.valid and u.end.valid
        hangover = u.end.t_end - u.end.t_speech_end
        assert 0.4e9 <= hangover < 0.4e9 + 512 * NS
        assert u.start.t_start < u.start.t_capture < u.end.t_speech_end  # decided after min_speech


def test_pieces_reassemble_to_exactly_the_utterance_audio(detected, script):
    _, utterances = detected
    piece = int(Config().vad.piece_s * 16000)
    for u in utterances:
        start, end = u.span
        sizes = [p.samples.size for p in u.pieces]
        assert [p.offset for p in u.pieces] == [0, *np.cumsum(sizes)[:-1]]
        assert all(0 < size <= piece for size in sizes)
        shorter = [p for p in u.pieces[:-1] if p.samples.size < piece]  # sent at once at a pause
        assert all(p.offset + p.samples.size - p.speech_end >= PAUSE_S * 16000 - 1 for p in shorter)
        assert shorter, "the pause before the end sends what was heard at once"
        ends = [p.speech_end for p in u.pieces]
        assert ends == sorted(ends) and all(0 < p.speech_end <= p.offset + p.samples.size for p in u.pieces)
        assert ends[-1] == round((u.end.t_speech_end - u.start.t_start) / NS)
        assert [p.final for p in u.pieces] == [False] * (len(u.pieces) - 1) + [True]
        assert all(p.t_capture == u.start.t_start + p.offset * NS and p.sample_rate == 16000 for p in u.pieces)
        joined = np.concatenate([p.samples for p in u.pieces])
        assert joined.dtype == np.int16 and np.array_equal(joined, script.samples[start:end])


def monologue(pause_s: float) -> SpokenScript:
    """MONOLOGUE with exactly ``pause_s`` between sentences: espeak-ng's own padding trimmed off."""
    lead = np.zeros(8000, np.int16)
    pieces, spans, cursor = [lead], [], lead.size
    for sentence in MONOLOGUE:
        speech = speak(sentence)
        first, last = voiced(speech, 0.0, speech.size / 16000)
        pieces += [speech[first:last], np.zeros(int(pause_s * 16000), np.int16)]
        spans.append(Span(cursor / 16000, (cursor + last - first) / 16000, sentence))
        cursor += last - first + pieces[-1].size
    return SpokenScript(np.concatenate([*pieces, lead]), spans)


def test_a_long_monologue_is_split_at_pauses_after_max_utterance():
    talk = monologue(pause_s=0.3)
    whole = heard(feed(build_vad_step(with_vad(max_utterance_s=60.0, hard_max_s=60.0)), chunks(talk.samples)))
    assert len(whole) == 1  # 0.3 s pauses are shorter than the hangover
    utterances = heard(feed(build_vad_step(with_vad(max_utterance_s=4.0)), chunks(talk.samples)))
    assert len(utterances) >= 3
    reasons = [u.end.reason for u in utterances]
    assert reasons[:-1] == ["max_length"] * (len(utterances) - 1) and reasons[-1] in ("pause", "max_length")
    gaps = [(voiced(talk.samples, a.start_s, a.end_s)[1], voiced(talk.samples, b.start_s, b.end_s)[0])
            for a, b in zip(talk.spans, talk.spans[1:])]
    for u, after in zip(utterances, utterances[1:]):
        start, end = u.span
        assert end - start >= 4.0 * 16000
        assert any(lo <= end <= hi for lo, hi in gaps), f"cut at {end / 16000:.2f} s is not between sentences"
        assert after.span[0] >= end  # no overlap
    assert utterances[0].span[0] <= voiced(talk.samples, talk.spans[0].start_s, talk.spans[0].end_s)[0]
    assert utterances[-1].span[1] >= voiced(talk.samples, talk.spans[-1].start_s, talk.spans[-1].end_s)[1]


def test_lost_chunks_end_the_open_utterance_at_the_break(script):
    items = chunks(script.samples)
    mid = int((script.spans[1].start_s + script.spans[1].end_s) / 2 * 16000) // CHUNK
    utterances = heard(feed(build_vad_step(), items[:mid] + items[mid + 10:]))
    broken = [u for u in utterances if u.end.reason == "stream_end"]
    assert len(broken) == 1 and broken[0].span[1] <= mid * CHUNK < broken[0].span[1] + 480
    assert len(utterances) == len(SENTENCES) + 1  # the rest of the broken sentence is heard anew
    assert utterances[-1].end.reason == "pause"


def test_a_jump_in_capture_time_ends_the_open_utterance(script):
    items = chunks(script.samples)
    mid = int((script.spans[2].start_s + script.spans[2].end_s) / 2 * 16000) // CHUNK
    for c in items[mid:]:
        c.t_capture += 2 * 10**9  # the same chunk indices, two seconds later
    utterances = heard(feed(build_vad_step(), items))
    assert [u.end.reason for u in utterances].count("stream_end") == 1
    assert all(u.start.t_start < u.end.t_end for u in utterances)


def test_a_wrong_sample_rate_is_refused_by_name_and_the_stream_goes_on(script):
    step = build_vad_step()
    wrong = AudioChunk(chunk_index=0, sample_rate=48000, samples=np.zeros(960, np.int16), t_capture=T0 - 10**9)
    with pytest.raises(BadInput, match=r"audio.chunk 0 has sample rate 48000 Hz; the VAD takes 16000 Hz"):
        step.process("audio.chunk", wrong)
    floats = AudioChunk(chunk_index=0, sample_rate=16000, samples=np.zeros(320, np.float32), t_capture=T0)
    with pytest.raises(ValueError, match="float32.*mono int16"):
        step.process("audio.chunk", floats)
    assert len(heard(feed(step, chunks(script.samples)))) == len(SENTENCES)


def test_silence_and_noise_give_no_utterance():
    rng = np.random.default_rng(7)
    quiet = np.zeros(3 * 16000, np.int16)
    hiss = rng.normal(0, 1000, 5 * 16000).astype(np.int16)  # -30 dBFS white noise
    loud = rng.normal(0, 3000, 5 * 16000).astype(np.int16)  # -20 dBFS
    for backend, noises in (("webrtcvad", (quiet, hiss)), ("silero", (quiet, hiss, loud))):
        for noise in noises:
            assert feed(build_vad_step(with_vad(backend=backend)), chunks(noise)) == []


def test_when_the_source_stops_the_open_utterance_ends_after_the_stall(script):
    arrival = [0]
    step = VadStep(WebrtcClassifier(2), SegmenterSettings.from_config(VadConfig()), 8000,
                   stall_s=1.0, clock=lambda: arrival[0])
    items = chunks(script.samples)
    cut = int(script.spans[0].end_s * 16000) // CHUNK - 20  # inside the first sentence
    for k, c in enumerate(items[:cut]):
        arrival[0] = k * 20_000_000
        step.process("audio.chunk", c)
    assert step.idle(arrival[0] + 900_000_000) == []
    (_, last_piece), (_, end) = step.idle(arrival[0] + 1_100_000_000)
    assert last_piece.final and end.kind == "end" and end.reason == "stream_end"
    assert end.t_end <= T0 + cut * CHUNK * NS and step.idle(arrival[0] + 5 * 10**9) == []


# ---------------------------------------------------------------- Silero's model file


def test_silero_runs_through_the_engine_interface_and_matches_the_reference_wrapper(script):
    torch = pytest.importorskip("torch")
    from silero_vad.utils_vad import OnnxWrapper

    step = build_vad_step(with_vad(backend="silero"))
    assert step.classifier.engine.backend == "onnxruntime:CPUExecutionProvider"
    audio = script.samples[:3 * 16000]
    windows = [audio[i:i + 512] for i in range(0, audio.size - 511, 512)]
    ours = [step.classifier.probability(w) for w in windows]
    reference = OnnxWrapper(str(registry.resolve("vad-silero").path), force_onnx_cpu=True)
    theirs = [float(reference(torch.from_numpy(w.astype(np.float32) / 32768), 16000)) for w in windows]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert max(ours) > 0.9 and min(ours) < 0.1


@pytest.fixture
def patched_silero(monkeypatch):
    def patch(**changes) -> None:
        slot = registry.SLOTS["vad-silero"]
        monkeypatch.setitem(registry.SLOTS, slot.name,
                            dataclasses.replace(slot, source=dataclasses.replace(slot.source, **changes)))

    return patch


def test_a_missing_silero_package_is_a_model_error_with_the_install_command(patched_silero):
    patched_silero(package="moodwire-no-such-silero")
    with pytest.raises(ModelMissing, match=r"moodwire-no-such-silero is not installed; pip install --no-deps "
                                           r"moodwire-no-such-silero==6\.2\.3"):
        build_vad_step(with_vad(backend="silero"))


def test_a_changed_silero_file_is_refused_by_checksum(patched_silero):
    patched_silero(sha256="0" * 64)
    with pytest.raises(ChecksumMismatch, match="--force-reinstall --no-deps silero-vad==6.2.3"):
        build_vad_step(with_vad(backend="silero"))


def test_an_override_that_is_not_a_silero_model_says_what_is_expected(tmp_path):
    own = tmp_path / "vad.onnx"
    own.write_bytes(b"not an onnx file")
    config = dataclasses.replace(with_vad(backend="silero"),
                                 models=dataclasses.replace(Config().models, vad_silero=str(own)))
    with pytest.raises(ModelError, match=r"vad.onnx is not a usable Silero VAD v5/v6 ONNX \(inputs input"):
        build_vad_step(config)


# ---------------------------------------------------------------- the node in a running pipeline


@pytest.mark.slow
def test_vad_node_gives_one_utterance_per_spoken_sentence_from_the_first_one(analyzed, tmp_path):
    """The VAD node in the running pipeline, fed losslessly: the first sentence starts 0.2 s into the file
    (no lead for the nodes to load: a file's timeline waits for them)."""
    talk = spoken_script(SENTENCES[:3], gap_s=1.2, lead_s=0.2)
    wav = write_wav(tmp_path / "talk.wav", talk.samples)
    result = analyzed(wav, "nodes.asr=false", "nodes.voice=false", "nodes.text=false")
    utterances = result["utterances"]
    assert len(utterances) == 3, utterances
    lengths = list(utterances["end_s"] - utterances["start_s"])
    spoken = [s.end_s - s.start_s for s in talk.spans]
    assert all(abs(n - s) < 0.8 for n, s in zip(lengths, spoken)), (lengths, spoken)
    assert all(abs(u - s.start_s) < 0.4 for u, s in zip(utterances["start_s"], talk.spans))
    assert set(utterances["text_missing"].str.contains("disabled")) == {True}  # said, not silently empty


def test_two_streams_interleaved_are_segmented_as_each_alone(script, detected):
    """Speech on one stream, quiet noise on the other, chunk by chunk through one node: the speech
    stream's utterances are those it gives alone (its own classifier state and segmenter)."""
    from moodwire.pipeline.core.streams import PerStream
    from moodwire.pipeline.core.topics import split_topic

    backend = detected[0]
    quiet = (np.random.default_rng(3).normal(0, 30, script.samples.size)).astype(np.int16)
    per = PerStream(build_vad_step(with_vad(backend=backend)))
    out = []
    for speech, noise in zip(chunks(script.samples), chunks(quiet)):
        out += per.process("audio.chunk@talk", speech) + per.process("audio.chunk@room", noise)
    out += [(f"{topic}@talk", msg) for topic, msg in per.steps["talk"].finish()]
    out += [(f"{topic}@room", msg) for topic, msg in per.steps["room"].finish()]
    by_stream = {s: [(split_topic(t)[0], m) for t, m in out if split_topic(t)[1] == s] for s in ("talk", "room")}
    assert by_stream["room"] == []
    assert [u.span for u in heard(by_stream["talk"])] == [u.span for u in detected[1]]
