"""One ``affect.frame``: who is in view, what each modality brings to each person, fused and smoothed.

Persons. One per face track in the face estimate used for the frame. Voice and text (from the
newest utterance, confidence decayed with its age) go to the face that spoke that utterance;
when the speaker is unknown, to the only face in view. With no face in view, or several faces
and no attributed speaker, they form a person of their own with ``track_id`` None: an honest
"someone is speaking" rather than a guess at whose face it is. Nothing to fuse at all: no
persons, ``valid: false``, and ``notes`` says why for each modality.

Smoothing. Valence and arousal are smoothed per person by an exponential filter in capture
time, ``y += (1 - exp(-dt / tau)) * (x - y)`` with tau = ``fusion.smoothing_tau_s``: a step
change reaches 63 % after tau and 95 % after 3 tau, so the filter adds a delay of about tau
(0.3 s by default) to valence/arousal. Class probabilities and confidence are not smoothed.
``valence_raw``/``arousal_raw`` carry the unsmoothed values. A person unseen for
``SMOOTHER_FORGET_S`` starts afresh.

The steady label. ``PersonAffect.label`` is the top class with hysteresis in capture time: a new
top class replaces the shown one only once it has led for ``fusion.label_hold_s`` without a break
(0.3 s by default), so no label is shown for less than that (a rule, applied to the fused
probabilities, which stay as they are). A person's first frame shows its top class at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.messages import AffectFrame, ModalityInput, PersonAffect
from moodwire.pipeline.fusion.model import Estimate, FusionBatch, FusionModel, FusionResult

SMOOTHER_FORGET_S = 2.0
NS = 1_000_000_000

Key = int | None  # a track id, or None for the voice/text-only person
Slot = Estimate | str  # an estimate, or why the modality is absent


class Smoother:
    """Exponential smoothing of (valence, arousal) per person, by capture time."""

    def __init__(self, tau_s: float) -> None:
        self.tau_ns = tau_s * NS
        self._state: dict[Key, tuple[int, float, float]] = {}

    def update(self, key: Key, t_capture: int, valence: float, arousal: float) -> tuple[float, float]:
        prev = self._state.get(key)
        if prev is None or self.tau_ns <= 0 or t_capture - prev[0] > SMOOTHER_FORGET_S * NS:
            self._state[key] = (t_capture, valence, arousal)
            return valence, arousal
        t0, v0, a0 = prev
        if t_capture <= t0:
            return v0, a0
        k = 1.0 - math.exp(-(t_capture - t0) / self.tau_ns)
        v, a = v0 + k * (valence - v0), a0 + k * (arousal - a0)
        self._state[key] = (t_capture, v, a)
        return v, a

    def forget(self, t_capture: int) -> None:
        forget_unseen(self._state, t_capture)


def forget_unseen(state: dict[Key, tuple], t_capture: int) -> None:
    """Drop the persons whose state (a tuple starting with its capture time) is older than SMOOTHER_FORGET_S."""
    for key in [k for k, value in state.items() if t_capture - value[0] > SMOOTHER_FORGET_S * NS]:
        del state[key]


class LabelHold:
    """The shown label per person: the top class, replaced only by one that has led for ``hold_s``."""

    def __init__(self, hold_s: float) -> None:
        self.hold_ns = hold_s * NS
        self._state: dict[Key, tuple[int, str, str, int]] = {}  # (t, shown, challenger, leading since)

    def update(self, key: Key, t_capture: int, top: str) -> str:
        prev = self._state.get(key)
        if prev is None or self.hold_ns <= 0 or t_capture - prev[0] > SMOOTHER_FORGET_S * NS:
            self._state[key] = (t_capture, top, "", t_capture)
            return top
        _, shown, challenger, since = prev
        if top == shown:
            challenger, since = "", t_capture
        elif top != challenger:
            challenger, since = top, t_capture
        if challenger and t_capture - since >= self.hold_ns:
            shown, challenger = challenger, ""
        self._state[key] = (max(t_capture, prev[0]), shown, challenger, since)
        return shown

    def forget(self, t_capture: int) -> None:
        forget_unseen(self._state, t_capture)


@dataclass
class PersonFilters:
    """What fusion carries from frame to frame per person: smoothed valence/arousal and the steady label."""

    smoother: Smoother
    labels: LabelHold

    def forget(self, t_capture: int) -> None:
        self.smoother.forget(t_capture)
        self.labels.forget(t_capture)


@dataclass
class FrameInputs:
    """What is known for one video frame. ``faces`` empty: ``face_reason`` says why."""

    frame_index: int
    t_capture: int
    faces: dict[int, Estimate] = field(default_factory=dict)
    face_reason: str = ""
    voice: Slot = ""
    text: Slot = ""
    speaker: dict[str, Key] = field(default_factory=dict)  # "voice"/"text" -> attributed track (None: unknown)


@dataclass
class _Person:
    key: Key
    slots: dict[str, Slot]


def assign(inputs: FrameInputs) -> list[_Person]:
    """Persons of the frame and each one's face, voice and text (see the module docstring)."""
    persons = {tid: _Person(tid, {"face": est}) for tid, est in inputs.faces.items()}
    loose: dict[str, Slot] = {}
    for modality in ("voice", "text"):
        slot: Slot = getattr(inputs, modality)
        target, elsewhere = _target(inputs, modality) if isinstance(slot, Estimate) else (None, slot)
        for tid, person in persons.items():
            person.slots[modality] = slot if isinstance(slot, Estimate) and tid == target else elsewhere
        loose[modality] = slot if isinstance(slot, Estimate) and target is None else elsewhere
    if any(isinstance(s, Estimate) for s in loose.values()):
        face_why = inputs.face_reason if not inputs.faces else "speaker not attributed among the faces in view"
        persons[None] = _Person(None, {"face": face_why, **loose})
    return list(persons.values())


