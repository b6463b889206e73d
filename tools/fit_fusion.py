#!/usr/bin/env python3
"""Fit the fusion model's reliabilities and temperatures (exporters/fusion.py) on a labelled recording.

    moodwire record session.mwrec            # with the face, voice and text nodes running
    python -m tools.fit_fusion session.mwrec labels.csv --out my_fusion.json
    moodwire run --set fusion.params=my_fusion.json

With a face profile on while recording (docs/models.md), pass ``--profile NAME``: the fit starts from
that profile's fusion entry, and the fitted face values go into it (``profiles.NAME`` of the output),
leaving the packaged face model's values as they were. A recording whose faces come from a profile is
refused without ``--profile``, and the other way round: its face values would be fitted to one model and
used for another.

Recording: a ``.mwrec`` file (pipeline/runtime/recording.py) holding ``face.tracks``, ``voice.affect`` and
``text.affect`` (other topics are ignored). Labels: a CSV with the header ``start_s,end_s,label``,
one row per span, times in seconds from the recording's earliest capture time (the smallest
``t_capture`` of those three topics: for a live recording, about its first message), ``label`` one
of the 7 classes (angry disgust fear happy sad surprise neutral). Spans must not overlap; time
outside every span is not used.

Time steps are the video frames (``face.tracks``), or a 10 Hz grid when there is no video. At each
step inside a labelled span the model gets:
- face: the largest face of that frame. No face: absent.
- voice, text: the estimate of the utterance whose span [t_start, t_end] holds the step (the latest
  one when several do; for text the final transcript's).
Each message becomes an estimate (probabilities, confidence) by the fusion node's own rules
(pipeline/fusion/state.py), so the fit sees what the node feeds the model. Only class
probabilities enter the fit: voice without a trained model has none and is absent, as in the
node's class output. Messages with ``valid: false`` are not used.

The fit minimises the mean negative log-likelihood of the labels under the fused probabilities
with Adam on the log-parameters (so they stay positive), plus a weak pull towards the starting
values. That pull anchors the overall scale of the reliabilities (only their ratios matter to
the class probabilities), and a modality the data never shows gets no gradient at all: it keeps
its starting values, and the record lists it under ``not_fitted``. The output is a params file
with a ``fitted`` record (data, checksums, frames, NLL before and after). Exit status 2 for
unusable input, with the reason.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moodwire.engines.fusion_spec import INPUT_NAMES, MODALITIES, FusionParams, default_params_path, load_params
from moodwire.engines.profiles import get_profile
from moodwire.engines.registry import ModelError
from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.face.expression import PACKAGED_MODEL
from moodwire.pipeline.fusion.model import Estimate, FusionBatch

TOPICS = ("face.tracks", "voice.affect", "text.affect")
GRID_S = 0.1  # time step when the recording has no video
PRIOR = 1e-3  # weight of the pull of the log-parameters towards their starting values


class DataError(ValueError):
    """Input the tool cannot fit on; the text says why and what to do."""


@dataclass(frozen=True)
class LabelSpan:
    start_s: float
    end_s: float
    label: int  # index into LABELS


@dataclass
class Stream:
    """The recording's estimates (with class probabilities), times in ns of capture. ``voice``/``text``
    rows: (t_start, t_end, estimate) of each utterance."""

    t0: int
    frames: list[int] = field(default_factory=list)  # capture times of every video frame
    face: dict[int, Estimate] = field(default_factory=dict)  # frame time -> the largest face's estimate
    voice: list[tuple[int, int, Estimate]] = field(default_factory=list)
    text: list[tuple[int, int, Estimate]] = field(default_factory=list)
    face_models: set[str] = field(default_factory=set)  # expression_model of face.tracks with faces


@dataclass
class Dataset:
    inputs: dict[str, np.ndarray]  # model inputs, one row per labelled time step
    targets: np.ndarray  # (N,) label index
    present_counts: dict[str, int]


@dataclass
class FitResult:
    params: FusionParams
    nll_before: float
    nll_after: float


# ---------------------------------------------------------------- reading


def read_labels(path: Path) -> list[LabelSpan]:
    """The label spans of a ``start_s,end_s,label`` CSV, sorted; DataError naming the line otherwise."""
    try:
        rows = list(csv.reader(Path(path).read_text().splitlines()))
    except OSError as exc:
        raise DataError(f"cannot read labels {path}: {exc.strerror or exc}") from None
    if not rows or [c.strip() for c in rows[0]] != ["start_s", "end_s", "label"]:
        raise DataError(f"{path}: the first line must be the header start_s,end_s,label")
    spans = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            start, end, label = float(row[0]), float(row[1]), row[2].strip().lower()
        except (ValueError, IndexError):
            raise DataError(f"{path} line {line}: expected start_s,end_s,label, got {row}") from None
        if label not in LABELS:
            raise DataError(f"{path} line {line}: label {label!r} is not one of {', '.join(LABELS)}")
        if not 0 <= start < end:
            raise DataError(f"{path} line {line}: need 0 <= start_s < end_s, got {start}, {end}")
        spans.append(LabelSpan(start, end, LABELS.index(label)))
    spans.sort(key=lambda s: s.start_s)
    for a, b in zip(spans, spans[1:]):
        if b.start_s < a.end_s:
            raise DataError(f"{path}: spans {a.start_s}-{a.end_s} and {b.start_s}-{b.end_s} overlap")
    if not spans:
        raise DataError(f"{path}: no label spans")
    return spans


def read_stream(path: Path) -> Stream:
    """The valid face, voice and text estimates of a recording."""
    from moodwire.pipeline.core.wire import WireError, decode
    from moodwire.pipeline.fusion.state import face_estimate, text_estimate, voice_estimate
    from moodwire.pipeline.runtime.recording import RecordingError, read_records

    messages = []
    try:
        for rec in read_records(path):
            if rec.topic in TOPICS:
                try:
                    messages.append(decode(rec.frames))
                except WireError:
                    continue
    except (OSError, RecordingError) as exc:
        raise DataError(f"cannot read recording {path}: {exc}") from None
    if not messages:
        raise DataError(f"{path}: no {', '.join(TOPICS)} messages; record them with 'moodwire record'")
    stream = Stream(t0=min(msg.t_capture for _, msg in messages))
    speech: dict[str, dict[int, tuple]] = {"voice.affect": {}, "text.affect": {}}  # per utterance, latest wins
    finals: set[int] = set()
    for topic, msg in messages:
        if topic == "face.tracks":
            stream.frames.append(msg.t_capture)
            if msg.valid and msg.faces:
                stream.face_models.add(msg.expression_model or PACKAGED_MODEL)  # older recordings name none
                face = max(msg.faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                est = face_estimate(face, list(msg.expression_labels), msg.t_capture)
                if est is not None:
                    stream.face[msg.t_capture] = est
            continue
        est = voice_estimate(msg) if topic == "voice.affect" else text_estimate(msg)
        final = getattr(msg, "final", True)
        if isinstance(est, str) or est.probs is None or (not final and msg.utterance_id in finals):
            continue  # no usable estimate, no class probabilities, or a partial after its final
        if final and topic == "text.affect":
            finals.add(msg.utterance_id)
        speech[topic][msg.utterance_id] = (msg.t_start, msg.t_end, est)
    stream.frames.sort()
    stream.voice = sorted(speech["voice.affect"].values(), key=lambda r: r[0])
    stream.text = sorted(speech["text.affect"].values(), key=lambda r: r[0])
    return stream


# ---------------------------------------------------------------- the data set


def build_dataset(stream: Stream, spans: list[LabelSpan]) -> Dataset:
    """One model input row per labelled time step that has at least one modality present."""
    times = stream.frames
    if not times:
        last = max([r[1] for r in stream.voice + stream.text], default=stream.t0)
        times = list(range(stream.t0, last + 1, int(GRID_S * 1e9)))
    rows, targets = [], []
    for t in times:
        label = _label_at((t - stream.t0) / 1e9, spans)
        if label is None:
            continue
        row = (stream.face.get(t), _speech_at(stream.voice, t), _speech_at(stream.text, t))
        if any(r is not None for r in row):
            rows.append(row)
            targets.append(label)
    if not rows:
        raise DataError("no labelled time step has any modality present: do the label times match the recording "
                        "(seconds from its earliest capture time)?")
    x = FusionBatch(rows).feeds()  # the node's own inputs; only sources with class probabilities were kept
    counts = {m: int(x["present"][:, i].sum()) for i, m in enumerate(MODALITIES)}
    return Dataset(x, np.asarray(targets, np.int64), counts)


def _label_at(t_s: float, spans: list[LabelSpan]) -> int | None:
    for span in spans:
        if span.start_s <= t_s < span.end_s:
            return span.label
    return None


def _speech_at(rows: list[tuple[int, int, Estimate]], t: int) -> Estimate | None:
    """The last-listed estimate whose utterance span holds ``t``."""
    hit = None
    for t_start, t_end, est in rows:
        if t_start <= t <= t_end:
            hit = est
    return hit


# ---------------------------------------------------------------- fitting


def fit(data: Dataset, start: FusionParams, steps: int = 300, lr: float = 0.05) -> FitResult:
    """Adam on the log-reliabilities and log-temperatures, minimising the labels' mean NLL."""
    import torch

    from moodwire.exporters.fusion import LateFusion

    model = LateFusion(start)
    initial = [p.detach().clone() for p in (model.log_reliability, model.log_temperature)]
    x = [torch.from_numpy(data.inputs[name]) for name in INPUT_NAMES]
    y = torch.from_numpy(data.targets)

    def nll() -> torch.Tensor:
        probs = model(*x)[0]
        return -torch.log(probs.gather(1, y[:, None]).clamp_min(1e-12)).mean()

    with torch.no_grad():
        before = float(nll())
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        prior = sum(((p - p0) ** 2).sum() for p, p0 in zip((model.log_reliability, model.log_temperature), initial))
        loss = nll() + PRIOR * prior
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = float(nll())
    params = FusionParams(tuple(round(v, 6) for v in model.reliability()),
                          tuple(round(v, 6) for v in model.temperature()), "")
    return FitResult(params, before, after)


