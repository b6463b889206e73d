"""What ``moodwire models`` and ``moodwire doctor`` say about each model slot and model profile."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from moodwire.engines.derived import derived_ready
from moodwire.engines.profiles import PROFILES, ModelProfile, fetched_file, read_manifest, selected_profiles
from moodwire.engines.registry import (SLOTS, ChecksumMismatch, ModelError, ModelMissing, ModelSlot, resolve,
                                       slot_override)
from moodwire.pipeline.core.config import Config


@dataclass
class SlotReport:
    slot: str
    description: str
    source: str
    license: str
    recorded_sha256: str
    status: str  # found | override | missing | checksum mismatch
    export: str = ""  # exported | not exported | nothing to export
    sha256: str = ""
    path: str = ""
    derived: str = ""  # exported files, or what to run to make them
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("found", "override")

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        head = f"{self.slot:<16} {self.status}" + (f", {self.export}" if self.export else "")
        rows = [("about", self.description), ("source", self.source), ("license", self.license),
                ("sha256", self.sha256 or f"(recorded) {self.recorded_sha256}"), ("file", self.path),
                ("derived", self.derived), ("fix", self.fix)]
        return [head] + [f"  {key:<8} {value}" for key, value in rows if value]


def report_slot(slot: ModelSlot, override: str) -> SlotReport:
    src = slot.source
    companions = f" and {len(slot.companions)} more files, each checked" if slot.companions else ""
    report = SlotReport(slot.name, slot.description, f"{src.package} {src.version}: {src.member}{companions}",
                        src.license, src.sha256, status="missing")
    try:
        model = resolve(slot.name, override)
    except ChecksumMismatch as exc:
        return _failed(report, "checksum mismatch", exc)
    except ModelError as exc:
        return _failed(report, "missing", exc)
    report.status = "override" if model.overridden else "found"
    report.sha256 = model.sha256 + (" (your file: not compared)" if model.overridden else " (verified)")
    report.path = str(model.path)
    if not slot.derived:
        report.export, report.derived = "nothing to export", "used as it is"
    elif derived_ready(model):
        report.export = "exported"
        report.derived = ", ".join(str(model.derived_path(n)) for n in slot.derived)
    else:
        report.export = "not exported"
        report.derived = f"run: moodwire export {slot.name} (moodwire run does it before it starts the nodes)"
    return report


def _failed(report: SlotReport, status: str, exc: Exception) -> SlotReport:
    report.status, report.fix = status, str(exc)
    return report


def report_all(config: Config) -> list[SlotReport]:
    return [report_slot(slot, slot_override(config.models, slot)) for slot in SLOTS.values()]


# ------------------------------------------------------------------ profiles (fetched on request)

RED, RESET = "\033[31m", "\033[0m"


@dataclass
class ProfileReport:
    profile: str
    modality: str
    description: str
    source: str
    license: str
    commercial_use: bool
    checksums: str
    status: str  # fetched | not fetched | changed
    selected: bool  # the config's <modality>.profile names it
    path: str = ""
    fix: str = ""
    latency: str = ""
    notes: str = ""

    @property
    def ok(self) -> bool:
        """Only a profile the config selects has to be fetched."""
        return self.status == "fetched" or not self.selected

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self, colour: bool = False) -> list[str]:
        licence = self.license
        if colour and not self.commercial_use:
            licence = f"{RED}{licence}{RESET}"
        head = f"{self.profile:<16} {self.modality} profile, {self.status}" + (", selected" if self.selected else "")
        rows = [("about", self.description), ("source", self.source), ("license", licence),
                ("checks", self.checksums), ("file", self.path), ("latency", self.latency), ("note", self.notes),
                ("fix", self.fix)]
        return [head] + [f"  {key:<8} {value}" for key, value in rows if value]


def profile_checks(profile: ModelProfile) -> str:
    """What each file is checked against: its recorded pins, the hub's digest at the pinned commit, and once
    fetched, the sha256 the manifest recorded (also for the exported ONNX)."""
    recorded = (read_manifest(profile) or {}).get("sha256", {})
    parts = []
    for f in profile.files:
        pins = [f"{kind} {value}" for kind, value in (("git blob", f.git_blob), ("sha256", f.sha256)) if value]
        pins += ["the hub's digest at the commit"] if f.hub_checked else []
        pins += [f"fetched sha256 {recorded[f.name]}"] if f.name in recorded else []
        parts.append(f"{f.name}: {', '.join(pins)}")
    if profile.exported:
        parts.append(f"{profile.exported}: exported here, parity-checked"
                     + (f", sha256 {recorded[profile.exported]}" if profile.exported in recorded else ""))
    return "; ".join(parts)


def report_profile(profile: ModelProfile, selected: bool) -> ProfileReport:
    checks = profile_checks(profile)
    report = ProfileReport(profile.name, profile.modality, profile.description,
                           f"{profile.host}/{profile.repo} at {profile.revision}", profile.licence_label,
                           profile.commercial_use, checks, status="not fetched", selected=selected,
                           latency=profile.latency, notes=" ".join(profile.notes))
    if read_manifest(profile) is None:
        report.fix = f"run: {profile.fetch_command()}"
        return report
    try:
        report.path = ", ".join(str(fetched_file(profile, name)) for name in profile.stored_names)
        report.status = "fetched"
    except ModelMissing as exc:
        report.status, report.fix = "changed", str(exc)
    return report


def report_profiles(config: Config) -> list[ProfileReport]:
    chosen = {p.name for p in selected_profiles(config)}
    return [report_profile(p, p.name in chosen) for p in PROFILES.values()]
