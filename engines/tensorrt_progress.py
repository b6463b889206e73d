"""TensorRT's engine-build progress (``IProgressMonitor``) as a moodwire progress step.

TensorRT calls ``phase_start(name, parent, num_steps)``, ``step_complete(name, step)`` and
``phase_finish(name)`` from its builder thread, phases nested by ``parent``. ``BuildPhases``
turns that into a fraction (the outermost running phase's steps, with the running child's share)
and a detail ("Building engine > Tactic selection 3/40"); each outermost phase is also said once
as a line. tensorrt cannot be installed on the CPU machines, so ``tensorrt_progress_monitor`` (the
class that TensorRT calls) has not run; ``BuildPhases`` is tested with the calls TensorRT makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from moodwire.pipeline.core.progress import Reporting, Say, reporting


@dataclass
class _Phase:
    name: str
    parent: str | None
    num_steps: int
    done: int = 0


class BuildPhases:
    """The state of TensorRT's nested build phases, reported to a progress step."""

    def __init__(self, progress: Say) -> None:
        self.report: Reporting = reporting(progress)
        self._phases: dict[str, _Phase] = {}  # running phases, in start order

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        parent = parent_phase if parent_phase in self._phases else None
        self._phases[phase_name] = _Phase(phase_name, parent, max(0, int(num_steps)))
        if parent is None:
            self.report(f"TensorRT: {phase_name}")
        self._show()

    def step_complete(self, phase_name: str, step: int) -> bool:
        """True: go on (False would ask TensorRT to cancel the build)."""
        phase = self._phases.get(phase_name)
        if phase is not None:
            phase.done = int(step) + 1  # TensorRT counts steps from 0
            self._show()
        return True

    def phase_finish(self, phase_name: str) -> None:
        self._phases.pop(phase_name, None)
        for orphan in [p for p in self._phases.values() if p.parent == phase_name]:
            self._phases.pop(orphan.name)  # a child TensorRT did not finish goes with its parent
        self._show()

    def fraction(self) -> float | None:
        """How far the outermost running phase is; None when no phase runs or it has no steps."""
        top = self._chain()
        if not top or top[0].num_steps == 0:
            return None
        share = 0.0
        for phase in reversed(top):  # innermost first: each child's share is one step of its parent
            share = (phase.done + share) / phase.num_steps if phase.num_steps else 0.0
            share = min(share, 1.0)
        return share

    def detail(self) -> str:
        return " > ".join(f"{p.name} {p.done}/{p.num_steps}" if p.num_steps else p.name for p in self._chain())

    def _chain(self) -> list[_Phase]:
        """The running phases from the outermost to the newest innermost one."""
        if not self._phases:
            return []
        chain = [list(self._phases.values())[-1]]
        while chain[0].parent is not None and chain[0].parent in self._phases:
            chain.insert(0, self._phases[chain[0].parent])
        return chain

    def _show(self) -> None:
        self.report.fraction(self.fraction())
        self.report.detail(self.detail())


def tensorrt_progress_monitor(trt: ModuleType, progress: Say) -> Any | None:
    """An ``IProgressMonitor`` that reports to ``progress``; None where this TensorRT has none
    (the interface came with TensorRT 8.6; older ones build without progress).

    Set it with ``config.progress_monitor = monitor`` before ``build_serialized_network``.
    """
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)  # pybind11 trampolines need the base initialised explicitly
            self.phases = BuildPhases(progress)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.phases.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return self.phases.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            self.phases.phase_finish(phase_name)

    return Monitor()
