"""Bad and unusual media files (pipeline/sources/media_file.py's docstring says what is expected):
odd WAV formats are converted to 16 kHz mono int16 at the same level; what cannot be played is refused
with SourceUnavailable naming the file and what to do, through ``moodwire run --source`` too (exit 2, one
line, no traceback). Random and truncated files, property-based: refused, or played to the end."""

from __future__ import annotations

import subprocess
import threading
import wave
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.sources import SourceUnavailable
from moodwire.pipeline.sources.media_file import FileAudio, FileVideo, probe_media
from tests.conftest import MOODWIRE

CODECS = {"u8": "pcm_u8", "s16": "pcm_s16le", "s32": "pcm_s32le", "flt": "pcm_f32le"}
AMPLITUDE = 0.5  # of full scale
FIXTURE_OK = settings(max_examples=25, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
# function_scoped_fixture: tmp_path only gives each example a folder; names differ per example.


def write_wav(path: Path, rate: int, fmt: str, channels: int, seconds: float = 2.0) -> Path:
    """A 440 Hz sine at half of full scale in every channel, as PCM ``fmt`` (PyAV's names)."""
    import av

    t = np.arange(int(rate * seconds)) / rate
    sine = AMPLITUDE * np.sin(2 * np.pi * 440 * t)
    scaled = {"u8": (sine * 127 + 128).astype(np.uint8), "s16": (sine * 32767).astype(np.int16),
              "s32": (sine * 2**31).astype(np.int32), "flt": sine.astype(np.float32)}[fmt]
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    interleaved = np.repeat(scaled, channels).reshape(1, -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[fmt], rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(interleaved, format=fmt, layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def played(path: Path) -> tuple[list, list]:
    """Every video frame and audio chunk of the file, as fast as possible (what the source nodes send)."""
    info = probe_media(path)
    stop = threading.Event()
    frames = list(islice(FileVideo(info, now_ns(), False, False).messages(stop), 2000)) if info.has_video else []
    chunks = list(islice(FileAudio(info, now_ns(), False, False).messages(stop), 20000)) if info.has_audio else []
    return frames, chunks


@pytest.mark.parametrize("rate, fmt, channels", [
    (8000, "s16", 1), (8000, "u8", 1), (22050, "flt", 1), (48000, "s32", 2), (44100, "s16", 6)],
    ids=["8k-s16-mono", "8k-8bit", "22k-float", "48k-s32-stereo", "44k-5.1"])
def test_any_wav_rate_format_and_channel_count_becomes_16k_mono_int16_at_the_same_level(tmp_path, rate, fmt,
                                                                                       channels):
    path = write_wav(tmp_path / f"tone_{fmt}.wav", rate, fmt, channels)
    info = probe_media(path)
    assert (info.audio_rate, info.audio_channels, info.has_video) == (rate, channels, False)
    _, chunks = played(path)
    messages = [m for _, m in chunks]
    assert {m.sample_rate for m in messages} == {AUDIO_RATE} and {m.samples.dtype for m in messages} == {np.dtype(np.int16)}
    audio = np.concatenate([m.samples for m in messages]).astype(np.float64)
    assert abs(audio.size / AUDIO_RATE - 2.0) < 0.05
    middle = audio[AUDIO_RATE // 2: 3 * AUDIO_RATE // 2]
    peak_hz = np.argmax(np.abs(np.fft.rfft(middle))) * AUDIO_RATE / middle.size
    rms = np.sqrt(np.mean(middle ** 2)) / 32768
    assert peak_hz == pytest.approx(440, abs=2)
    assert rms == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.05)  # full scale stays full scale; channels averaged


def test_unplayable_files_name_the_file_and_what_to_do(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    silent = tmp_path / "no_samples.wav"
    with wave.open(str(silent), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(16000)
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    for path, why in ((empty, "is empty \\(0 bytes\\)"), (folder, "is a directory"),
                      (silent, "holds no decodable frame"), (tmp_path / "gone.wav", "does not exist")):
        with pytest.raises(SourceUnavailable, match=f"{path}.*{why}.*(--source|ffprobe)"):
            probe_media(path)


@FIXTURE_OK
@given(data=st.binary(min_size=1, max_size=4096), suffix=st.sampled_from([".mp4", ".wav", ".mkv"]))
def test_random_bytes_with_a_media_name_are_refused_naming_the_file(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    try:
        played(path)
    except SourceUnavailable as exc:
        assert str(path) in str(exc) and ("--source" in str(exc) or "ffprobe" in str(exc) or "remux" in str(exc))


@pytest.fixture(scope="module")
def media_bytes(tmp_path_factory) -> dict[str, bytes]:
    from moodwire.pipeline.sources.sample_clip import write_clip
    from tests.conftest import tone_bursts

    folder = tmp_path_factory.mktemp("whole")
    clip = folder / "clip.mp4"
    write_clip(clip, tone_bursts(1.0), fps=10, duration_s=1.0)
    return {".mp4": clip.read_bytes(), ".wav": write_wav(folder / "tone.wav", 16000, "s16", 1, 1.0).read_bytes()}


@FIXTURE_OK
@given(suffix=st.sampled_from([".mp4", ".wav"]), cut=st.floats(0.0, 0.999))
def test_a_truncated_file_is_refused_or_plays_what_it_holds(tmp_path, media_bytes, suffix, cut):
    whole = media_bytes[suffix]
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(whole[:max(1, int(len(whole) * cut))])
    try:
        frames, chunks = played(path)
    except SourceUnavailable as exc:
        assert str(path) in str(exc)
        return
    assert frames or chunks  # what it holds, to its end, without an exception


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_moodwire_run_on_a_bad_file_exits_2_with_one_line_and_no_traceback(tmp_path, isolated_env):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "random.mp4").write_bytes(bytes(range(256)) * 8)
    for path, why in ((tmp_path / "empty.wav", "is empty"), (tmp_path / "random.mp4", "cannot decode media file")):
        run = subprocess.run([*MOODWIRE, "run", "--source", str(path), "--duration", "2"], env=isolated_env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr and "moodwire: error: " in run.stderr, run.stderr
        assert why in run.stderr and str(path) in run.stderr


def test_a_wav_cut_mid_sample_plays_up_to_the_cut_and_says_where_it_stopped(tmp_path, media_bytes, capfd):
    whole = media_bytes[".wav"]  # 1 s of 16 kHz int16
    path = tmp_path / "cut.wav"
    header = len(whole) - 2 * AUDIO_RATE
    path.write_bytes(whole[:header + 4 * 4096 + 1])  # FFmpeg reads 4096-byte packets: the last is half a sample
    _, chunks = played(path)
    assert 0.3 <= len(chunks) * 320 / AUDIO_RATE <= 0.55
    err = capfd.readouterr().err
    assert f"{path}: the audio track cannot be decoded after" in err and "Re-encode" in err
