"""Sources of ``video.frame`` and ``audio.chunk``: devices, media files, synthetic signals."""

AUDIO_RATE = 16000
AUDIO_CHUNK = 320  # 20 ms at 16 kHz, a frame size webrtcvad accepts


class SourceUnavailable(RuntimeError):
    """A device or file cannot be used; the text says what is wrong and what to do."""
