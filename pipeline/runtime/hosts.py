"""The bus host's view of the joined hosts, from their managers' ``system.host`` reports.

Each joined host's manager supervises its own nodes and reports them, with its clock offset, once a
second. The bus host's manager merges the latest report of each into ``system.health``; a host
silent for ``manager.host_timeout_s`` is unreachable, and each of its nodes is listed as such
(alive false, state "unreachable"), so consumers such as fusion treat them as down.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from moodwire.pipeline.core.messages import HostHealth, NodeHealth, SystemHealth


@dataclass
class _Report:
    health: SystemHealth
    at_s: float  # the bus host's monotonic seconds when it arrived


class JoinedHosts:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._reports: dict[str, _Report] = {}

    def on_report(self, report: SystemHealth, now_s: float) -> None:
        self._reports[report.host] = _Report(report, now_s)

    def nodes(self, now_s: float) -> list[NodeHealth]:
        out = []
        for host, report in self._reports.items():
            age = now_s - report.at_s
            if age <= self.timeout_s:
                out += report.health.nodes
            else:
                out += [dataclasses.replace(
                    n, alive=False, state="unreachable", rate_hz=0.0, uptime_s=0.0,
                    last_error=f"host {host} unreachable: no report from its manager for {age:.1f} s")
                    for n in report.health.nodes]
        return out

    def hosts(self, now_s: float) -> list[HostHealth]:
        out = []
        for host, report in self._reports.items():
            age = now_s - report.at_s
            own = next((h for h in report.health.hosts if h.name == host), HostHealth(name=host, bus=False,
                                                                                       reachable=True))
            out.append(dataclasses.replace(own, reachable=age <= self.timeout_s, report_age_s=age))
        return out