def fitted_params(result: FitResult, data: Dataset, recording: Path, labels: Path, start_path: Path,
                  steps: int, lr: float) -> FusionParams:
    """The fit's parameters with their provenance: never mistakable for hand-set values."""
    from moodwire.engines.registry import sha256_of

    record = {
        "tool": "tools/fit_fusion.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "recording": {"path": str(recording), "sha256": sha256_of(recording)},
        "labels": {"path": str(labels), "sha256": sha256_of(labels)},
        "start_params": str(start_path),
        "n_frames": int(len(data.targets)),
        "frames_per_label": {LABELS[i]: int(n) for i, n in enumerate(np.bincount(data.targets, minlength=7)) if n},
        "frames_with_modality": data.present_counts,
        "not_fitted": [m for m, n in data.present_counts.items() if n == 0],
        "objective": "mean negative log-likelihood of the labels under fused_probs",
        "nll_before": round(result.nll_before, 6),
        "nll_after": round(result.nll_after, 6),
        "optimiser": {"name": "Adam", "steps": steps, "lr": lr, "prior": PRIOR},
    }
    source = (f"fitted by tools/fit_fusion.py on {recording.name} with {labels.name} "
              f"({len(data.targets)} frames; NLL {result.nll_before:.3f} -> {result.nll_after:.3f})")
    return FusionParams(result.params.reliability, result.params.temperature, source, record)


