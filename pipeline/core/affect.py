"""Small readings of affect messages that every application needs."""

from __future__ import annotations

from typing import Sequence

from moodwire.pipeline.core.messages import ModalityInput, PersonAffect


def top_label(labels: Sequence[str] | PersonAffect, probs: Sequence[float] = ()) -> str:
    """The label with the highest probability; ``""`` when there are none. Given a ``PersonAffect``, its steady
    label (fusion's hysteresis, ``fusion.label_hold_s``), or its top class where the sender set none."""
    if isinstance(labels, PersonAffect):
        return labels.label or top_label(labels.labels, labels.probs)
    if not labels or len(labels) != len(probs):
        return ""
    return labels[max(range(len(probs)), key=probs.__getitem__)]


def modalities_used(inputs: Sequence[ModalityInput]) -> list[str]:
    """Names of the modalities that contributed (``present``), in the message's order."""
    return [i.modality for i in inputs if i.present]
