"""How the packaged face models hold on labelled faces: accuracy per class, confusion, valence sign, time.

Reads a folder of labelled face images or frames, in one of two layouts:

- one sub-folder per label (``happy/001.jpg``, ``Anger/x.png``...);
- a CSV ``path,label`` with that header (paths relative to the CSV's folder).

Labels may be written as data sets write them (``Happiness``, ``fearful``, ``surprised``: labels.py's
``canonical_label``). Each image goes through the real face path: mediapipe's landmarks and blendshapes
(the largest face; an image where none is found is counted, not scored), each model's own crop from
those landmarks, the model, and the valence rule (``circumplex-v1``) the pipeline applies. The models
are the packaged mini-Xception, face-api.js's FaceExpressionNet and their ensemble (``face.model``).

Prints per model: accuracy, accuracy per class (recall), the confusion matrix (rows: the label; columns:
what the model said), the valence sign agreement (on faces whose label is clearly pleasant or unpleasant:
happy against angry, disgust, fear, sad; the sign of the rule's valence against the label's), and the
median time per face of the model alone (crop, preprocessing, inference; landmarks excluded, as every
model shares them).

    .venv/bin/python -m tools.eval_face --faces FOLDER_OR_CSV [--models mini-xception,faceapi-expression,ensemble]
        [--limit N] [--json FILE]

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.labels import CIRCUMPLEX, LABELS, canonical_label
from moodwire.pipeline.face.affect_rule import valence_arousal
from moodwire.pipeline.face.alignment import face_box, landmarks_to_pixels

from .harness.json_tool import emit_result
from .harness.machine import announce

MODELS = ("mini-xception", "faceapi-expression", "ensemble")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
CLEAR_VALENCE = 0.5  # a label whose circumplex valence is at least this far from 0 has a clear sign


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str


@dataclass
class Tally:
    """One model's answers."""

    confusion: np.ndarray = field(default_factory=lambda: np.zeros((len(LABELS), len(LABELS)), int))
    sign_agree: int = 0
    sign_total: int = 0
    ms: list[float] = field(default_factory=list)

    def add(self, label: str, probs: np.ndarray, valence: float, ms: float) -> None:
        truth = LABELS.index(label)
        self.confusion[truth, int(np.argmax(probs))] += 1
        self.ms.append(ms)
        want = CIRCUMPLEX[truth, 0]
        if abs(want) >= CLEAR_VALENCE:
            self.sign_total += 1
            self.sign_agree += int(np.sign(valence) == np.sign(want))

    def report(self) -> dict[str, Any]:
        per_class = {label: (round(float(row[i] / row.sum()), 3) if row.sum() else None)
                     for i, (label, row) in enumerate(zip(LABELS, self.confusion))}
        total = int(self.confusion.sum())
        return {"faces": total, "accuracy": round(float(np.trace(self.confusion) / total), 3) if total else None,
                "per_class": per_class, "confusion": self.confusion.tolist(),
                "valence_sign_agreement": round(self.sign_agree / self.sign_total, 3) if self.sign_total else None,
                "valence_sign_faces": self.sign_total,
                "ms_per_face_p50": round(float(np.median(self.ms)), 2) if self.ms else None}


# ---------------------------------------------------------------- reading the folder


