"""Drawing the stream over a video frame: face boxes with track ids, the fused emotion and its bars,
a valence-arousal circumplex with a short trail per person, which modalities are live, and the
last transcript. Pure functions of the messages: the tests draw known messages on a real frame.

Layout (pixels; the frame is not resized): boxes on the faces, each labelled above and with 7
bars beside it; the circumplex in the top-right corner (``CIRCUMPLEX`` square); a status band at
the bottom (modalities, latency, the last transcript).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.messages import AffectFrame, FaceTracks, PersonAffect

CIRCUMPLEX = 150  # side of the circumplex panel
MARGIN = 8
BAND = 46  # height of the status band
BAR_W, BAR_H = 60, 9
BARS_W, BARS_H = BAR_W + 60, 7 * (BAR_H + 3)  # the bars with their class names
FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, GREY, DARK = (255, 255, 255), (140, 140, 140), (30, 30, 30)
LIVE, ABSENT = (80, 220, 80), (90, 90, 220)  # BGR: green, red
NO_FACE = (220, 220, 220)  # the person without a face (voice and text only)
PALETTE = [(255, 160, 40), (60, 200, 255), (200, 90, 255), (90, 255, 160), (255, 90, 120), (40, 120, 255)]


def track_colour(track_id: int | None) -> tuple[int, int, int]:
    return NO_FACE if track_id is None else PALETTE[track_id % len(PALETTE)]


@dataclass(frozen=True)
class Overlay:
    """What one drawn frame shows, besides the picture."""

    tracks: FaceTracks | None
    affect: AffectFrame | None
    trails: dict[int | None, list[tuple[float, float]]]  # person -> recent (valence, arousal), oldest first
    transcript: str = ""


def render(image: np.ndarray, overlay: Overlay) -> np.ndarray:
    """A copy of ``image`` (BGR) with the overlay drawn on it."""
    out = np.ascontiguousarray(image).copy()
    persons = {p.track_id: p for p in overlay.affect.persons} if overlay.affect else {}
    draw_circumplex(out, persons, overlay.trails)
    for face in overlay.tracks.faces if overlay.tracks else []:
        draw_face(out, face.track_id, face.box, persons.get(face.track_id))
    draw_status(out, overlay.affect, overlay.transcript)
    return out


def draw_face(image: np.ndarray, track_id: int, box: list[float], person: PersonAffect | None) -> None:
    colour = track_colour(track_id)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
    label = f"#{track_id}"
    if person is not None and person.probs:
        shown = top_label(person)  # the steady label: its own probability, which need not be the highest
        label += f" {shown} {person.probs[person.labels.index(shown)]:.2f}" if shown in person.labels else ""
        draw_bars(image, person, bars_origin(image, (x0, y0, x1, y1)), colour)
    text(image, label, (x0, max(y0 - 6, 12)), colour, 0.5)


def bars_origin(image: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int]:
    """Where a face's bars go: right of its box, else left of it, else anywhere free; never over the
    circumplex panel nor the status band, always inside the picture (a 640x360 frame included)."""
    height, width = image.shape[:2]
    x0, y0, x1, _ = box
    y = min(max(y0, 0), max(height - BAND - BARS_H, 0))
    panel_left, panel_bottom = width - MARGIN - CIRCUMPLEX, MARGIN + CIRCUMPLEX
    for x in (x1 + 6, x0 - 6 - BARS_W, width - BARS_W - MARGIN, MARGIN):
        x = min(max(x, 0), width - BARS_W)
        if x + BARS_W <= panel_left or y >= panel_bottom:
            return x, y
    return min(max(x1 + 6, 0), width - BARS_W), max(y, panel_bottom)


def draw_bars(image: np.ndarray, person: PersonAffect, origin: tuple[int, int], colour) -> None:
    """One bar per class, length proportional to its fused probability, with the class name."""
    x, y = origin
    for k, (name, p) in enumerate(zip(person.labels, person.probs)):
        top = y + k * (BAR_H + 3)
        cv2.rectangle(image, (x, top), (x + BAR_W, top + BAR_H), DARK, -1)
        cv2.rectangle(image, (x, top), (x + int(round(BAR_W * min(max(p, 0.0), 1.0))), top + BAR_H), colour, -1)
        text(image, name[:8], (x + BAR_W + 4, top + BAR_H - 1), WHITE, 0.33)


def circumplex_centre(image: np.ndarray) -> tuple[int, int, int]:
    """Centre x, y and radius of the circumplex panel in the top-right corner."""
    radius = CIRCUMPLEX // 2 - MARGIN
    return image.shape[1] - MARGIN - CIRCUMPLEX // 2, MARGIN + CIRCUMPLEX // 2, radius


def circumplex_point(image: np.ndarray, valence: float, arousal: float) -> tuple[int, int]:
    """Pixel of (valence, arousal): valence to the right, arousal up; values clipped to [-1, 1]."""
    cx, cy, r = circumplex_centre(image)
    v, a = (float(np.clip(x, -1.0, 1.0)) for x in (valence, arousal))
    return int(round(cx + v * r)), int(round(cy - a * r))


def draw_circumplex(image: np.ndarray, persons: dict[int | None, PersonAffect],
                    trails: dict[int | None, list[tuple[float, float]]]) -> None:
    cx, cy, r = circumplex_centre(image)
    x0, y0 = cx - CIRCUMPLEX // 2, cy - CIRCUMPLEX // 2
    panel = image[y0:y0 + CIRCUMPLEX, x0:x0 + CIRCUMPLEX]
    panel[:] = (panel * 0.35).astype(np.uint8)  # darken, keep a hint of the picture
    cv2.circle(image, (cx, cy), r, GREY, 1)
    cv2.line(image, (cx - r, cy), (cx + r, cy), GREY, 1)
    cv2.line(image, (cx, cy - r), (cx, cy + r), GREY, 1)
    text(image, "valence", (cx + r - 44, cy + 12), GREY, 0.33)
    text(image, "arousal", (cx + 3, cy - r + 9), GREY, 0.33)
    for track_id, trail in trails.items():
        points = [circumplex_point(image, v, a) for v, a in trail]
        if len(points) > 1:
            cv2.polylines(image, [np.array(points, np.int32)], False, track_colour(track_id), 1)
    for track_id, person in persons.items():
        cv2.circle(image, circumplex_point(image, person.valence, person.arousal), 5, track_colour(track_id), -1)


def draw_status(image: np.ndarray, affect: AffectFrame | None, transcript: str) -> None:
    """Bottom band: each modality green (used for someone) or red (missing), the latency, the last words."""
    height, width = image.shape[:2]
    band = image[height - BAND:]
    band[:] = (band * 0.3).astype(np.uint8)
    x = MARGIN
    for modality in ("face", "voice", "text"):
        live = affect is not None and modality not in affect.missing
        cv2.circle(image, (x + 5, height - BAND + 12), 5, LIVE if live else ABSENT, -1)
        text(image, modality, (x + 14, height - BAND + 16), WHITE, 0.4)
        x += 70
    if affect is not None:
        text(image, f"{affect.latency_ms:.0f} ms", (x, height - BAND + 16), WHITE, 0.4)
    else:
        text(image, "no affect.frame", (x, height - BAND + 16), ABSENT, 0.4)
    text(image, fitted(transcript, width - 2 * MARGIN, 0.45), (MARGIN, height - 10), WHITE, 0.45)


def fitted(words: str, width: int, scale: float) -> str:
    """``words``, or their end after "...", as much as fits in ``width`` pixels (the newest words matter)."""
    def fits(candidate: str) -> bool:
        return cv2.getTextSize(candidate, FONT, scale, 3)[0][0] <= width

    if fits(words):
        return words
    keep = len(words)
    while keep > 0 and not fits("..." + words[-keep:]):
        keep -= 1
    return "..." + words[-keep:] if keep else ""


def text(image: np.ndarray, words: str, at: tuple[int, int], colour, scale: float) -> None:
    """Text with a dark outline, readable on any picture. Hershey fonts draw ASCII only."""
    words = words.encode("ascii", "replace").decode()
    cv2.putText(image, words, at, FONT, scale, DARK, 3, cv2.LINE_AA)
    cv2.putText(image, words, at, FONT, scale, colour, 1, cv2.LINE_AA)
