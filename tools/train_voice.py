#!/usr/bin/env python3
"""Train the small voice-emotion model (exporters/voice_emotion.py) on a folder of labelled clips,
export it to ONNX with a parity check, and write the sidecar the voice node reads.

    python -m tools.train_voice --data ~/data/RAVDESS --out models/voice_emotion.onnx --epochs 30
    moodwire run --set voice.model=models/voice_emotion.onnx

Clips are .wav files (any folder depth) named by either scheme, told apart per file:
- RAVDESS  ``03-01-05-01-02-01-12.wav``: 7 two-digit fields, the 3rd the emotion (01 neutral, 02 calm,
  03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), the 7th the actor. calm -> neutral.
- CREMA-D  ``1001_DFA_ANG_XX.wav``: actor, sentence, emotion (ANG DIS FEA HAP NEU SAD), intensity.
Other names are skipped and listed. Any PCM WAV is read: stereo is mixed down, other rates are
resampled to 16 kHz (band-limited, by FFT). Validation holds out whole speakers (actors), so the
reported accuracy is on voices the model never heard. Progress goes to stdout, one line per epoch;
the last line is a JSON summary. Exit status 2 for unusable input, with the reason.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import wave
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.voice.logmel import SAMPLE_RATE, logmel

RAVDESS = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.wav$", re.IGNORECASE)
RAVDESS_EMOTIONS = {"01": "neutral", "02": "neutral", "03": "happy", "04": "sad", "05": "angry",
                    "06": "fear", "07": "disgust", "08": "surprise"}  # 02 is calm: no calm class here
CREMAD = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$", re.IGNORECASE)
CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
NAMING_HELP = ("RAVDESS (MM-VC-EE-II-SS-RR-AA.wav, emotion EE 01..08, e.g. 03-01-05-01-02-01-12.wav) or "
               "CREMA-D (AAAA_SSS_EMO_LL.wav, EMO one of ANG DIS FEA HAP NEU SAD, e.g. 1001_DFA_ANG_XX.wav)")
MIN_RATE = 8000
LIST_AT_MOST = 50
TOYSET_MARKER = "toyset.json"  # tools/make_voice_toyset.py writes it


class DataError(ValueError):
    """Input the tool cannot train on; the text says why and what to do."""


@dataclass(frozen=True)
class ClipLabel:
    scheme: str  # "ravdess" | "crema-d"
    label: str  # one of LABELS
    speaker: str  # "ravdess:12", "crema-d:1001"


@dataclass(frozen=True)
class Clip:
    path: Path
    label: ClipLabel
    features: np.ndarray  # (N_MELS, frames)


# ---------------------------------------------------------------- names and files


def parse_name(name: str) -> ClipLabel | None:
    """The label and speaker a RAVDESS or CREMA-D file name encodes; None for any other name."""
    if m := RAVDESS.match(name):
        emotion = RAVDESS_EMOTIONS.get(m.group(3))
        return ClipLabel("ravdess", emotion, f"ravdess:{m.group(7)}") if emotion else None
    if m := CREMAD.match(name):
        emotion = CREMAD_EMOTIONS.get(m.group(3).upper())
        return ClipLabel("crema-d", emotion, f"crema-d:{m.group(1)}") if emotion else None
    return None


def read_clip(path: Path) -> np.ndarray:
    """Float32 mono samples in [-1, 1] at 16 kHz from any PCM WAV (8/16/24/32-bit, any channels and rate)."""
    try:
        with wave.open(str(path)) as fh:
            width, channels, rate = fh.getsampwidth(), fh.getnchannels(), fh.getframerate()
            raw = fh.readframes(fh.getnframes())
    except (wave.Error, EOFError) as exc:
        raise DataError(f"{path}: not a PCM WAV file ({exc}); convert it, e.g. "
                        f"ffmpeg -i {path.name} -ac 1 -ar 16000 -c:a pcm_s16le out.wav") from None
    if rate < MIN_RATE:
        raise DataError(f"{path}: sample rate {rate} Hz is too low for speech features (at least {MIN_RATE} Hz)")
    x = _pcm_to_float(raw, width).reshape(-1, channels).mean(axis=1)
    return _resample(x, rate, SAMPLE_RATE).astype(np.float32)


def _pcm_to_float(raw: bytes, width: int) -> np.ndarray:
    if width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)
    dtype = {2: np.int16, 4: np.int32}[width]
    return np.frombuffer(raw, dtype).astype(np.float64) / float(np.iinfo(dtype).max + 1)


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling by truncating or zero-padding the spectrum."""
    if rate == target or x.size == 0:
        return x
    n_out = max(1, round(x.size * target / rate))
    spectrum = np.fft.rfft(x)
    keep = n_out // 2 + 1
    spectrum = spectrum[:keep] if spectrum.size >= keep else np.pad(spectrum, (0, keep - spectrum.size))
    return np.fft.irfft(spectrum, n_out) * (n_out / x.size)


