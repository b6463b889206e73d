"""The explicit negation rule (``negation-shift-v1``), applied after prototype similarity.

Why a rule at all: a general sentence encoder puts "I'm not angry" close to
"I'm angry" (the words are nearly the same). Negated prototypes in the data
file fix the common phrasings, but not every one, so moodwire also applies
this small, named rule on the words:

1. The transcript is split into lower-case words; a clause ends at , ; : . ! ?
   or at "but" / "and".
2. A *negator* is one of ``NEGATORS`` or any word ending in "n't".
3. If one of a label's ``negatable`` words (listed per label in the prototypes
   file, e.g. happy: happy, glad, pleased) follows a negator within
   ``WINDOW`` words in the same clause, that label is *negated*, unless the
   words in between contain an intensifier of ``IDIOMS`` ("never been so
   scared", "couldn't be more happy" say the opposite of a negation).
4. A negated label keeps ``KEEP`` of its probability; the rest moves to the
   label its ``when_negated`` names in the file (happy -> sad; the negative
   emotions -> neutral). Nothing else changes.

Known limits: sarcasm, negation outside the window ("not that I was ever
really happy"), and emotion words not in the lists are not seen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

RULE_NAME = "negation-shift-v1"
NEGATORS = frozenset({"not", "no", "never", "nothing", "nobody", "neither", "nor", "hardly", "barely", "without"})
IDIOMS = frozenset({"so", "more", "less", "than", "ever", "as", "too"})
WINDOW = 3  # words after the negator; "not at all pleased" is three
KEEP = 0.1  # share of a negated label's probability it keeps

_CLAUSE_BREAK = re.compile(r"[,;:.!?]+|\b(?:but|and)\b")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _is_negator(word: str) -> bool:
    return word in NEGATORS or word.endswith("n't")


def negated_labels(text: str, negatable: Mapping[str, Sequence[str]]) -> list[str]:
    """Labels whose emotion words are negated in ``text``, in first-seen order."""
    owner = {w.lower(): label for label, words in negatable.items() for w in words}
    found: list[str] = []
    for clause in _CLAUSE_BREAK.split(text.lower().replace("\u2019", "'")):
        words = _WORD.findall(clause)
        for i, word in enumerate(words):
            if not _is_negator(word):
                continue
            for j in range(i + 1, min(i + 1 + WINDOW, len(words))):
                if words[j] in IDIOMS:
                    break
                label = owner.get(words[j])
                if label and label not in found:
                    found.append(label)
    return found


def shift(probs: np.ndarray, labels: Sequence[str], negated: Sequence[str],
          when_negated: Mapping[str, str]) -> np.ndarray:
    """Move all but ``KEEP`` of each negated label's probability to its ``when_negated`` label."""
    out = np.asarray(probs, dtype=np.float64).copy()
    index = {label: i for i, label in enumerate(labels)}
    for label in negated:
        target = when_negated.get(label, "")
        if not target or target == label:
            continue
        moved = out[index[label]] * (1.0 - KEEP)
        out[index[label]] -= moved
        out[index[target]] += moved
    return out / out.sum()
