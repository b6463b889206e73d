"""moodwire's client library: the affect stream of a running ``moodwire run``, as typed messages.

Three styles, one each per need (docs/client.md):

- ``subscribe(prefix)``: iterate over messages (``AffectFrame``, ``AffectUtterance``, ...);
- ``Latest()``: the current fused estimate of a person, with its age, for control loops;
- ``Client().on(prefix, callback).run()``: callbacks.

Each takes ``curve=curve_keys("server.key", "client.key_secret")`` for a CURVE-secured endpoint.

Messages are the dataclasses of ``pipeline.messages``; the wire format is docs/schema.md.
"""

from pipeline.config import ConfigError
from pipeline.keys import CurveClient
from pipeline.messages import AffectFrame, AffectUtterance, Message, ModalityInput, PersonAffect

from moodwire.affect import modalities_used, top_label
from moodwire.client import Client, on
from moodwire.endpoint import DEFAULT_ENDPOINT
from moodwire.keys import curve_keys
from moodwire.latest import Latest, PersonEstimate
from moodwire.stream import Stream, subscribe
from moodwire.timing import age_s, wall_clock

__all__ = [
    "DEFAULT_ENDPOINT", "subscribe", "Stream", "Latest", "PersonEstimate", "Client", "on",
    "top_label", "modalities_used", "age_s", "wall_clock", "curve_keys", "CurveClient", "ConfigError",
    "Message", "AffectFrame", "AffectUtterance", "PersonAffect", "ModalityInput",
]
