"""A robot stand-in that changes behaviour on the fused affect of the most confident person.

    python examples/robot_behaviour.py [--endpoint tcp://127.0.0.1:5560] [--seconds S]

A control loop reads ``moodwire.Latest`` at ``--rate`` Hz and prints a line whenever the
behaviour changes: ``approach`` (positive valence), ``back off`` (negative valence, or
agitated: high arousal with negative valence), ``idle`` (no one in view, low confidence, or a
stale stream). Entering and leaving a behaviour use different thresholds (hysteresis), so a
value hovering near one threshold does not make the robot dither. Runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import moodwire

IDLE, APPROACH, BACK_OFF = "idle", "approach", "back off"


@dataclass(frozen=True)
class Thresholds:
    approach_on: float = 0.3     # valence above this: start approaching
    approach_off: float = 0.1    # ... and keep approaching while above this
    back_off_on: float = -0.3    # valence below this: back off
    back_off_off: float = -0.1   # ... and keep backing off while below this
    agitated_on: float = 0.7     # arousal above this with negative valence: back off
    agitated_off: float = 0.5
    min_confidence: float = 0.2  # below this the estimate is not worth acting on


def next_behaviour(current: str, est: moodwire.PersonEstimate | None, th: Thresholds) -> str:
    """The behaviour after ``current`` given the newest estimate (None: nobody in view)."""
    if est is None or est.stale or est.confidence < th.min_confidence:
        return IDLE
    v, a = est.valence, est.arousal
    agitated = v < 0 and a > (th.agitated_off if current == BACK_OFF else th.agitated_on)
    if v < (th.back_off_off if current == BACK_OFF else th.back_off_on) or agitated:
        return BACK_OFF
    if v > (th.approach_off if current == APPROACH else th.approach_on):
        return APPROACH
    return IDLE


def describe(est: moodwire.PersonEstimate | None, th: Thresholds) -> str:
    if est is None:
        return "no one in view"
    who = f"person {est.track_id}" if est.track_id is not None else "a voice (no face)"
    values = (f"{who}: {est.label} valence {est.valence:+.2f} arousal {est.arousal:+.2f} "
              f"confidence {est.confidence:.2f}, {est.age_s * 1000:.0f} ms old")
    if est.stale:
        return f"stale stream, last {values}"
    if est.confidence < th.min_confidence:
        return f"low confidence, {values}"
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default=moodwire.DEFAULT_ENDPOINT, help="moodwire's public endpoint")
    ap.add_argument("--rate", type=float, default=10.0, help="control loop rate, Hz")
    ap.add_argument("--max-age", type=float, default=0.5, help="an estimate older than this (s) is stale")
    ap.add_argument("--seconds", type=float, help="stop after S seconds (default: until Ctrl-C)")
    args = ap.parse_args()

    th, behaviour = Thresholds(), IDLE
    start = time.monotonic()
    print(f"{0.0:7.2f}s  {behaviour:<8}  listening on {args.endpoint}", flush=True)
    try:
        with moodwire.Latest(args.endpoint, max_age_s=args.max_age) as latest:
            while args.seconds is None or time.monotonic() - start < args.seconds:
                est = latest.person()  # the most confident person of the newest frame
                new = next_behaviour(behaviour, est, th)
                if new != behaviour:
                    behaviour = new
                    print(f"{time.monotonic() - start:7.2f}s  {behaviour:<8}  {describe(est, th)}", flush=True)
                time.sleep(1.0 / args.rate)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
