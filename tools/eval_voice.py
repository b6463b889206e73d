"""How voice.affect holds on a labelled emotional-speech corpus: per-class arousal, AUC, CCC, confusion.

Reads the standard layouts (the file names carry the labels and the speaker):

- ``ravdess``: ``Actor_NN/03-01-EE-II-SS-RR-NN.wav`` (EE: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry,
  06 fearful, 07 disgust, 08 surprised; the last field is the actor);
- ``crema-d``: ``AudioWAV/1001_DFA_ANG_XX.wav`` (ANG, DIS, FEA, HAP, NEU, SAD; the first field is the actor);
- ``tess``: ``OAF_angry/OAF_back_angry.wav`` (angry, disgust, fear, happy, neutral, ps = pleasant surprise,
  sad; OAF and YAF are the two speakers);
- ``emodb``: ``wav/03a01Fa.wav`` (speaker 03; W anger, L boredom, E disgust, A fear, F happiness,
  T sadness, N neutral);
- ``csv``: ``path,label[,valence,arousal]`` with a header naming the columns (``speaker`` optional; paths
  relative to the CSV's folder; valence and arousal in [-1, 1]).

Each clip (16-bit PCM WAV, any rate, mono or stereo; resampled to 16 kHz) goes through the real voice
step (pipeline/voice/step.py) as a user's stream would: one stream per speaker, so the speaker
baseline learns that speaker, the speaker's clips in a fixed shuffled order (``--seed``), as a
conversation mixes moods (``--baseline clip`` makes every clip a fresh stream's first utterance
instead). With ``--pipeline``, each speaker's clips are joined with ``GAP_S`` of silence and played
through ``moodwire run --source`` (audio source, VAD, ASR, voice as processes over ZeroMQ), and each
clip gets the voice.affect of the utterances that overlap it; a clip with none is reported missing.

Prints per-class arousal, the AUC of high- against low-arousal classes (``HIGH``, ``LOW``) and of anger
against sadness (the Mann-Whitney statistic: the chance that a random high clip reads more aroused
than a random low one; 0.5 is chance), Lin's CCC against dimensional labels where the CSV has them,
and, when a trained voice model is configured (``--set voice.model=...``), its confusion matrix.

    .venv/bin/python -m tools.eval_voice --corpus PATH [--layout auto|ravdess|crema-d|tess|emodb|csv]
        [--baseline speaker|clip] [--pipeline] [--limit N] [--set KEY=VALUE ...] [--json FILE]

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
import tempfile
import wave
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_RATE, resample_linear
from moodwire.pipeline.core.config import load_config
from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.core.messages import VoiceAffect
from moodwire.pipeline.voice.step import VoiceStep, build_voice_step

from .harness.json_tool import emit_result
from .harness.machine import announce

HIGH = ("angry", "fear", "happy", "surprise")  # high-arousal classes (Russell 1980's circumplex)
LOW = ("sad", "neutral", "calm", "bored")  # low-arousal classes; disgust sits between and is left out
GAP_S = 1.5  # silence between clips in a --pipeline run: longer than the VAD's hangover


@dataclass(frozen=True)
class Item:
    path: Path
    label: str  # moodwire's label, or "calm" / "bored" (classes moodwire has no label for)
    speaker: str
    valence: float | None = None
    arousal: float | None = None


# ---------------------------------------------------------------- layouts

RAVDESS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
           "07": "disgust", "08": "surprise"}
CREMA_D = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
TESS = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy", "neutral": "neutral",
        "ps": "surprise", "sad": "sad"}
EMODB = {"W": "angry", "L": "bored", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}


def _ravdess(path: Path) -> Item | None:
    m = re.fullmatch(r"\d\d-\d\d-(\d\d)-\d\d-\d\d-\d\d-(\d\d)", path.stem)
    return Item(path, RAVDESS[m[1]], f"actor{m[2]}") if m and m[1] in RAVDESS else None


def _crema_d(path: Path) -> Item | None:
    m = re.fullmatch(r"(\d{4})_[A-Z]{3}_([A-Z]{3})_[A-Z]{1,2}", path.stem)
    return Item(path, CREMA_D[m[2]], m[1]) if m and m[2] in CREMA_D else None


def _tess(path: Path) -> Item | None:
    m = re.fullmatch(r"([A-Z]AF)_\w+?_(angry|disgust|fear|happy|neutral|ps|sad)", path.stem, re.IGNORECASE)
    return Item(path, TESS[m[2].lower()], m[1].upper()) if m else None


def _emodb(path: Path) -> Item | None:
    m = re.fullmatch(r"(\d\d)[a-z]\d\d([WLEAFTN])[a-z]?", path.stem)
    return Item(path, EMODB[m[2]], f"speaker{m[1]}") if m else None


LAYOUTS: dict[str, Callable[[Path], Item | None]] = {"ravdess": _ravdess, "crema-d": _crema_d, "tess": _tess,
                                                     "emodb": _emodb}


def read_csv(path: Path) -> list[Item]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: a header with at least the columns path,label is expected")
    return [Item(path.parent / r["path"], _label(r["label"], path), r.get("speaker") or "csv",
                 _number(r.get("valence")), _number(r.get("arousal"))) for r in rows]


def _label(text: str, where: Path) -> str:
    label = text.strip().lower()
    if label not in (*LABELS, "calm", "bored"):
        raise ValueError(f"{where}: label {text!r} is none of {', '.join(LABELS)}, calm, bored")
    return label


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def find_items(corpus: Path, layout: str) -> tuple[str, list[Item]]:
    """The corpus's clips and the layout they were read with (``auto``: the one that names most files)."""
    if corpus.is_file() or layout == "csv":
        return "csv", read_csv(corpus if corpus.is_file() else corpus / "labels.csv")
    wavs = sorted(p for p in corpus.rglob("*") if p.suffix.lower() == ".wav")
    candidates = LAYOUTS if layout == "auto" else {layout: LAYOUTS[layout]}
    name, parse = max(candidates.items(), key=lambda kv: sum(kv[1](p) is not None for p in wavs))
    items = [item for p in wavs if (item := parse(p)) is not None]
    if not items:
        raise ValueError(f"{corpus}: no WAV file named as the {name if layout != 'auto' else 'known'} layout "
                         f"expects ({', '.join(LAYOUTS)}; or a CSV)")
    return name, items


