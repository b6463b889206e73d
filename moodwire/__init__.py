"""moodwire's client library: the affect stream of a running ``moodwire run``, as typed messages.

Three styles, one each per need (docs/client.md):

- ``subscribe(prefix)``: iterate over messages (``AffectFrame``, ``AffectUtterance``, ...);
- ``Latest()``: the current fused estimate of a person, with its age, for control loops;
- ``Client().on(prefix, callback).run()``: callbacks.

Each takes ``curve=curve_keys("server.key", "client.key_secret")`` for a CURVE-secured endpoint.

Messages are the dataclasses of ``moodwire.pipeline.core.messages``; the wire format is docs/schema.md.
The pipeline itself (``moodwire run``) lives in the subpackages: ``moodwire.pipeline``, ``moodwire.engines``,
``moodwire.exporters`` and ``moodwire.tools`` (layers: docs/architecture.md).
"""

from moodwire.client import Client, on
from moodwire.endpoint import DEFAULT_ENDPOINT
from moodwire.latest import Latest, PersonEstimate
from moodwire.pipeline.core.affect import modalities_used, top_label
from moodwire.pipeline.core.client_keys import add_key_options, curve_from_args, curve_keys
from moodwire.pipeline.core.config import ConfigError
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.messages import AffectFrame, AffectUtterance, Message, ModalityInput, PersonAffect
from moodwire.stream import Stream, subscribe
from moodwire.timing import age_s, wall_clock



def analyze(path, **options):  # noqa: ANN001, ANN201 (documented in pipeline/runtime/analyze.py)
    """A recording's tables as pandas data frames (``frames``, ``utterances``, ``words``) and its ``summary``:
    ``moodwire.analyze("session.mp4", out="results", format="csv", set=["face.engine=cpu"])``. Needs the
    ``analysis`` extra; runs the pipeline's nodes in lossless mode (docs/analysis.md)."""
    from moodwire.pipeline.runtime.analyze import analyze as run_analysis

    return run_analysis(path, **options)


__all__ = [
    "analyze",
    "DEFAULT_ENDPOINT", "subscribe", "Stream", "Latest", "PersonEstimate", "Client", "on",
    "top_label", "modalities_used", "age_s", "wall_clock", "curve_keys", "add_key_options", "curve_from_args",
    "CurveClient", "ConfigError",
    "Message", "AffectFrame", "AffectUtterance", "PersonAffect", "ModalityInput",
]
