"""A speaker's running baseline of voice pitch and level, so arousal measures change, not the voice.

Two people speaking calmly differ by an octave in pitch, and two microphones by 20 dB in level;
listeners judge arousal against what they know of the voice (Pell et al. 2009: emotional prosody is
read as deviation from the speaker's habitual pitch and loudness). The baseline is that knowledge,
kept per stream (one microphone, one speaker at a time):

- Pitch: the mean F0 in semitones, starting from a population prior (``PRIOR_F0_HZ``, between
  typical adult male ~115 Hz and female ~200 Hz speaking F0, Titze 1994) worth ``PRIOR_WEIGHT``
  utterances. The baseline an utterance is compared with includes that utterance itself, as one
  more observation of the voice: the first utterance of a stream (1.5 s voiced or more) gets a fifth
  of its distance from the prior, and a low or high voice is not read as calm or aroused for long.
- Level: the mean level in dBFS of the speaker's past utterances. Gain is unknown until the speaker
  has been heard, so the first utterance of a stream gets no level comparison (None) and the rule
  leaves the term out.
- Each utterance counts by its voiced seconds (up to 1 at ``FULL_VOICED_S``); older utterances fade
  with ``MEMORY_UTTERANCES`` (exponential forgetting), so slow drifts of gain or mood are followed.
- State: "settling" until ``SETTLED_WEIGHT`` utterance-equivalents are in (about 4 utterances of
  1.5 s voiced speech or more, i.e. 3 s of speech each), then "settled".
- A new speaker: ``CHANGE_CONFIRM`` utterances in a row over ``CHANGE_ST`` semitones from a
  baseline of at least ``CHANGE_MIN_WEIGHT`` utterance-equivalents, on the same side, restart it
  from those utterances ("settling" again). One excited utterance is not a new speaker and is not
  learned; two in a row that far from the voice's habit usually are (a rule, and it cannot tell
  two speakers of the same pitch apart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from moodwire.pipeline.core.messages import VoiceBaseline, VoiceFeatures

PRIOR_F0_HZ = 150.0
PRIOR_WEIGHT = 0.25
FULL_VOICED_S = 1.5
MEMORY_UTTERANCES = 20.0
SETTLED_WEIGHT = 4.0
CHANGE_ST = 5.0
CHANGE_CONFIRM = 2
CHANGE_MIN_WEIGHT = 2.0  # a new voice is looked for once this much of the current one has been heard
SETTLING, SETTLED = "settling", "settled"


def semitones(f0_hz: float) -> float:
    """Semitones above 1 Hz (so differences are semitone intervals); NaN for no pitch."""
    return 12 * math.log2(f0_hz) if f0_hz > 0 else math.nan


@dataclass
class _Observation:
    f0_st: float
    level_db: float
    weight: float


@dataclass
class SpeakerBaseline:
    """Running sums of one stream's voice; ``observe`` compares an utterance and then learns from it."""

    f0_sum: float = 0.0
    level_sum: float = 0.0
    weight: float = 0.0
    changes: int = 0
    _pending: list[_Observation] = field(default_factory=list)

    def observe(self, features: VoiceFeatures) -> VoiceBaseline:
        """The utterance against the baseline; the baseline then includes it (or restarts with it)."""
        obs = _observation(features)
        if obs is None:  # nothing voiced: nothing to compare or learn
            return self._state(math.nan, math.nan)
        if not self._is_other_voice(obs):
            self._pending.clear()
            heard = self.weight > 0  # the voice's habit is unknown on a stream's first voiced utterance
            level_rel = obs.level_db - self.level_db if heard else math.nan
            self._learn(obs)
            return self._state(obs.f0_st - self.f0_st_now() if heard else math.nan, level_rel)
        self._pending.append(obs)
        if len(self._pending) < CHANGE_CONFIRM:  # maybe one excited utterance: compare, do not learn
            return self._state(obs.f0_st - self._f0_st_with(obs), obs.level_db - self.level_db)
        level_before = sum(p.level_db for p in self._pending[:-1]) / (len(self._pending) - 1)
        self._restart()
        return self._state(obs.f0_st - self.f0_st_now(), obs.level_db - level_before)

    @property
    def settled(self) -> bool:
        return self.weight >= SETTLED_WEIGHT

    @property
    def level_db(self) -> float:
        return self.level_sum / self.weight if self.weight > 0 else math.nan

    def f0_st_now(self) -> float:
        """The baseline pitch (semitones re 1 Hz): the prior and the utterances heard, by weight."""
        return self._f0_st_with(None)

    def _f0_st_with(self, obs: _Observation | None) -> float:
        extra_sum, extra_weight = (obs.weight * obs.f0_st, obs.weight) if obs else (0.0, 0.0)
        prior = PRIOR_WEIGHT * semitones(PRIOR_F0_HZ)
        return (prior + self.f0_sum + extra_sum) / (PRIOR_WEIGHT + self.weight + extra_weight)

    def _learn(self, obs: _Observation) -> None:
        keep = 1.0 - 1.0 / MEMORY_UTTERANCES
        self.f0_sum = self.f0_sum * keep + obs.weight * obs.f0_st
        self.level_sum = self.level_sum * keep + obs.weight * obs.level_db
        self.weight = self.weight * keep + obs.weight

    def _is_other_voice(self, obs: _Observation) -> bool:
        """Far from a baseline that has heard enough; one on the other side starts a new run of them."""
        distance = obs.f0_st - self.f0_st_now()
        if self.weight < CHANGE_MIN_WEIGHT or abs(distance) <= CHANGE_ST:
            return False
        if any((p.f0_st - self.f0_st_now()) * distance < 0 for p in self._pending):
            self._pending.clear()
        return True

    def _restart(self) -> None:
        pending, self._pending = self._pending, []
        self.f0_sum = self.level_sum = self.weight = 0.0
        self.changes += 1
        for obs in pending:
            self._learn(obs)

    def _state(self, f0_rel_st: float, level_rel_db: float) -> VoiceBaseline:
        return VoiceBaseline(state=SETTLED if self.settled else SETTLING, utterances=round(self.weight, 2),
                             f0_hz=2 ** (self.f0_st_now() / 12), level_db=self.level_db,
                             f0_rel_st=f0_rel_st, level_rel_db=level_rel_db, speaker_changes=self.changes)


def _observation(features: VoiceFeatures) -> _Observation | None:
    voiced_s = features.duration_s * features.voiced_fraction
    f0_st = semitones(features.f0_mean_hz)
    if voiced_s <= 0 or not math.isfinite(f0_st) or not math.isfinite(features.energy_db):
        return None
    return _Observation(f0_st, features.energy_db, min(1.0, voiced_s / FULL_VOICED_S))
