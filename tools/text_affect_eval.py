"""Accuracy of the text node's zero-shot emotion rule on a labelled sentence file.

    python -m tools.text_affect_eval [--data tools/data/text_affect_test.json] [--prototypes FILE]

What it measures: the classifier the text node runs (all-MiniLM-L6-v2 embeddings,
nearest labelled prototypes of pipeline/text/prototypes.json, the negation rule),
on held-out sentences that are NOT among the prototypes. This is zero-shot
nearest-prototype classification with a general sentence encoder, not a trained
emotion classifier; the test file is small (tens of sentences, written by the
project), so the figures say the rule works as designed, not how it does on
real speech. Chance is 1/7 = 14 %.

Prints one line per sentence, the confusion matrix, accuracy per class, on
negated sentences and overall, the same without the negation rule (ablation),
the valence-sign accuracy (sentences marked positive or negative: is the sign
of the predicted valence right?) and the time per sentence. The last line of
stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "text_affect_test.json"


@dataclass(frozen=True)
class Case:
    text: str
    label: str
    valence: str  # positive | negative | neutral (not scored for sign)
    negation: bool


def load_cases(path: Path) -> list[Case]:
    rows = json.loads(Path(path).read_text())["sentences"]
    return [Case(r["text"], r["label"], r["valence"], bool(r.get("negation"))) for r in rows]


def _accuracy(hits: list[bool]) -> float:
    return float(np.mean(hits)) if hits else float("nan")


def evaluate(classifier, cases: list[Case]) -> dict:
    """Predictions and figures; ``classifier`` is a moodwire.pipeline.text.classifier.TextClassifier."""
    labels = classifier.labels
    start = time.perf_counter()
    scores = [classifier.score(c.text) for c in cases]  # one at a time, as the node does
    per_sentence_ms = (time.perf_counter() - start) * 1e3 / len(cases)
    predicted = [labels[int(np.argmax(s.probs))] for s in scores]
    hits = [p == c.label for p, c in zip(predicted, cases)]
    signed = [(s.valence > 0) == (c.valence == "positive") for s, c in zip(scores, cases) if c.valence != "neutral"]
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for p, c in zip(predicted, cases):
        confusion[labels.index(c.label), labels.index(p)] += 1
    return {"method": classifier.method, "scores": scores, "predicted": predicted, "hits": hits,
            "accuracy": _accuracy(hits), "correct": sum(hits), "n": len(cases),
            "per_class": {l: _accuracy([h for h, c in zip(hits, cases) if c.label == l]) for l in labels},
            "negation_accuracy": _accuracy([h for h, c in zip(hits, cases) if c.negation]),
            "negation_n": sum(c.negation for c in cases),
            "valence_sign_accuracy": _accuracy(signed), "valence_sign_correct": sum(signed), "valence_sign_n": len(signed),
            "confusion": confusion, "per_sentence_ms": per_sentence_ms}


def print_report(result: dict, cases: list[Case], ablation: dict) -> None:
    labels = list(result["per_class"])
    print(f"method: {result['method']} (zero-shot nearest prototypes with a general sentence encoder, "
          "not a trained emotion classifier)")
    for case, score, pred, hit in zip(cases, result["scores"], result["predicted"], result["hits"]):
        mark = "ok " if hit else "ERR"
        neg = " [neg]" if case.negation else ""
        print(f"{mark} want {case.label:<8} got {pred:<8} p={float(score.probs.max()):.2f} "
              f"v={score.valence:+.2f} a={score.arousal:+.2f}{neg}  {case.text}")
    print("\nconfusion (rows: true label, columns: predicted)")
    print(" " * 9 + " ".join(f"{l[:7]:>7}" for l in labels))
    for label, row in zip(labels, result["confusion"]):
        print(f"{label:<9}" + " ".join(f"{v:>7d}" for v in row))
    print("\naccuracy per class: " + ", ".join(f"{l} {a:.0%}" for l, a in result["per_class"].items()))
    print(f"accuracy: {result['correct']}/{result['n']} = {result['accuracy']:.1%} (chance 1/7 = 14.3%)")
    print(f"negated sentences: {result['negation_accuracy']:.1%} of {result['negation_n']}")
    print(f"without the negation rule ({ablation['method']}): {ablation['correct']}/{ablation['n']} = "
          f"{ablation['accuracy']:.1%}, negated sentences {ablation['negation_accuracy']:.1%}")
    print(f"valence sign: {result['valence_sign_correct']}/{result['valence_sign_n']} = "
          f"{result['valence_sign_accuracy']:.1%} (sentences marked positive or negative)")
    print(f"time per sentence (tokenise + encode + score, one at a time): {result['per_sentence_ms']:.1f} ms")


def summary(result: dict, ablation: dict, data: Path, backend: str) -> dict:
    keys = ("method", "accuracy", "correct", "n", "per_class", "negation_accuracy", "negation_n",
            "valence_sign_accuracy", "valence_sign_correct", "valence_sign_n", "per_sentence_ms")
    out = {k: result[k] for k in keys}
    out.update(data=str(data), backend=backend, chance=1 / 7,
               ablation={"method": ablation["method"], "accuracy": ablation["accuracy"],
                         "negation_accuracy": ablation["negation_accuracy"]})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled sentences (JSON)")
    parser.add_argument("--prototypes", default="", help="prototypes file; default the packaged one")
    parser.add_argument("--engine", default="cpu", help="auto, cpu, cuda or tensorrt (default cpu)")
    args = parser.parse_args(argv)

    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.text.step import build_classifier

    config = Config()
    config.text.prototypes, config.text.engine = args.prototypes, args.engine
    classifier, backend = build_classifier(config)
    cases = load_cases(args.data)
    classifier.score("warm-up")
    result = evaluate(classifier, cases)
    classifier.negation_rule = False
    ablation = evaluate(classifier, cases)
    classifier.negation_rule = True
    print_report(result, cases, ablation)
    print(json.dumps(summary(result, ablation, args.data, backend)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
