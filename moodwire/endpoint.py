"""The public endpoint a client connects to by default (``bus.public`` of the config)."""

from moodwire.pipeline.core.bus import DEFAULT_PUBLIC

DEFAULT_ENDPOINT: str = DEFAULT_PUBLIC