# ---------------------------------------------------------------- audio


def read_wav(path: Path) -> np.ndarray:
    """16 kHz mono int16; ValueError naming the file for anything but 16-bit PCM WAV."""
    try:
        with wave.open(str(path)) as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise ValueError(f"{path}: not a readable PCM WAV ({exc}); convert it, e.g. sox IN -b 16 OUT.wav") from None
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit samples; 16-bit PCM expected (sox IN -b 16 OUT.wav)")
    samples = np.frombuffer(data, "<i2").reshape(-1, channels).mean(axis=1)
    return resample_linear(samples, rate, AUDIO_RATE)


# ---------------------------------------------------------------- running the voice step


def by_speaker(items: Iterable[Item], seed: int) -> dict[str, list[Item]]:
    """Each speaker's clips in a fixed shuffled order (the order a stream hears them)."""
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.speaker].append(item)
    rng = random.Random(seed)
    for clips in groups.values():
        rng.shuffle(clips)
    return dict(sorted(groups.items()))


def run_step(groups: dict[str, list[Item]], make_step: Callable[[], VoiceStep],
             fresh_per_clip: bool) -> list[tuple[Item, VoiceAffect]]:
    out = []
    for clips in groups.values():
        step = make_step()
        for i, item in enumerate(clips):
            if fresh_per_clip:
                step = make_step()
            out.append((item, step.analyse(i, i, read_wav(item.path), AUDIO_RATE)))
    return out


def run_pipeline(groups: dict[str, list[Item]], sets: list[str]) -> tuple[list[tuple[Item, VoiceAffect]], list[Item]]:
    """Each speaker's clips joined with silences and played by ``moodwire run --source``."""
    from moodwire.pipeline.sources.spoken import joined_script, write_wav

    from .asr_wer import run_pipeline as play

    found, missing = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for speaker, clips in groups.items():
            script = joined_script([(read_wav(item.path), item.label) for item in clips], GAP_S, GAP_S)
            media = write_wav(Path(tmp) / f"{re.sub(r'[^A-Za-z0-9_-]', '_', speaker)}.wav", script.samples)
            got = play(media, ["nodes.face=false", "nodes.text=false", "nodes.fusion=false", *sets],
                       script.samples.size / AUDIO_RATE, topics=("voice.affect",))
            for item, span in zip(clips, script.spans):
                voice = [v for v in got.voice
                         if got.media_s(v.t_start) < span.end_s and got.media_s(v.t_end) > span.start_s]
                if voice:
                    found.append((item, max(voice, key=lambda v: v.t_end - v.t_start)))
                else:
                    missing.append(item)
    return found, missing


# ---------------------------------------------------------------- figures


def auc(high: Iterable[float], low: Iterable[float]) -> float | None:
    """P(a high clip reads more aroused than a low one), ties counting half (Mann-Whitney U / n1 n2)."""
    h, lo = np.asarray(list(high), float), np.asarray(list(low), float)
    if not h.size or not lo.size:
        return None
    greater = (h[:, None] > lo[None, :]).sum() + 0.5 * (h[:, None] == lo[None, :]).sum()
    return round(float(greater / (h.size * lo.size)), 4)


def ccc(predicted: Iterable[float], labelled: Iterable[float]) -> float | None:
    """Lin's concordance correlation coefficient (1: identical, 0: none)."""
    x, y = np.asarray(list(predicted), float), np.asarray(list(labelled), float)
    if x.size < 2:
        return None
    covariance = ((x - x.mean()) * (y - y.mean())).mean()
    denom = x.var() + y.var() + (x.mean() - y.mean()) ** 2
    return round(float(2 * covariance / denom), 4) if denom > 0 else None


