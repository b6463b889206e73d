"""Small readings of affect messages that every application needs."""

from __future__ import annotations

from typing import Sequence

from moodwire.pipeline.core.messages import ModalityInput


def top_label(labels: Sequence[str], probs: Sequence[float]) -> str:
    """The label with the highest probability; ``""`` when there are none."""
    if not labels or len(labels) != len(probs):
        return ""
    return labels[max(range(len(probs)), key=probs.__getitem__)]


def modalities_used(inputs: Sequence[ModalityInput]) -> list[str]:
    """Names of the modalities that contributed (``present``), in the message's order."""
    return [i.modality for i in inputs if i.present]
