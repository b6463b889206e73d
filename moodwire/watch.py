"""What the client library's subscribers share: prefixes checked against the topic registry, and a note
(``logging``, logger ``moodwire``) when nothing arrives (pipeline/core/link_watch.py)."""

from __future__ import annotations

import logging
from typing import Any, Sequence

from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.link_watch import LinkWatch
from moodwire.pipeline.core.topics import check_prefix

log = logging.getLogger("moodwire")


def client_subscriber(endpoint: str, prefixes: Sequence[str], **subscriber_kwargs: Any) -> Subscriber:
    """A ``Subscriber`` for an application: an unknown prefix or an endpoint ZeroMQ cannot use raises here;
    after a few seconds with nothing received it logs once what it waits for and how to check."""
    for prefix in prefixes:
        check_prefix(prefix)
    subscriber_kwargs.setdefault("watch", LinkWatch(endpoint, list(prefixes), log.warning))
    return Subscriber(endpoint, prefixes, **subscriber_kwargs)