def _target(inputs: FrameInputs, modality: str) -> tuple[Key, str]:
    """The track a voice/text estimate belongs to (None: its own person), and what the others are told."""
    speaker = inputs.speaker.get(modality)
    if speaker is not None and speaker in inputs.faces:
        return speaker, f"speech attributed to track {speaker}"
    if len(inputs.faces) == 1:
        only = next(iter(inputs.faces))
        return only, f"speech given to the only face in view (track {only})"
    return None, "speaker not attributed: reported as a voice/text-only person (track_id None)"


def build_frame(inputs: FrameInputs, model: FusionModel, filters: PersonFilters,
                clock: Callable[[], int]) -> AffectFrame:
    """Fuse every person of one frame in one model call."""
    persons = assign(inputs)
    rows = [tuple(p.slots[m] if isinstance(p.slots[m], Estimate) else None for m in model.modalities)
            for p in persons]
    result = model.fuse(FusionBatch(rows))
    out = [_person(p, i, result, inputs.t_capture, model, filters) for i, p in enumerate(persons)]
    filters.forget(inputs.t_capture)
    missing, notes = _missing(inputs, persons, model.modalities)
    valid = bool(out)
    note = "" if valid else "nothing to fuse: " + "; ".join(f"{m}: {why}" for m, why in notes.items())
    return AffectFrame(frame_index=inputs.frame_index, t_capture=inputs.t_capture, valid=valid, persons=out,
                       missing=missing, notes=notes, note=note, fusion_backend=model.backend,
                       latency_ms=(clock() - inputs.t_capture) / 1e6)


def _person(person: _Person, i: int, result: FusionResult, t_capture: int, model: FusionModel,
            filters: PersonFilters) -> PersonAffect:
    v_raw, a_raw = (float(x) for x in result.va[i])
    valence, arousal = filters.smoother.update(person.key, t_capture, v_raw, a_raw)
    inputs = [modality_input(m, person.slots[m], float(result.weights[i, j]), t_capture)
              for j, m in enumerate(model.modalities)]
    probs = [float(p) for p in result.probs[i]]
    label = filters.labels.update(person.key, t_capture, top_label(list(model.labels), probs))
    return PersonAffect(track_id=person.key, labels=list(model.labels), probs=probs, label=label,
                        valence=valence, arousal=arousal, confidence=float(result.confidence[i]),
                        modalities={x.modality: x.weight for x in inputs if x.present},
                        valence_raw=v_raw, arousal_raw=a_raw, inputs=inputs)


def modality_input(modality: str, slot: Slot, weight: float, t_ref: int) -> ModalityInput:
    """What one modality brought; ``t_ref`` is the capture time its age is measured against."""
    if not isinstance(slot, Estimate):
        return ModalityInput(modality=modality, present=False, reason=slot)
    return ModalityInput(modality=modality, present=True, weight=weight,
                         probs=[float(p) for p in slot.probs] if slot.probs is not None else [],
                         valence=slot.valence, arousal=slot.arousal, confidence=slot.confidence,
                         valence_confidence=slot.dimension_confidence()[0] if slot.valence is not None else 0.0,
                         age_ms=(t_ref - slot.t_capture) / 1e6, utterance_id=slot.utterance_id, reason=slot.note,
                         source=slot.source)


def _missing(inputs: FrameInputs, persons: list[_Person], modalities: tuple[str, ...]) -> tuple[list[str], dict]:
    present = {m for p in persons for m, s in p.slots.items() if isinstance(s, Estimate)}
    frame_reason = {"face": inputs.face_reason, "voice": inputs.voice, "text": inputs.text}
    missing = [m for m in modalities if m not in present]
    return missing, {m: frame_reason[m] if isinstance(frame_reason[m], str) else "" for m in missing}
