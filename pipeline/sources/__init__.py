"""Sources of ``video.frame`` and ``audio.chunk``: devices, media files, synthetic signals.

The audio format they deliver (rate, chunk size) is the bus's: ``moodwire.pipeline.core.audio``."""


class SourceUnavailable(RuntimeError):
    """A device or file cannot be used; the text says what is wrong and what to do."""