def scan(folder: Path) -> tuple[list[tuple[Path, ClipLabel]], list[str]]:
    """(labelled .wav files, skipped names) under ``folder``."""
    labelled, skipped = [], []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() != ".wav" or not path.is_file():
            continue
        label = parse_name(path.name)
        if label is None:
            skipped.append(str(path.relative_to(folder)))
        else:
            labelled.append((path, label))
    return labelled, skipped


def report_skipped(skipped: list[str]) -> None:
    if not skipped:
        return
    shown = "\n".join(f"  {name}" for name in skipped[:LIST_AT_MOST])
    more = f"\n  ... and {len(skipped) - LIST_AT_MOST} more" if len(skipped) > LIST_AT_MOST else ""
    print(f"skipped {len(skipped)} .wav file(s) whose names follow neither {NAMING_HELP}:\n{shown}{more}",
          file=sys.stderr)


def load_clips(folder: Path) -> tuple[list[Clip], list[str]]:
    if not folder.is_dir():
        raise DataError(f"--data {folder}: no such folder")
    labelled, skipped = scan(folder)
    report_skipped(skipped)
    if not labelled:
        raise DataError(f"no usable clips in {folder}: expected .wav files named by {NAMING_HELP}")
    clips = []
    for path, label in labelled:
        samples = read_clip(path)
        if samples.size < SAMPLE_RATE // 10:
            skipped.append(str(path.relative_to(folder)))
            print(f"skipped {path}: shorter than 0.1 s", file=sys.stderr)
            continue
        clips.append(Clip(path, label, logmel(samples)))
    return clips, skipped


# ---------------------------------------------------------------- split and batches


