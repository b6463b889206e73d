"""Each source, driven directly (no sockets): synthetic, media file, WAV, webcam, microphone."""

from __future__ import annotations

import threading
import types
from dataclasses import replace
from itertools import islice

import numpy as np
import pytest

from moodwire.pipeline.core.audio import AUDIO_CHUNK, AUDIO_RATE
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.config import load_config
from moodwire.pipeline.sources import SourceUnavailable, microphone, webcam
from moodwire.pipeline.sources.media_file import FileAudio, FileVideo, probe_media
from moodwire.pipeline.sources.resolve import resolve_sources, with_source_file
from moodwire.pipeline.sources.synthetic import SyntheticAudio, SyntheticVideo


def take(source, n, stop=None):
    return [msg for _, msg in islice(source.messages(stop or threading.Event()), n)]


# ------------------------------------------------------------------ synthetic

def test_synthetic_video_is_paced_on_the_shared_timeline():
    t0 = now_ns()
    frames = take(SyntheticVideo(320, 240, 50.0, t0), 10)
    assert [f.frame_index for f in frames] == list(range(10))
    assert [f.t_capture - t0 for f in frames] == [i * 20_000_000 for i in range(10)]
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image.dtype == np.uint8
    assert not np.array_equal(frames[0].image, frames[1].image)  # the square moves
    assert now_ns() - t0 >= 9 * 20_000_000  # it waited for each frame's time


def test_synthetic_source_restarted_late_continues_where_the_timeline_is():
    t0 = now_ns() - 2_000_000_000  # the run began 2 s ago
    first = take(SyntheticVideo(64, 48, 30.0, t0), 1)[0]
    assert 59 <= first.frame_index <= 62
    chunk = take(SyntheticAudio(t0), 1)[0]
    assert 99 <= chunk.chunk_index <= 102


def test_synthetic_audio_alternates_tone_and_silence():
    chunks = take(SyntheticAudio(now_ns() - 3 * 10**9), 1)
    audio = SyntheticAudio(0)
    assert chunks[0].samples.shape == (AUDIO_CHUNK,) and chunks[0].sample_rate == AUDIO_RATE
    assert np.abs(audio.chunk(10)).max() > 1000   # 0.2 s: tone
    assert np.abs(audio.chunk(60)).max() == 0     # 1.2 s: silence


# ------------------------------------------------------------------ media files

def test_probe_describes_a_clip(clip_with_audio):
    info = probe_media(clip_with_audio)
    assert info.has_video and info.has_audio
    assert info.fps == pytest.approx(25.0) and (info.width, info.height) == (640, 480)
    assert 7.9 <= info.duration_s <= 8.3


def test_file_video_and_audio_share_one_timeline(clip_with_audio):
    info = probe_media(clip_with_audio)
    t0 = now_ns()
    frames = take(FileVideo(info, t0, realtime=False, loop=False), 1000)
    chunks = take(FileAudio(info, t0, realtime=False, loop=False), 10_000)
    assert len(frames) == 200  # 8 s at 25 fps
    assert [f.frame_index for f in frames] == list(range(200))
    assert frames[1].t_capture - frames[0].t_capture == 40_000_000
    assert abs(len(chunks) * AUDIO_CHUNK / AUDIO_RATE - 8.0) < 0.2
    assert abs(chunks[0].t_capture - t0) < 50_000_000 and abs(frames[0].t_capture - t0) < 50_000_000
    audio = np.concatenate([c.samples for c in chunks])
    # the tone bursts of the clip survive AAC: loud in the first half second, quiet in the second
    assert np.abs(audio[1600:6400]).mean() > 10 * np.abs(audio[9600:14400]).mean()


def test_file_video_in_real_time_follows_the_clock(clip_with_audio):
    info = probe_media(clip_with_audio)
    t0 = now_ns()
    frames = take(FileVideo(info, t0, realtime=True, loop=False), 13)
    assert 0.46 <= (now_ns() - t0) / 1e9 <= 1.0  # 12 frame periods of 40 ms


def test_restarted_file_source_seeks_to_the_clock_and_loops(clip_with_audio):
    info = probe_media(clip_with_audio)
    t0 = now_ns() - int(11.0 * 1e9)  # 11 s into a looping 8 s clip: second pass, 3 s in
    frame = take(FileVideo(info, t0, realtime=True, loop=True), 1)[0]
    assert 270 <= frame.frame_index <= 280
    chunk = take(FileAudio(info, t0, realtime=True, loop=True), 1)[0]
    assert abs(chunk.t_capture - now_ns()) < 200_000_000


def test_finished_clip_without_loop_yields_nothing(clip_with_audio):
    info = probe_media(clip_with_audio)
    assert take(FileVideo(info, now_ns() - 20 * 10**9, realtime=True, loop=False), 1) == []


def test_wav_is_resampled_to_16k_mono(wav_44k_stereo):
    info = probe_media(wav_44k_stereo)
    assert not info.has_video and info.audio_rate == 44100 and info.audio_channels == 2
    chunks = take(FileAudio(info, now_ns(), realtime=False, loop=False), 1000)
    assert {c.sample_rate for c in chunks} == {16000}
    assert abs(len(chunks) - 100) <= 1  # 2 s of 20 ms chunks
    spectrum = np.abs(np.fft.rfft(np.concatenate([c.samples for c in chunks[10:60]])))
    assert np.argmax(spectrum) * AUDIO_RATE / (50 * AUDIO_CHUNK) == pytest.approx(440, abs=5)