def read_samples(source: Path) -> list[Sample]:
    """The labelled images of a folder (one sub-folder per label) or a ``path,label`` CSV."""
    if source.is_file() and source.suffix.lower() == ".csv":
        return _from_csv(source)
    if not source.is_dir():
        raise SystemExit(f"error: {source} is neither a folder of label folders nor a .csv file")
    samples = []
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        label = _label(folder.name, f"folder {folder}")
        samples += [Sample(p, label) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not samples:
        raise SystemExit(f"error: no images in label folders under {source} (expected e.g. {source}/happy/1.jpg)")
    return samples


def _from_csv(path: Path) -> list[Sample]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise SystemExit(f"error: {path} needs a header with the columns path,label")
    return [Sample(path.parent / row["path"], _label(row["label"], f"{path} line {i + 2}"))
            for i, row in enumerate(rows)]


def _label(name: str, where: str) -> str:
    try:
        return canonical_label(name)
    except ValueError as exc:
        raise SystemExit(f"error: {where}: {exc}") from None


# ---------------------------------------------------------------- running the face path


def load_models(names: list[str]) -> dict[str, Any]:
    """Each named model as face.model builds it, sharing engines (the ensemble reuses its members')."""
    from moodwire.pipeline.face.expression import EnsembleModel
    from moodwire.pipeline.face.step import load_face_model

    built: dict[str, Any] = {}
    for name in ("mini-xception", "faceapi-expression"):
        if name in names or "ensemble" in names:
            config = Config()
            config.face.model = name
            built[name] = load_face_model(config)
    if "ensemble" in names:
        built["ensemble"] = EnsembleModel([built["mini-xception"], built["faceapi-expression"]])
    return {name: built[name] for name in names}


def largest_face(image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """(pixel landmarks, blendshapes, their names) of the largest face, from a fresh landmarker (a still image
    has no previous frame to track from); None when there is no face."""
    import cv2

    from moodwire.engines.registry import resolve
    from moodwire.pipeline.face.landmarker import Landmarker

    landmarker = Landmarker(resolve("face-landmarker").path, max_faces=4)
    try:
        faces = landmarker.detect(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), 0)
        names = landmarker.blendshape_names
    finally:
        landmarker.close()
    if not faces:
        return None
    h, w = image_bgr.shape[:2]
    pixels = [landmarks_to_pixels(f.landmarks, w, h) for f in faces]
    areas = [np.prod(box[2:] - box[:2]) for box in map(face_box, pixels)]
    best = int(np.argmax(areas))
    return pixels[best], faces[best].blendshapes, names


def evaluate(samples: list[Sample], models: dict[str, Any]) -> tuple[dict[str, Tally], list[str], list[str]]:
    """Tallies per model, the images without a face, and those that could not be read."""
    import cv2

    tallies = {name: Tally() for name in models}
    no_face, unreadable = [], []
    for sample in samples:
        image = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
        if image is None:
            unreadable.append(str(sample.path))
            continue
        found = largest_face(image)
        if found is None:
            no_face.append(str(sample.path))
            continue
        marks, shapes, names = found
        for name, model in models.items():
            start = time.perf_counter()
            [scores] = model.score_frames([(image, [marks])])
            ms = (time.perf_counter() - start) * 1000
            valence = float(valence_arousal(scores.probs, shapes[None], names)[0, 0])
            tallies[name].add(sample.label, scores.probs[0], valence, ms)
    return tallies, no_face, unreadable


# ---------------------------------------------------------------- report


def print_report(reports: dict[str, dict[str, Any]]) -> None:
    short = [label[:4] for label in LABELS]
    print(f"\n{'model':<20}{'faces':>6}{'accuracy':>10}{'valence sign':>14}{'ms/face':>9}  "
          + " ".join(f"{s:>5}" for s in short) + "   (accuracy per class)")
    for name, r in reports.items():
        cells = " ".join(f"{v:>5.2f}" if v is not None else f"{'-':>5}" for v in r["per_class"].values())
        sign = r["valence_sign_agreement"]
        print(f"{name:<20}{r['faces']:>6}{_fmt(r['accuracy']):>10}{_fmt(sign):>14}{_fmt(r['ms_per_face_p50']):>9}  "
              + cells)
    for name, r in reports.items():
        print(f"\nconfusion, {name} (rows: label; columns: the model's answer)")
        print(" " * 10 + " ".join(f"{s:>5}" for s in short))
        for label, row in zip(LABELS, r["confusion"]):
            print(f"{label:<10}" + " ".join(f"{v:>5}" for v in row))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, required=True, help="a folder of label folders, or a path,label CSV")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(args.models) - set(MODELS)
    if unknown or not args.models:
        parser.error(f"--models: unknown {', '.join(sorted(unknown)) or '(none given)'}; choose from {', '.join(MODELS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host, command = announce()
    samples = read_samples(args.faces)[:args.limit or None]
    print(f"faces: {len(samples)} labelled images from {args.faces}", flush=True)
    tallies, no_face, unreadable = evaluate(samples, load_models(args.models))
    reports = {name: t.report() for name, t in tallies.items()}
    print_report(reports)
    if no_face or unreadable:
        print(f"\nnot scored: {len(no_face)} without a face found, {len(unreadable)} unreadable")
    emit_result({"tool": "eval_face", "command": command, "machine": host, "images": len(samples),
                 "labels": list(LABELS), "no_face": no_face, "unreadable": unreadable, "models": reports}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
