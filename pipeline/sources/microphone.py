"""Audio from a microphone through sounddevice (PortAudio), 16 kHz mono int16.

``t_capture`` of a chunk is the time of its first sample: PortAudio's ADC
time of the block, mapped onto the monotonic clock in the callback.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_CHUNK, AUDIO_RATE
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.messages import AudioChunk, Message
from moodwire.pipeline.sources import SourceUnavailable


def _sounddevice():
    try:
        import sounddevice
    except ImportError:
        raise SourceUnavailable("the microphone needs sounddevice: pip install -e '.[audio]'") from None
    except OSError:
        raise SourceUnavailable("PortAudio is not installed: apt-get install libportaudio2") from None
    return sounddevice


def device_arg(mic: str) -> int | str | None:
    if mic == "":
        return None
    return int(mic) if mic.isdigit() else mic


def check_microphone(mic: str) -> str:
    """The input device's name, or SourceUnavailable saying why there is none."""
    sd = _sounddevice()
    try:
        info = sd.query_devices(device_arg(mic), kind="input")
        sd.check_input_settings(device=device_arg(mic), channels=1, dtype="int16", samplerate=AUDIO_RATE)
    except (sd.PortAudioError, ValueError) as exc:
        which = f"input device {mic!r}" if mic else "a default input device"
        raise SourceUnavailable(
            f"no microphone: {which} is not usable at 16 kHz mono ({exc}); "
            f"plug one in, set sources.mic (see python -m sounddevice), or run on a file with --source FILE"
        ) from None
    return str(info["name"])


class Microphone:
    def __init__(self, mic: str) -> None:
        self.mic = mic

    def messages(self, stop: threading.Event) -> Iterator[tuple[str, Message]]:
        sd = _sounddevice()
        check_microphone(self.mic)
        blocks: queue.Queue[tuple[int, np.ndarray]] = queue.Queue(maxsize=500)

        def on_audio(indata, frames, time_info, status) -> None:
            lag_s = max(0.0, time_info.currentTime - time_info.inputBufferAdcTime)
            blocks.put_nowait((now_ns() - int(lag_s * 1e9), indata[:, 0].copy()))

        with sd.InputStream(samplerate=AUDIO_RATE, channels=1, dtype="int16", blocksize=AUDIO_CHUNK,
                            device=device_arg(self.mic), callback=on_audio):
            index = 0
            while not stop.is_set():
                try:
                    t, samples = blocks.get(timeout=0.2)
                except queue.Empty:
                    continue
                yield "audio.chunk", AudioChunk(chunk_index=index, sample_rate=AUDIO_RATE,
                                                samples=samples, t_capture=t)
                index += 1