def figures(results: list[tuple[Item, VoiceAffect]]) -> dict[str, Any]:
    per_class: dict[str, list[float]] = defaultdict(list)
    for item, msg in results:
        per_class[item.label].append(msg.arousal)
    out: dict[str, Any] = {
        "per_class": {label: {"n": len(v), "arousal_mean": round(float(np.mean(v)), 3),
                              "arousal_sd": round(float(np.std(v)), 3)} for label, v in sorted(per_class.items())},
        "auc_high_vs_low": auc((a for c in HIGH for a in per_class.get(c, [])),
                               (a for c in LOW for a in per_class.get(c, []))),
        "auc_angry_vs_sad": auc(per_class.get("angry", []), per_class.get("sad", [])),
        "settled_share": round(sum(m.baseline is not None and m.baseline.state == "settled"
                                   for _, m in results) / len(results), 3) if results else None,
    }
    for dim in ("arousal", "valence"):
        pairs = [(getattr(m, dim), getattr(i, dim)) for i, m in results
                 if getattr(i, dim) is not None and getattr(m, dim) is not None]
        out[f"ccc_{dim}"] = ccc(*zip(*pairs)) if pairs else None
    out["confusion"] = confusion(results)
    return out


def confusion(results: list[tuple[Item, VoiceAffect]]) -> dict[str, Any] | None:
    """Rows: the labelled class; columns: the trained model's top class. None without a model."""
    scored = [(i.label, m.labels[int(np.argmax(m.probs))]) for i, m in results if m.probs]
    if not scored:
        return None
    rows = sorted({t for t, _ in scored})
    matrix = {t: {p: sum(1 for a, b in scored if a == t and b == p) for p in LABELS} for t in rows}
    return {"labels": list(LABELS), "rows": matrix,
            "accuracy": round(sum(a == b for a, b in scored) / len(scored), 3)}


def print_report(layout: str, result: dict[str, Any]) -> None:
    f = result["figures"]
    print(f"\n{layout}: {result['clips']} clips, {result['speakers']} speakers, baseline per {result['baseline']}, "
          f"{'pipeline' if result['pipeline'] else 'voice step'}; rule {result['rule']}\n")
    print("| class | clips | arousal mean | sd |\n|---|---|---|---|")
    for label, row in f["per_class"].items():
        print(f"| {label} | {row['n']} | {row['arousal_mean']:+.3f} | {row['arousal_sd']:.3f} |")
    print(f"\nAUC high ({', '.join(HIGH)}) vs low ({', '.join(LOW)}) arousal: {f['auc_high_vs_low']}")
    print(f"AUC angry vs sad: {f['auc_angry_vs_sad']}; CCC arousal {f['ccc_arousal']}, valence {f['ccc_valence']}")
    if result["missing"]:
        print(f"clips without a voice.affect: {len(result['missing'])}: {', '.join(result['missing'][:10])}")
    if f["confusion"]:
        labels = f["confusion"]["labels"]
        print(f"\nconfusion (rows: labelled, columns: model), accuracy {f['confusion']['accuracy']}\n")
        print("| | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels))
        for label, row in f["confusion"]["rows"].items():
            print(f"| {label} | " + " | ".join(str(row[c]) for c in labels) + " |")


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the corpus folder, or a CSV file")
    parser.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS, "csv"))
    parser.add_argument("--baseline", default="speaker", choices=("speaker", "clip"),
                        help="one stream per speaker (default) or a fresh stream per clip")
    parser.add_argument("--pipeline", action="store_true", help="play each speaker's clips through moodwire run")
    parser.add_argument("--limit", type=int, default=None, help="at most N clips per speaker")
    parser.add_argument("--seed", type=int, default=0, help="the shuffle of each speaker's clips")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument("--json", type=Path, default=None, help="also write the result to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from moodwire.pipeline.voice.arousal_rule import RULE_NAME

    args = parse_args(argv)
    host, command = announce()
    try:
        layout, items = find_items(args.corpus, args.layout)
        groups = {s: clips[:args.limit] for s, clips in by_speaker(items, args.seed).items()}
        if args.pipeline:
            results, missing = run_pipeline(groups, args.set)
        else:
            config = load_config(None, args.set)
            loaded = build_voice_step(config)  # a configured trained model is loaded and warmed once, shared
            results = run_step(groups, lambda: VoiceStep(config.voice.wait_transcript_s, loaded.model),
                               args.baseline == "clip")
            missing = []
    except ValueError as exc:
        print(f"eval_voice: {exc}", file=sys.stderr)
        return 2
    result = {"tool": "eval_voice", "command": command, "machine": host, "layout": layout,
              "clips": sum(len(c) for c in groups.values()), "speakers": len(groups), "rule": RULE_NAME,
              "baseline": "clip" if args.baseline == "clip" else "speaker", "pipeline": args.pipeline,
              "missing": [str(i.path) for i in missing], "figures": figures(results)}
    print_report(layout, result)
    emit_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