def test_corrupt_and_missing_files_get_clear_errors(tmp_path, clip_with_audio):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(SourceUnavailable, match="cannot decode media file .*broken.mp4.*ffprobe"):
        probe_media(broken)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip_with_audio.read_bytes()[:3000])
    with pytest.raises(SourceUnavailable, match="truncated.mp4"):
        probe_media(truncated)
    with pytest.raises(SourceUnavailable, match="does not exist"):
        probe_media(tmp_path / "nope.mp4")


def test_source_file_picks_the_tracks_it_has(clip_video_only, wav_44k_stereo, clip_with_audio):
    cfg = load_config()
    assert (with_source_file(cfg, str(clip_video_only)).sources.video,
            with_source_file(cfg, str(clip_video_only)).sources.audio) == ("file", "none")
    wav = with_source_file(cfg, str(wav_44k_stereo)).sources
    assert (wav.video, wav.audio) == ("none", "file")
    both = with_source_file(cfg, str(clip_with_audio)).sources
    assert (both.video, both.audio, both.file) == ("file", "file", str(clip_with_audio))


# ------------------------------------------------------------------ devices and fallback

def test_missing_webcam_says_what_to_do():
    with pytest.raises(SourceUnavailable, match="no camera at index 63.*--source FILE"):
        webcam.open_camera(63, 640, 480, 30.0)


class FakeCapture:
    """Stands in for cv2.VideoCapture (no camera on this machine), same calls."""

    def __init__(self, index):
        self.frames = 0

    def isOpened(self):
        return True

    def set(self, prop, value):
        return True

    def get(self, prop):
        return 30.0

    def read(self):
        self.frames += 1
        return True, np.full((480, 640, 3), self.frames % 256, np.uint8)

    def release(self):
        pass


def test_webcam_source_publishes_frames_from_the_capture(monkeypatch):
    import cv2
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    monkeypatch.setattr(webcam.os.path, "exists", lambda path: True)
    frames = take(webcam.Webcam(0, 640, 480, 30.0), 3)
    assert [f.frame_index for f in frames] == [0, 1, 2]
    assert frames[0].width == 640 and frames[0].fps_nominal == 30.0
    assert frames[0].t_capture < frames[1].t_capture


def test_missing_microphone_says_what_to_do():
    with pytest.raises(SourceUnavailable, match="no microphone.*--source FILE"):
        microphone.check_microphone("no-such-device")


class FakeInputStream:
    """Stands in for sounddevice.InputStream (no microphone here): calls back with 20 ms blocks."""

    def __init__(self, samplerate, channels, dtype, blocksize, device, callback):
        assert (samplerate, channels, dtype, blocksize) == (16000, 1, "int16", 320)
        self.callback, self.stop = callback, threading.Event()

    def __enter__(self):
        def feed():
            for i in range(5):
                t = types.SimpleNamespace(currentTime=10.0, inputBufferAdcTime=9.99)
                self.callback(np.full((320, 1), i, np.int16), 320, t, None)
        threading.Thread(target=feed).start()
        return self

    def __exit__(self, *exc):
        self.stop.set()


def test_microphone_source_publishes_chunks_with_adc_time(monkeypatch):
    import sounddevice
    monkeypatch.setattr(sounddevice, "InputStream", FakeInputStream)
    monkeypatch.setattr(microphone, "check_microphone", lambda mic: "fake")
    before = now_ns()
    chunks = take(microphone.Microphone(""), 5)
    assert [int(c.samples[0]) for c in chunks] == [0, 1, 2, 3, 4]
    assert all(c.samples.shape == (320,) for c in chunks)
    assert chunks[0].t_capture < before + 10**9 and chunks[0].t_capture <= now_ns() - 10_000_000


def test_missing_devices_fall_back_to_the_sample_clip(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    import moodwire.pipeline.sources.sample_clip as sample
    monkeypatch.setattr(sample, "DURATION_S", 2.0)  # a short clip keeps the test quick
    config, notes = resolve_sources(load_config())
    assert (config.sources.video, config.sources.audio, config.sources.loop) == ("file", "file", True)
    assert config.sources.file.endswith("sample_v2.mp4")
    assert len(notes) == 1 and "no camera and no microphone" in notes[0] and "sample clip" in notes[0]
    assert resolve_sources(load_config(overrides=["sources.video=sample", "sources.audio=none"]))[0].sources \
        == replace(config.sources, audio="none")
    info = probe_media(config.sources.file)
    assert info.has_video and info.has_audio


def test_fallback_none_makes_a_missing_camera_an_error():
    config = load_config(overrides=["sources.fallback=none", "sources.audio=synthetic"])
    with pytest.raises(SourceUnavailable, match="no camera.*sources.fallback = 'sample'"):
        resolve_sources(config)


def test_file_source_without_the_track_is_rejected(clip_video_only):
    config = load_config(overrides=["sources.audio=file", "sources.video=none"])
    config = replace(config, sources=replace(config.sources, file=str(clip_video_only)))
    with pytest.raises(SourceUnavailable, match="has no audio track"):
        resolve_sources(config)
