"""The voice node: prosody of real espeak-ng speech, the arousal rule, the step's transcript wait,
and the voice-emotion training tool on a synthetic toy set (its plumbing, not emotion)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.core.config import Config, VoiceConfig
from moodwire.pipeline.core.messages import Transcript, UtteranceAudio, VoiceAffect, Word
from moodwire.pipeline.core.wire import decode, encode
from moodwire.pipeline.sources.spoken import Voice, espeak_available, speak, write_wav
from moodwire.pipeline.voice.arousal_rule import RULE_NAME, WEIGHTS, estimate_arousal
from moodwire.pipeline.voice.logmel import MIN_FRAMES, N_MELS, logmel
from moodwire.pipeline.voice.model import VoiceModelError, load_voice_model, read_sidecar
from moodwire.pipeline.voice.prosody import RATE_FROM_PEAKS, RATE_FROM_WORDS, prosody_features
from moodwire.pipeline.voice.step import VoiceStep, build_voice_step

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")

from moodwire.tools import make_voice_toyset, train_voice  # noqa: E402

TOOLS = Path(__file__).resolve().parents[1] / "tools"
SENTENCES = ["Kids are talking by the door.", "I can't believe you did that again.",
             "The meeting starts at nine tomorrow morning.", "Please put the box on the table."]
HIGH = Voice(speed_wpm=220, pitch=80, amplitude=180)  # high pitch, loud, fast
LOW = Voice(speed_wpm=100, pitch=20, amplitude=30)  # low pitch, soft, slow
SECOND = 1_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 5 * SECOND

    def __call__(self) -> int:
        return self.now


def pieces(samples: np.ndarray, uid: int, piece: int = 8000) -> list[UtteranceAudio]:
    """The utterance as the VAD sends it: contiguous pieces, the last one final."""
    starts = list(range(0, len(samples), piece)) or [0]
    return [UtteranceAudio(utterance_id=uid, t_start=uid, offset=off, sample_rate=AUDIO_RATE,
                           samples=samples[off:off + piece], final=off == starts[-1],
                           t_capture=uid + off * SECOND // AUDIO_RATE) for off in starts]


def transcript(uid: int, n_words: int, span_s: float, final: bool = True, probability: float = 0.9) -> Transcript:
    step_ns = int(span_s * SECOND / n_words)
    words = [Word(word=f"w{i}", t_start=uid + i * step_ns, t_end=uid + (i + 1) * step_ns, probability=probability)
             for i in range(n_words)]
    return Transcript(utterance_id=uid, t_start=uid, t_end=uid + int(span_s * SECOND), text="x", words=words,
                      final=final)


def feed(step: VoiceStep, messages: list) -> list[VoiceAffect]:
    out = []
    for msg in messages:
        topic = "speech.audio" if isinstance(msg, UtteranceAudio) else "speech.transcript"
        out += [m for t, m in step.process(topic, msg)]
    return out


# ---------------------------------------------------------------- prosody on real speech


def test_f0_follows_espeak_pitch_setting():
    low = prosody_features(speak(SENTENCES[0], Voice(pitch=20)), AUDIO_RATE)
    high = prosody_features(speak(SENTENCES[0], Voice(pitch=80)), AUDIO_RATE)
    assert 50 < low.f0_mean_hz < high.f0_mean_hz < 300
    assert 12 * math.log2(high.f0_mean_hz / low.f0_mean_hz) > 4  # semitones apart
    assert 0.3 < low.voiced_fraction < 0.9 and 0 < high.f0_range_st < 12


def test_energy_peak_rate_follows_espeak_speed():
    slow = prosody_features(speak(SENTENCES[2], Voice(speed_wpm=100)), AUDIO_RATE)
    fast = prosody_features(speak(SENTENCES[2], Voice(speed_wpm=220)), AUDIO_RATE)
    assert slow.speaking_rate_source == fast.speaking_rate_source == RATE_FROM_PEAKS
    assert 1.0 < slow.speaking_rate < fast.speaking_rate < 10.0
    assert fast.speaking_rate / slow.speaking_rate > 1.6


def test_level_follows_espeak_amplitude():
    soft = prosody_features(speak(SENTENCES[1], Voice(amplitude=30)), AUDIO_RATE)
    loud = prosody_features(speak(SENTENCES[1], Voice(amplitude=180)), AUDIO_RATE)
    assert -60 < soft.energy_db < loud.energy_db - 10 < 0
    assert all(math.isfinite(v) for v in (loud.jitter, loud.shimmer, loud.hnr_db))
    assert 0 < loud.jitter < 0.1 and 0 < loud.hnr_db <= 30


# ---------------------------------------------------------------- the acceptance test


@pytest.mark.parametrize("sentence", SENTENCES)
def test_high_loud_fast_speech_gets_higher_arousal_than_low_soft_slow(sentence):
    step = VoiceStep(wait_transcript_s=0.0)
    high = step.analyse(1, 1, speak(sentence, HIGH), AUDIO_RATE)
    low = step.analyse(2, 2, speak(sentence, LOW), AUDIO_RATE)
    assert high.arousal > low.arousal + 0.5, (high.arousal, low.arousal)
    assert high.arousal > 0 > low.arousal
    assert high.arousal_rule == low.arousal_rule == RULE_NAME
    assert 0 < low.confidence <= 1 and 0 < high.confidence <= 1


def test_arousal_rule_leaves_out_what_was_not_measured():
    assert math.isclose(sum(WEIGHTS.values()), 1.0)
    features = prosody_features(speak(SENTENCES[0]), AUDIO_RATE)
    full = estimate_arousal(features)
    features.speaking_rate = math.nan
    partial = estimate_arousal(features)
    assert set(full.scores) - set(partial.scores) == {"rate"}
    assert partial.confidence < full.confidence
    features.f0_mean_hz = features.f0_range_st = features.energy_db = features.alpha_ratio_db = math.nan
    nothing = estimate_arousal(features)
    assert (nothing.arousal, nothing.confidence) == (0.0, 0.0)


# ---------------------------------------------------------------- the step


def test_step_publishes_rule_arousal_and_no_valence_without_a_model():
    clock = FakeClock()
    step = VoiceStep(wait_transcript_s=1.0, clock=clock)
    samples = speak(SENTENCES[0])
    assert feed(step, pieces(samples, uid=7 * SECOND)) == []  # waits for the transcript
    clock.now += SECOND
    (msg,) = [m for _, m in step.idle(clock.now)]
    assert msg.valid and msg.utterance_id == 7 * SECOND
    assert msg.valence is None and msg.valence_confidence == 0.0
    assert msg.labels == [] and msg.probs == [] and msg.model == ""
    assert msg.arousal_rule == RULE_NAME and -1 < msg.arousal < 1
    assert msg.t_end == msg.t_capture == 7 * SECOND + len(samples) * SECOND // AUDIO_RATE
    assert msg.features.speaking_rate_source == RATE_FROM_PEAKS
    assert msg.features.duration_s == pytest.approx(len(samples) / AUDIO_RATE)
    topic, back = decode(encode("voice.affect", msg))  # it travels on the bus
    assert back.features == msg.features and back.valence is None


def test_step_takes_the_rate_from_asr_words_when_the_transcript_comes_in_time():
    clock = FakeClock()
    step = VoiceStep(wait_transcript_s=1.0, clock=clock)
    uid = 3 * SECOND
    assert feed(step, pieces(speak(SENTENCES[1]), uid)) == []
    clock.now += SECOND // 2
    assert feed(step, [transcript(uid, 6, 1.5, final=False)]) == []  # partials do not count
    (msg,) = feed(step, [transcript(uid, 6, 2.0)])
    assert msg.features.speaking_rate_source == RATE_FROM_WORDS
    assert msg.features.speaking_rate == pytest.approx(3.0)
    clock.now += 5 * SECOND
    assert list(step.idle(clock.now)) == []  # published once


def test_step_takes_the_rate_from_syllables_when_the_asr_is_unsure_of_its_words():
    """Whisper guessing at a language its model does not know gives words of low probability."""
    step = VoiceStep(wait_transcript_s=1.0, clock=FakeClock())
    uid = 3 * SECOND
    feed(step, pieces(speak(SENTENCES[1]), uid))
    (msg,) = feed(step, [transcript(uid, 6, 2.0, probability=0.3)])
    assert msg.features.speaking_rate_source == RATE_FROM_PEAKS and msg.features.speaking_rate > 0


@pytest.mark.parametrize("note", ["", "gap of 3200 samples filled with silence"])
def test_step_uses_a_transcript_that_came_before_the_final_audio(note):
    """Also one whose ``error`` is a note on the audio (valid True): its word times still hold."""
    step = VoiceStep(wait_transcript_s=1.0, clock=FakeClock())
    uid = 4 * SECOND
    audio = pieces(speak(SENTENCES[2]), uid)
    words = transcript(uid, 8, 2.0)
    words.error = note
    assert feed(step, audio[:-1] + [words]) == []
    (msg,) = feed(step, audio[-1:])
    assert msg.features.speaking_rate_source == RATE_FROM_WORDS
    assert msg.features.speaking_rate == pytest.approx(4.0)


def test_step_falls_back_to_energy_peaks_after_the_wait_and_ignores_a_late_transcript():
    clock = FakeClock()
    step = VoiceStep(wait_transcript_s=1.0, clock=clock)
    uid = 9 * SECOND
    feed(step, pieces(speak(SENTENCES[3]), uid))
    clock.now += SECOND - 1
    assert list(step.idle(clock.now)) == []
    clock.now += 1
    (msg,) = [m for _, m in step.idle(clock.now)]
    assert msg.features.speaking_rate_source == RATE_FROM_PEAKS and msg.features.speaking_rate > 0
    assert feed(step, [transcript(uid, 5, 1.0)]) == []


def test_silence_and_empty_audio_give_invalid_messages_without_nan_estimates():
    step = VoiceStep(wait_transcript_s=0.0)
    for samples in (np.zeros(AUDIO_RATE, np.int16), np.zeros(0, np.int16),
                    (np.random.default_rng(0).normal(0, 3, AUDIO_RATE)).astype(np.int16)):
        (msg,) = feed(step, pieces(samples, uid=int(samples.size) + 1 + int(samples.any())))
        assert not msg.valid
        assert msg.arousal == 0.0 and msg.confidence == 0.0 and msg.valence is None
        assert math.isnan(msg.features.f0_mean_hz) and msg.features.voiced_fraction == 0.0
    assert np.isfinite(logmel(np.zeros(0, np.int16))).all()
    assert logmel(np.zeros(100, np.int16)).shape == (N_MELS, MIN_FRAMES)


# ---------------------------------------------------------------- training tool and model


@pytest.fixture(scope="module")
def toyset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toyset")
    make = make_voice_toyset
    assert make.main(["--out", str(folder), "--actors", "2", "--statements", "1", "--rate", "22050"]) == 0
    return folder


def train(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOLS / "train_voice.py"), "--data", str(data), "--out", str(out),
                           "--seed", "1", *extra], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(toyset, tmp_path_factory) -> tuple[Path, dict, str]:
    write_wav(toyset / "not_a_dataset_name.wav", np.zeros(1600, np.int16))
    out = tmp_path_factory.mktemp("voice-model") / "voice_emotion.onnx"
    run = train(toyset, out, "--epochs", "2")
    (toyset / "not_a_dataset_name.wav").unlink()
    assert run.returncode == 0, run.stderr
    return out, json.loads(run.stdout.strip().splitlines()[-1]), run.stdout + run.stderr


def test_training_tool_exports_a_model_with_its_training_record(trained, toyset):
    onnx_path, summary, output = trained
    assert "epoch 2/2" in output and "val accuracy" in output
    assert "not_a_dataset_name.wav" in output  # skipped and listed
    meta = read_sidecar(onnx_path)
    training = meta["training"]
    assert meta["status"] == "trained" and training["epochs_run"] == 2
    assert training["data_folder"] == str(toyset.resolve())
    assert training["description"].startswith(f"trained on {toyset.resolve()}")
    assert training["synthetic"] and "NOT an emotion model" in training["description"]
    assert training["counts_per_class"] == {"angry": 2, "disgust": 2, "fear": 2, "happy": 2, "sad": 2,
                                            "surprise": 2, "neutral": 4}
    assert set(training["train_speakers"]).isdisjoint(training["val_speakers"])
    assert summary["val_accuracy"] == training["val_accuracy"] and summary["synthetic"]
    assert meta["parity_max_abs_diff"] <= meta["parity_tolerance"]


def test_trained_model_plugs_into_the_step_by_config(trained):
    onnx_path, _, _ = trained
    step = build_voice_step(Config(voice=VoiceConfig(model=str(onnx_path), wait_transcript_s=0.0)))
    (msg,) = feed(step, pieces(speak(SENTENCES[0]), uid=SECOND))
    assert msg.labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert len(msg.probs) == 7 and sum(msg.probs) == pytest.approx(1.0, abs=1e-5)
    assert "NOT an emotion model" in msg.model
    assert msg.valence is not None and -1 <= msg.valence <= 1
    assert msg.valence_confidence == 0.0  # a toy-set model knows nothing about valence
    assert msg.arousal_rule == RULE_NAME


def test_model_loader_refuses_untrained_failed_or_mismatched_sidecars(trained, tmp_path):
    onnx_path, _, _ = trained
    copy = tmp_path / "m.onnx"
    shutil.copy(onnx_path, copy)
    with pytest.raises(VoiceModelError, match="sidecar .* is missing"):
        load_voice_model(copy)
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    for change, message in (({"status": "untrained"}, "status 'untrained'"), ({"status": "failed"}, "failed"),
                            ({"training": {}}, "no record of the training data"),
                            ({"onnx_sha256": "0" * 64}, "sha256"), ({"features": {"name": "mfcc"}}, "recipe")):
        (tmp_path / "m.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(VoiceModelError, match=message):
            load_voice_model(copy)


def test_training_tool_refuses_unknown_names_and_a_single_speaker(tmp_path, toyset):
    bad = tmp_path / "bad"
    for name in ("hello.wav", "03-01-09-01-01-01-01.wav", "1001_DFA_XYZ_XX.wav"):
        write_wav(bad / name, np.zeros(1600, np.int16))
    run = train(bad, tmp_path / "x.onnx")
    assert run.returncode == 2
    assert "skipped 3 .wav file(s)" in run.stderr and "hello.wav" in run.stderr and "1001_DFA_XYZ_XX.wav" in run.stderr
    assert "no usable clips" in run.stderr and not (tmp_path / "x.onnx").exists()
    one = tmp_path / "one"
    one.mkdir()
    for path in toyset.glob("*-01.wav"):  # actor 01 only
        shutil.copy(path, one / path.name)
    run = train(one, tmp_path / "y.onnx")
    assert run.returncode == 2 and "at least 2 actors" in run.stderr


def test_training_names_and_audio_are_read_as_the_datasets_define_them(tmp_path):
    tool = train_voice
    assert tool.parse_name("03-01-05-01-02-01-12.wav") == tool.ClipLabel("ravdess", "angry", "ravdess:12")
    assert tool.parse_name("03-01-02-02-01-02-07.wav").label == "neutral"  # calm
    assert tool.parse_name("1001_DFA_ANG_XX.wav") == tool.ClipLabel("crema-d", "angry", "crema-d:1001")
    assert tool.parse_name("1091_TSI_NEU_HI.wav").label == "neutral"
    assert tool.parse_name("03-01-09-01-01-01-01.wav") is None and tool.parse_name("clip.wav") is None
    t = np.arange(48000) / 48000
    tone = (np.sin(2 * np.pi * 440 * t) * 16000).astype(np.int16)
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(2)
        fh.setsampwidth(2)
        fh.setframerate(48000)
        fh.writeframes(np.stack([tone, np.zeros_like(tone)], axis=1).tobytes())
    mono = tool.read_clip(path)
    assert mono.shape == (16000,)
    assert np.abs(mono).max() == pytest.approx(16000 / 32768 / 2, rel=0.02)  # mixed down: half the one channel
    spectrum = np.abs(np.fft.rfft(mono))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # still 440 Hz after resampling (1 Hz bins)
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(tool.DataError, match="not a PCM WAV"):
        tool.read_clip(tmp_path / "text.wav")


def test_onnx_export_matches_pytorch_at_any_length_and_needs_a_training_record(tmp_path):
    torch = pytest.importorskip("torch")
    import onnxruntime as ort

    from moodwire.exporters.voice_emotion import TOLERANCE, VoiceEmotionNet, WithSoftmax, export_checked, export_trained

    torch.manual_seed(0)
    net = VoiceEmotionNet().eval()
    path = tmp_path / "parity.onnx"
    assert export_checked(net, path) <= TOLERANCE
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for frames in (MIN_FRAMES, 250, 1000):
        x = np.random.default_rng(frames).normal(0, 1, (2, 1, N_MELS, frames)).astype(np.float32)
        (got,) = session.run(None, {"logmel": x})
        with torch.no_grad():
            want = WithSoftmax(net)(torch.from_numpy(x)).numpy()
        assert np.abs(got - want).max() <= TOLERANCE
    with pytest.raises(ValueError, match="untrained"):
        export_trained(net, tmp_path / "untrained.onnx", {"data_folder": "x"})
    assert not (tmp_path / "untrained.onnx").exists() and not (tmp_path / "untrained.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)  # espeak-ng set plus 30 epochs on CPU: about 22 s idle, past 120 s with a core busy
def test_toy_model_learns_the_settings_on_unseen_voices(tmp_path):
    """Plumbing check with signal in it: on the toy set the labels ARE the espeak settings, so a
    working pipeline must beat the majority class on held-out voices. Says nothing about emotion."""
    data = tmp_path / "toy"
    assert make_voice_toyset.main(["--out", str(data), "--actors", "6", "--repetitions", "2"]) == 0
    run = train(data, tmp_path / "m.onnx", "--epochs", "30", "--val-fraction", "0.34")
    assert run.returncode == 0, run.stderr
    training = read_sidecar(tmp_path / "m.onnx")["training"]
    assert training["val_accuracy"] > training["val_majority_share"] + 0.2


def test_voice_node_answers_on_the_bus(tmp_path):
    """The node process's main loop, run in threads beside a bus proxy: audio in, voice.affect out."""
    import threading
    import time

    from moodwire.pipeline.core.bus import Publisher, Subscriber
    from moodwire.pipeline.core.node import NodeContext
    from moodwire.pipeline.nodes import bus, voice

    config = Config(voice=VoiceConfig(wait_transcript_s=0.2))
    proxy = NodeContext.for_test("bus", config, tmp_path)
    node = NodeContext.for_test("voice", config, tmp_path, outputs=("voice.affect", "system.node"))
    threads = [threading.Thread(target=m, args=(c,), daemon=True) for m, c in ((bus.main, proxy), (voice.main, node))]
    for thread in threads:
        thread.start()
    pub = Publisher(proxy.endpoints.internal_pub, "test")
    sub = Subscriber(proxy.endpoints.internal_sub, ["voice.affect"])
    try:
        time.sleep(0.5)  # subscriptions reach the proxy
        for msg in pieces(speak(SENTENCES[0]), uid=11 * SECOND):
            pub.send("speech.audio", msg)
        got = sub.recv(timeout=5.0)
        assert got is not None and got.topic == "voice.affect"
        assert got.msg.utterance_id == 11 * SECOND and got.msg.source == "voice" and got.msg.valid
    finally:
        pub.close()
        sub.close()
        node.stop.set()
        proxy.stop.set()
        for thread in threads:
            thread.join(5)


def test_the_voice_node_imports_no_torch_and_does_no_work_at_import():
    code = ("import sys, time; t = time.perf_counter(); "
            "import moodwire.pipeline.nodes.voice, moodwire.pipeline.voice.model; "
            "print('torch' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