def check_face_model(stream: Stream, profile: str) -> None:
    """DataError unless the recording's faces come from ``profile`` ("" = the packaged model)."""
    wanted = profile or PACKAGED_MODEL
    if profile:
        get_profile(profile, "face")  # ModelError for a name that is no face profile
    others = sorted(stream.face_models - {wanted})
    if others:
        hint = f"pass --profile {others[0]}" if others[0] != PACKAGED_MODEL else "leave out --profile"
        raise DataError(f"the recording's faces come from {', '.join(others)}, not {wanted}; {hint}")


def write_fitted(params: FusionParams, out: Path, start_path: Path, profile: str) -> Path:
    """The params file: the fitted values, the start file's profile entries, and with ``profile`` the fitted
    values of its modality in that profile's entry (the modality's own values kept from the start file)."""
    from moodwire.pipeline.core.paths import write_json_atomic

    data = params.to_json()
    entries = dict(json.loads(start_path.read_text()).get("profiles", {}))
    if profile:
        modality = get_profile(profile).modality
        entries[profile] = {"reliability": data["reliability"][modality], "temperature": data["temperature"][modality],
                            "source": params.source}
        base = load_params(start_path)
        i = MODALITIES.index(modality)
        data["reliability"][modality], data["temperature"][modality] = base.reliability[i], base.temperature[i]
    if entries:
        data["profiles"] = entries
    return write_json_atomic(out, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recording", type=Path, help=".mwrec file with face.tracks, voice.affect, text.affect")
    parser.add_argument("labels", type=Path, help="CSV start_s,end_s,label (seconds from the recording's start)")
    parser.add_argument("--out", type=Path, required=True, help="params JSON to write")
    parser.add_argument("--start", type=Path, default=None, help="params to start from (default: packaged)")
    parser.add_argument("--profile", default="", help="the face profile the recording was made with: its fusion "
                                                         "entry is fitted (docs/models.md)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args(argv)
    start_path = args.start or default_params_path()
    try:
        start = load_params(start_path, (args.profile,) if args.profile else ())
        stream = read_stream(args.recording)
        check_face_model(stream, args.profile)
        data = build_dataset(stream, read_labels(args.labels))
    except (ValueError, ModelError) as exc:  # DataError, FusionParamsError; an unknown profile
        print(f"fit_fusion: {exc}", file=sys.stderr)
        return 2
    print(f"{len(data.targets)} labelled frames; with each modality: {data.present_counts}")
    result = fit(data, start, args.steps, args.lr)
    params = fitted_params(result, data, args.recording, args.labels, start_path, args.steps, args.lr)
    write_fitted(params, args.out, start_path, args.profile)
    print(f"NLL {result.nll_before:.4f} -> {result.nll_after:.4f}; wrote {args.out}")
    print(json.dumps(params.to_json()["reliability"] | {"temperature": params.to_json()["temperature"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
