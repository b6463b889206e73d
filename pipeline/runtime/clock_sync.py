"""One clock across hosts: a joined host measures its offset to the bus host's monotonic clock.

The exchange is NTP's, over the bus itself (topic ``system.clock``), so it needs no port, daemon or
privilege beyond the CURVE link the nodes use anyway. Once per ``manager.clock_probe_s`` the joined
host's manager sends a probe stamped ``t_sent`` on its own monotonic clock; the bus host's manager
replies with ``t_received`` (when its subscriber got the probe) and ``t_replied`` (when it answered),
on its clock; the reply arrives at ``t_back``. Then

    offset = ((t_received - t_sent) + (t_replied - t_back)) / 2
    delay  = (t_back - t_sent) - (t_replied - t_received)

and whatever the two one-way delays are, the true offset lies within ``delay / 2`` of the estimate.
As NTP's clock filter does, the estimate is the sample of least delay among the last ``WINDOW``
(queueing only ever adds delay), and its uncertainty is that sample's ``delay / 2`` plus 15 ppm
(NTP's frequency tolerance) of the time since it was taken.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from moodwire.pipeline.core.clock import OffsetFile, local_ns
from moodwire.pipeline.core.messages import ClockProbe

WINDOW = 8
DRIFT_PER_S = 15e-6  # NTP's PHI: the frequency error a clock is assumed to stay within


@dataclass(frozen=True)
class ClockSample:
    offset_ns: int
    delay_ns: int
    at_ns: int  # local time the reply arrived


@dataclass(frozen=True)
class ClockEstimate:
    offset_ns: int  # bus clock minus this host's monotonic clock
    uncertainty_ns: int


def sample_from(reply: ClockProbe, t_back: int) -> ClockSample:
    """The offset and round-trip delay one answered probe shows."""
    offset = ((reply.t_received - reply.t_sent) + (reply.t_replied - t_back)) // 2
    delay = (t_back - reply.t_sent) - (reply.t_replied - reply.t_received)
    return ClockSample(offset, max(0, delay), t_back)


class OffsetEstimator:
    """The least-delay sample of the last ``window`` (NTP's clock filter)."""

    def __init__(self, window: int = WINDOW) -> None:
        self.samples: collections.deque[ClockSample] = collections.deque(maxlen=window)

    def add(self, sample: ClockSample) -> None:
        self.samples.append(sample)

    def estimate(self, now_ns: int) -> ClockEstimate | None:
        if not self.samples:
            return None
        best = min(self.samples, key=lambda s: s.delay_ns)
        drift = DRIFT_PER_S * max(0, now_ns - best.at_ns)
        return ClockEstimate(best.offset_ns, int(best.delay_ns / 2 + drift))


def answer(probe: ClockProbe, t_received: int, t_replied: int) -> ClockProbe:
    """The bus host's reply to a probe (its own clock is the reference)."""
    return ClockProbe(host=probe.host, reply=True, t_sent=probe.t_sent, t_received=t_received, t_replied=t_replied)


class ClockFollower:
    """A joined host's side: sends probes, keeps the estimate, and writes its offset for the nodes to follow."""

    def __init__(self, host: str, offset_file: OffsetFile) -> None:
        self.host = host
        self.offset_file = offset_file
        self.estimator = OffsetEstimator()

    def probe(self) -> ClockProbe:
        return ClockProbe(host=self.host, t_sent=local_ns())

    def on_reply(self, reply: ClockProbe, t_back: int) -> bool:
        """Take a reply meant for this host into the estimate; True if it was one."""
        if not reply.reply or reply.host != self.host:
            return False
        self.estimator.add(sample_from(reply, t_back))
        self.offset_file.write(self.estimate().offset_ns)
        return True

    @property
    def synced(self) -> bool:
        return bool(self.estimator.samples)

    def estimate(self) -> ClockEstimate:
        return self.estimator.estimate(local_ns()) or ClockEstimate(0, 0)

    def bus_ns(self) -> int:
        """Now on the bus host's clock."""
        return local_ns() + self.estimate().offset_ns