def split_by_speaker(clips: list[Clip], val_fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Whole speakers go to validation, so its accuracy is on unseen voices."""
    speakers = sorted({c.label.speaker for c in clips})
    if len(speakers) < 2:
        raise DataError(f"all clips come from one speaker ({speakers[0]}); a speaker-independent "
                        "validation needs clips from at least 2 actors")
    order = np.random.default_rng(seed).permutation(len(speakers))
    n_val = min(len(speakers) - 1, max(1, round(val_fraction * len(speakers))))
    held_out = {speakers[i] for i in order[:n_val]}
    return ([c for c in clips if c.label.speaker not in held_out], [c for c in clips if c.label.speaker in held_out])


def crop_batch(clips: list[Clip], frames: int, rng: np.random.Generator) -> np.ndarray:
    """(batch, 1, N_MELS, n): a random window of each clip, n = ``frames`` or the batch's shortest clip.
    No silence padding: the model pools over time, and at run time it sees whole utterances."""
    n = min(frames, *(c.features.shape[1] for c in clips))
    out = np.empty((len(clips), 1, clips[0].features.shape[0], n), np.float32)
    for i, clip in enumerate(clips):
        start = rng.integers(0, clip.features.shape[1] - n + 1)
        out[i, 0] = clip.features[:, start:start + n]
    return out


def counts(clips: list[Clip]) -> dict[str, int]:
    got = Counter(c.label.label for c in clips)
    return {label: got.get(label, 0) for label in LABELS}


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class Settings:
    epochs: int
    seed: int
    batch_size: int
    lr: float
    crop_frames: int
    threads: int


def train(train_set: list[Clip], val_set: list[Clip], s: Settings) -> tuple[Any, list[dict[str, float]]]:
    import torch

    from moodwire.exporters.voice_emotion import VoiceEmotionNet

    torch.manual_seed(s.seed)
    torch.set_num_threads(s.threads)
    rng = np.random.default_rng(s.seed)
    net = VoiceEmotionNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=s.lr, weight_decay=1e-4)
    # the rate decays to 0 over the run: the last epoch's weights, the ones exported, are settled
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=s.epochs)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(class_weights(train_set)))
    targets = np.array([LABELS.index(c.label.label) for c in train_set])
    history = []
    for epoch in range(1, s.epochs + 1):
        net.train()
        order, losses = rng.permutation(len(train_set)), []
        for i in range(0, len(order), s.batch_size):
            idx = order[i:i + s.batch_size]
            x = torch.from_numpy(crop_batch([train_set[j] for j in idx], s.crop_frames, rng))
            loss = loss_fn(net(x), torch.from_numpy(targets[idx]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        schedule.step()
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), **evaluate(net, val_set)}
        history.append(row)
        print(f"epoch {epoch}/{s.epochs}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
              f"val accuracy {row['val_accuracy']:.3f} ({len(val_set)} clips of unseen speakers)", flush=True)
    return net.eval(), history


def class_weights(clips: list[Clip]) -> np.ndarray:
    """Inverse class frequency over the classes present (RAVDESS has twice the neutral: calm joins it)."""
    n = np.array(list(counts(clips).values()), dtype=np.float64)
    present = n > 0
    w = np.zeros_like(n)
    w[present] = n.sum() / (present.sum() * n[present])
    return w.astype(np.float32)


def evaluate(net: Any, clips: list[Clip]) -> dict[str, float]:
    """Loss and accuracy over whole clips, one at a time, as the voice node runs them."""
    import torch

    net.eval()
    losses, correct = [], 0
    with torch.no_grad():
        for clip in clips:
            logits = net(torch.from_numpy(clip.features[None, None]))
            target = LABELS.index(clip.label.label)
            losses.append(float(torch.nn.functional.cross_entropy(logits, torch.tensor([target]))))
            correct += int(int(logits.argmax(dim=1)) == target)
    return {"val_loss": float(np.mean(losses)), "val_accuracy": correct / len(clips)}


# ---------------------------------------------------------------- the record


def training_record(folder: Path, clips: list[Clip], train_set: list[Clip], val_set: list[Clip],
                    skipped: list[str], s: Settings, history: list[dict[str, float]]) -> dict[str, Any]:
    synthetic = (folder / TOYSET_MARKER).is_file()
    description = f"trained on {folder}"
    if synthetic:
        description += (" - a SYNTHETIC espeak-ng toy set (tools/make_voice_toyset.py): its labels stand for "
                        "speed/pitch/loudness settings, not emotions; this is NOT an emotion model")
    val_counts = counts(val_set)
    return {
        "data_folder": str(folder), "description": description, "synthetic": synthetic,
        "schemes": dict(Counter(c.label.scheme for c in clips)),
        "counts_per_class": counts(clips), "train_counts": counts(train_set), "val_counts": val_counts,
        "classes_without_data": [k for k, v in counts(clips).items() if v == 0],
        "skipped_files": len(skipped), "skipped_examples": skipped[:LIST_AT_MOST],
        "train_speakers": sorted({c.label.speaker for c in train_set}),
        "val_speakers": sorted({c.label.speaker for c in val_set}),
        "split": "by speaker: validation speakers are never seen in training",
        "epochs_run": len(history), "seed": s.seed, "batch_size": s.batch_size, "lr": s.lr,
        "crop_frames": s.crop_frames,
        "val_accuracy": history[-1]["val_accuracy"], "val_accuracy_is": "after the last epoch (no selection on it)",
        "val_majority_share": max(val_counts.values()) / len(val_set),
        "history": history,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="folder of RAVDESS- or CREMA-D-named .wav clips")
    parser.add_argument("--out", type=Path, default=Path("voice_emotion.onnx"),
                        help="ONNX file to write; the sidecar goes beside it as .json")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of speakers held out")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--crop-s", type=float, default=3.0, help="training window per clip, seconds")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1: an untrained model is never exported")
    if not 0 < args.val_fraction < 1:
        parser.error("--val-fraction must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.data.expanduser().resolve()
    s = Settings(args.epochs, args.seed, args.batch_size, args.lr, max(8, round(args.crop_s * 100)), args.threads)
    started = time.perf_counter()
    try:
        clips, skipped = load_clips(folder)
        train_set, val_set = split_by_speaker(clips, args.val_fraction, args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(clips)} clips from {folder}: {len(train_set)} for training, {len(val_set)} for validation "
          f"(speakers {', '.join(sorted({c.label.speaker for c in val_set}))} held out)", flush=True)
    net, history = train(train_set, val_set, s)
    record = training_record(folder, clips, train_set, val_set, skipped, s, history)
    record["train_seconds"] = round(time.perf_counter() - started, 1)

    from moodwire.exporters.voice_emotion import export_trained

    result = export_trained(net, args.out.expanduser().resolve(), record)
    print(f"exported {result.summary()}", flush=True)
    print(json.dumps({"onnx": str(result.onnx_path), "sidecar": str(result.sidecar_path),
                      "val_accuracy": record["val_accuracy"], "val_speakers": record["val_speakers"],
                      "counts_per_class": record["counts_per_class"], "epochs": record["epochs_run"],
                      "parity_max_abs_diff": result.max_abs_diff, "synthetic": record["synthetic"],
                      "description": record["description"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
