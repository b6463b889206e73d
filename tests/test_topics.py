"""The topic registry and the process table agree with each other, the code and the docs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from moodwire.pipeline.core.bus import Publisher
from moodwire.pipeline.core.messages import ENVELOPE_FIELDS, AudioChunk, Message, VideoFrame
from moodwire.pipeline.core.topics import TOPICS, Policy, UnknownTopicError, get_topic
from moodwire.pipeline.runtime.process_table import PROCESS_TABLE, REPORT_TOPIC, get_node

SCHEMA_DOC = Path(__file__).resolve().parents[1] / "docs" / "schema.md"


def test_every_topic_is_dotted_typed_and_has_a_policy():
    for name, topic in TOPICS.items():
        assert re.fullmatch(r"[a-z]+(\.[a-z_]+)+", name), name
        assert issubclass(topic.msg_type, Message)
        assert isinstance(topic.policy, Policy)
        assert topic.rate_hz is None or topic.rate_hz > 0
    assert get_topic("video.frame").policy is Policy.LATEST
    assert get_topic("audio.chunk").policy is Policy.QUEUED


def test_message_fields_do_not_shadow_the_envelope():
    for topic in TOPICS.values():
        names = [f.name for f in dataclasses.fields(topic.msg_type)]
        assert names[:len(ENVELOPE_FIELDS)] == list(ENVELOPE_FIELDS)
        assert len(set(names)) == len(names)


def test_process_table_names_only_registered_topics_and_real_modules():
    import importlib
    produced = {REPORT_TOPIC, "system.health"}  # every node's report, and the manager's health
    for spec in PROCESS_TABLE:
        for topic in spec.inputs + spec.outputs:
            get_topic(topic)
        produced.update(spec.outputs)
        assert callable(importlib.import_module(spec.module).main)
    consumed = {t for spec in PROCESS_TABLE for t in spec.inputs}
    assert consumed <= produced, "a node consumes a topic no node produces"
    assert get_node("bus").inputs == ()
    with pytest.raises(KeyError, match="no node 'nope'"):
        get_node("nope")


def test_publisher_refuses_unregistered_topics_and_wrong_types(tmp_path):
    pub = Publisher(f"ipc://{tmp_path}/x.sock", "t", bind=True)
    try:
        with pytest.raises(UnknownTopicError, match="pipeline/core/topics.py"):
            pub.send("video.frames", AudioChunk(chunk_index=0, sample_rate=16000, samples=np.zeros(1, np.int16)))
        with pytest.raises(TypeError, match="video.frame carries VideoFrame, not AudioChunk"):
            pub.send("video.frame", AudioChunk(chunk_index=0, sample_rate=16000, samples=np.zeros(1, np.int16)))
        pub.send("video.frame", VideoFrame(frame_index=0, width=1, height=1, fps_nominal=1.0,
                                           image=np.zeros((1, 1, 3), np.uint8)))
    finally:
        pub.close()


def test_schema_doc_covers_every_topic_and_field():
    doc = SCHEMA_DOC.read_text()
    for name, topic in TOPICS.items():
        assert f"`{name}`" in doc, f"docs/schema.md lacks topic {name}"
        for f in dataclasses.fields(topic.msg_type):
            assert f"`{f.name}`" in doc, f"docs/schema.md lacks field {name}.{f.name}"
