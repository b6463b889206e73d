"""Stable per-face track ids across video frames, from face boxes alone.

Matching is greedy on IoU (best pair first): with the handful of faces a
webcam sees, greedy and Hungarian assignment agree except in contrived
overlaps, and greedy needs no scipy.

Decision: a track that goes unmatched is kept for ``max_gap_s`` (default
0.5 s), so a missed detection or two keeps the id; after that it is dropped,
and a face that comes back later gets a NEW id. Boxes alone cannot tell
whether the returning face is the same person, and a wrong "same person"
would merge two people's affect histories downstream, which is worse than a
split one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrackerSettings:
    """``iou_min``: least IoU with a track's last box to continue it.
    ``max_gap_s``: how long an unmatched track keeps its id."""

    iou_min: float = 0.3
    max_gap_s: float = 0.5


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    last_seen_ns: int


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4) with every box in ``b`` (M,4), as (N,M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    union = _area(a) + _area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def greedy_match(scores: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """(row, col) pairs, best score first, each row and col used once, score >= minimum."""
    pairs: list[tuple[int, int]] = []
    if scores.size == 0:
        return pairs
    order = np.argsort(-scores, axis=None, kind="stable")
    used_rows, used_cols = set(), set()
    for flat in order:
        r, c = divmod(int(flat), scores.shape[1])
        if scores[r, c] < minimum:
            break
        if r not in used_rows and c not in used_cols:
            pairs.append((r, c))
            used_rows.add(r)
            used_cols.add(c)
    return pairs


class FaceTracker:
    """Gives each face box a track id that stays while the face stays in view."""

    def __init__(self, settings: TrackerSettings = TrackerSettings()) -> None:
        self.settings = settings
        self._tracks: list[_Track] = []
        self._next_id = 1

    @property
    def active_ids(self) -> list[int]:
        """Ids of the tracks currently kept (seen within ``max_gap_s`` of the last update)."""
        return [t.track_id for t in self._tracks]

    def update(self, boxes: np.ndarray, t_ns: int) -> list[int]:
        """One id per box (x0, y0, x1, y1 pixels), in the order given, for a frame at ``t_ns``."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self._drop_expired(t_ns)
        scores = iou_matrix(boxes, np.array([t.box for t in self._tracks]).reshape(-1, 4))
        ids = [0] * len(boxes)  # 0: not matched yet (ids start at 1)
        for box_i, track_i in greedy_match(scores, self.settings.iou_min):
            track = self._tracks[track_i]
            track.box, track.last_seen_ns = boxes[box_i], t_ns
            ids[box_i] = track.track_id
        for box_i, assigned in enumerate(ids):
            if not assigned:
                ids[box_i] = self._new_track(boxes[box_i], t_ns)
        return ids

    def _drop_expired(self, t_ns: int) -> None:
        max_gap_ns = self.settings.max_gap_s * 1e9
        self._tracks = [t for t in self._tracks if t_ns - t.last_seen_ns <= max_gap_ns]

    def _new_track(self, box: np.ndarray, t_ns: int) -> int:
        track_id = self._next_id
        self._next_id += 1
        self._tracks.append(_Track(track_id, box, t_ns))
        return track_id
