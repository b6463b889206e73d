"""The tables of an analysed recording, built from the bus as the run goes (docs/analysis.md).

``Collector`` listens to a lossless run (a thread) and keeps compact rows, never the arrays: per
frame the faces of ``face.tracks`` joined with the fused persons of ``affect.frame`` by track id; per
utterance its ``affect.utterance``; per word its ``Word``. Times stay capture times (ns) until
``tables`` turns them into seconds in the file with the run's ``t0``. A message lost on the way (a
gap in ``seq``) is counted in ``lost``: the run then fails rather than write incomplete tables.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.flow import END, PROGRESS_TOPIC
from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.core.messages import (AffectFrame, AffectUtterance, FaceTrack, FaceTracks, ModalityInput,
                                             PersonAffect, Progress)

TOPICS = ("affect.frame", "affect.utterance", "face.tracks")
MODALITIES = ("face", "voice", "text")
NS = 1_000_000_000


def in_label_order(probs: np.ndarray, labels: list[str]) -> dict[str, float]:
    """``expr_<label>`` columns of a face's probabilities, in ``LABELS`` order whatever the model's order."""
    index = {name: i for i, name in enumerate(labels or LABELS)}
    return {f"expr_{name}": float(probs[index[name]]) for name in LABELS if name in index}


def face_row(track: FaceTrack, msg: FaceTracks) -> dict[str, Any]:
    x0, y0, x1, y1 = track.box
    row: dict[str, Any] = {"track_id": track.track_id, "box_x0": x0, "box_y0": y0, "box_x1": x1, "box_y1": y1}
    row.update(in_label_order(track.expression, msg.expression_labels))
    row.update(face_valence=track.valence, face_arousal=track.arousal, head_yaw=track.head_pose.yaw,
               head_pitch=track.head_pose.pitch, head_roll=track.head_pose.roll)
    row.update({f"bs_{name}": float(v) for name, v in zip(msg.blendshape_names, track.blendshapes)})
    return row


def fused_columns(person: PersonAffect | None) -> dict[str, Any]:
    if person is None:
        return {"label": "", "valence": np.nan, "arousal": np.nan, "confidence": 0.0, "modalities": ""}
    return {"label": top_label(person), "valence": person.valence, "arousal": person.arousal,
            "confidence": person.confidence, "modalities": ";".join(sorted(person.modalities))}


def modality_columns(inputs: list[ModalityInput]) -> dict[str, Any]:
    """Each modality's label, valence, arousal and weight, or why it is missing."""
    by_name = {m.modality: m for m in inputs}
    row: dict[str, Any] = {}
    for name in MODALITIES:
        m = by_name.get(name)
        present = m is not None and m.present
        row[f"{name}_label"] = top_label(LABELS, m.probs) if present else ""
        row[f"{name}_valence"] = m.valence if present and m.valence is not None else np.nan
        row[f"{name}_arousal"] = m.arousal if present and m.arousal is not None else np.nan
        row[f"{name}_weight"] = m.weight if present else 0.0
        row[f"{name}_missing"] = "" if present else (m.reason if m is not None else "not in the record")
    return row


FRAME_CHUNK = 256  # frame rows kept as dicts before they become one compact chunk (an hour is 108,000)
ABSENT = object()  # a column a row of a chunk does not have (a frame without a face has no face columns)


@dataclass(frozen=True)
class FrameChunk:
    """``FRAME_CHUNK`` frame rows by column: a numeric column as one numpy array (8 bytes a value, where dicts
    of Python floats take about 100), any other as an object array. numpy only: pandas (about 80 MB) is not
    imported while the nodes run, so the analysis's peak memory is theirs, not theirs plus the tables'."""

    columns: tuple[str, ...]
    values: tuple[np.ndarray, ...]

    @classmethod
    def of(cls, rows: list[dict]) -> "FrameChunk":
        columns = tuple(dict.fromkeys(k for row in rows for k in row))  # in order of appearance, as pandas does
        return cls(columns, tuple(_column([row.get(c, ABSENT) for row in rows]) for c in columns))

    def rows(self) -> list[dict]:
        """The rows as they were given (numbers as numpy scalars, which pandas reads alike)."""
        n = len(self.values[0]) if self.values else 0
        return [{c: v[i] for c, v in zip(self.columns, self.values) if v[i] is not ABSENT} for i in range(n)]


def _column(values: list) -> np.ndarray:
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                  for v in values)
    if numeric and len({type(v) in (int, np.int64) for v in values}) == 1:  # all ints or all floats
        return np.asarray(values)
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


@dataclass
class Collected:
    """Rows with capture times in ns (``t``), in the order fusion published them. Frame rows are packed into a
    ``FrameChunk`` every ``FRAME_CHUNK`` rows: as dicts an hour's would take gigabytes."""

    frame_chunks: list = field(default_factory=list)
    frame_rows: list[dict] = field(default_factory=list)
    utterances: list[dict] = field(default_factory=list)
    words: list[dict] = field(default_factory=list)
    lost: dict[str, int] = field(default_factory=dict)
    fusion_watermark: int = 0
    first_at: float = 0.0  # monotonic time of the first source watermark: the media started to flow
    last_at: float = 0.0  # ... of fusion's END

    def add_frames(self, rows: list[dict]) -> None:
        self.frame_rows.extend(rows)
        if len(self.frame_rows) >= FRAME_CHUNK:
            self.flush_frames()

    def flush_frames(self) -> None:
        if self.frame_rows:
            self.frame_chunks.append(FrameChunk.of(self.frame_rows))
            self.frame_rows = []


class Collector:
    """A thread that turns a lossless run's messages into rows (see the module's docstring)."""

    def __init__(self, endpoint: str, hwm: int) -> None:
        self.data = Collected()
        self._faces: dict[int, list[dict]] = {}  # frame index -> its face rows, until its affect.frame comes
        self._next_seq: dict[str, int] = {}
        self._stop = threading.Event()
        self._sub = Subscriber(endpoint, (*TOPICS, PROGRESS_TOPIC), queue_everything=True, hwm=hwm,
                               queue_limit=hwm)
        self._thread = threading.Thread(target=self._run, name="moodwire-collector", daemon=True)
        self._thread.start()

    @property
    def finished(self) -> bool:
        return self.data.fusion_watermark >= END

    def close(self) -> Collected:
        """Stop after what has arrived is taken; the rows."""
        self._stop.set()
        self._thread.join()
        self._sub.close()
        self.data.flush_frames()
        return self.data

    def _run(self) -> None:
        while True:
            got = self._sub.recv(timeout=0.1)
            if got is None:
                if self._stop.is_set():
                    return
                continue
            self._count(got.topic, got.msg.seq)
            self._take(got.msg)

    def _count(self, topic: str, seq: int) -> None:
        if topic == PROGRESS_TOPIC:
            return
        expected = self._next_seq.get(topic, 0)
        if seq != expected:
            self.data.lost[topic] = self.data.lost.get(topic, 0) + abs(seq - expected)
        self._next_seq[topic] = seq + 1

    def _take(self, msg: Any) -> None:
        if isinstance(msg, FaceTracks):
            self._faces[msg.frame_index] = [face_row(track, msg) for track in msg.faces]
        elif isinstance(msg, AffectFrame):
            self._on_frame(msg)
        elif isinstance(msg, AffectUtterance):
            self._on_utterance(msg)
        elif isinstance(msg, Progress) and msg.kind == "watermark":
            self.data.first_at = self.data.first_at or time.monotonic()
            if msg.node == "fusion":
                self.data.fusion_watermark = max(self.data.fusion_watermark, msg.watermark)
                self.data.last_at = time.monotonic()

    def _on_frame(self, msg: AffectFrame) -> None:
        persons = {p.track_id: p for p in msg.persons}
        base = {"frame_index": msg.frame_index, "t": msg.t_capture, "missing": ";".join(msg.missing)}
        faces = self._faces.pop(msg.frame_index, [])
        for older in [i for i in self._faces if i < msg.frame_index]:
            del self._faces[older]
        rows = [{**base, **face, **fused_columns(persons.get(face["track_id"]))} for face in faces]
        self.data.add_frames(rows or [{**base, "track_id": np.nan, **fused_columns(persons.get(None))}])

    def _on_utterance(self, msg: AffectUtterance) -> None:
        if msg.stage != "final":
            return  # the first record of an utterance, without words: the table has the final one
        n = len(self.data.utterances)
        self.data.utterances.append({
            "utterance_id": n, "t_start": msg.t_start, "t_end": msg.t_end, "t_speech_end": msg.t_speech_end,
            "text": msg.text,
            "speaker_track_id": msg.speaker_track_id, **modality_columns(msg.inputs),
            "label": top_label(msg.labels, msg.probs), "valence": msg.valence, "arousal": msg.arousal,
            "confidence": msg.confidence, "missing": ";".join(msg.missing)})
        self.data.words.extend({"utterance_id": n, "word": w.word.strip(), "t_start": w.t_start, "t_end": w.t_end,
                                "probability": w.probability} for w in msg.words)


def seconds(t_ns: int, t0_ns: int) -> float:
    """Time in the file: exact nanoseconds, to the microsecond (t0 differs between runs; this does not)."""
    return round((t_ns - t0_ns) / NS, 6)


FRAME_FIRST = ["frame_index", "time_s", "track_id"]
UTTERANCE_FIRST = ["utterance_id", "start_s", "end_s", "speech_end_s", "text", "speaker_track_id"]
WORD_COLUMNS = ["utterance_id", "word", "start_s", "end_s", "probability"]


def ordered(frame: Any, first: list[str], ids: tuple[str, ...]) -> Any:
    """``frame`` with the ``first`` columns first (an empty table keeps them); ``ids`` as nullable ints."""
    import pandas as pd

    if not len(frame):
        return pd.DataFrame(columns=first)
    frame = frame[first + [c for c in frame.columns if c not in first]]
    for column in ids:
        frame[column] = frame[column].astype("Int64")
    return frame


def tables(data: Collected, t0_ns: int) -> dict[str, Any]:
    """pandas data frames ``frames``, ``utterances`` and ``words``, times in seconds of the file."""
    import pandas as pd

    chunks = [pd.DataFrame(chunk.rows()) for chunk in data.frame_chunks]  # one chunk's dicts at a time
    frames = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    if len(frames):
        frames = frames.assign(time_s=[seconds(t, t0_ns) for t in frames.pop("t")])
    utterances = [{**{k: v for k, v in r.items() if k not in ("t_start", "t_end", "t_speech_end")},
                   "start_s": seconds(r["t_start"], t0_ns), "end_s": seconds(r["t_end"], t0_ns),
                   "speech_end_s": seconds(r["t_speech_end"], t0_ns) if r["t_speech_end"] else np.nan}
                  for r in data.utterances]
    words = [{"utterance_id": r["utterance_id"], "word": r["word"], "start_s": seconds(r["t_start"], t0_ns),
              "end_s": seconds(r["t_end"], t0_ns), "probability": r["probability"]} for r in data.words]
    return {"frames": ordered(frames, FRAME_FIRST, ("track_id",)),
            "utterances": ordered(pd.DataFrame(utterances), UTTERANCE_FIRST, ("speaker_track_id",)),
            "words": ordered(pd.DataFrame(words), WORD_COLUMNS, ())}
