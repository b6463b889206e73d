"""``moodwire analyze``: recordings into tables, through the pipeline's own nodes (docs/analysis.md).

Each file runs as ``moodwire run --source FILE`` does (the same processes, models and config), in
lossless mode (``sources.pace = "lossless"``, pipeline/core/flow.py): every frame and sample, the
sources held back by the slowest node, fusion deciding by watermarks, the run ending when every
node has published what it holds. A ``Collector`` keeps the rows; the tables go to
``OUT/<stem>.partial/`` and are renamed to ``OUT/<stem>/`` only when complete (Ctrl-C leaves no
half-written table under the final name). A file whose ``summary.json`` has the same key (its
content, the config and the models) is skipped. A file that fails is reported with the reason and
the batch goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from moodwire.pipeline.core.config import Config, ConfigError, load_config
from moodwire.pipeline.core.flow import LOSSLESS_HWM
from moodwire.pipeline.runtime.analysis_report import write_report
from moodwire.pipeline.runtime.analysis_tables import Collector, tables
from moodwire.pipeline.sources import SourceUnavailable
from moodwire.pipeline.sources.media_file import MediaInfo, probe_media
from moodwire.pipeline.sources.resolve import with_source_file

FORMATS = ("parquet", "csv")
MEDIA_SUFFIXES = frozenset((".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".wav", ".flac", ".mp3", ".ogg",
                            ".m4a", ".opus"))
SUMMARY = "summary.json"
POLL_S = 0.2


class AnalysisError(RuntimeError):
    """A file that could not be analysed; the text says why."""


@dataclass
class FileResult:
    path: str
    status: str  # analysed | up to date | failed
    reason: str = ""
    out: str = ""
    summary: dict | None = None

    def line(self) -> str:
        if self.status == "failed":
            return f"{self.path}: failed: {self.reason}"
        s = self.summary or {}
        return (f"{self.path}: {self.status}: {s.get('frames_analysed', 0)} of {s.get('frames_in_file', 0)} frames, "
                f"{s.get('utterances', 0)} utterances, {s.get('speed_x', 0):.2f}x real time "
                f"({s.get('processing_speed_x', 0):.2f}x once the models were loaded) -> {self.out}")


def require_extra(fmt: str) -> None:
    """AnalysisError naming the extra when a library the tables need is missing (before anything runs)."""
    import importlib.util

    needed = ["pandas", "matplotlib", "tqdm"] + (["pyarrow"] if fmt == "parquet" else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise AnalysisError(f"analyze needs {', '.join(missing)}: pip install -e '.[analysis]' (or "
                            "pip install 'moodwire[analysis]')")


def media_files(paths: list[str | Path]) -> list[Path]:
    """The files to analyse: each path, or the media files in a folder (sorted, by suffix)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES)
        else:
            found.append(p)
    return found


def check_out_dir(out: Path) -> None:
    """Refuse an output folder that cannot be written, before anything runs."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise AnalysisError(f"cannot write to the output folder {out}: {exc.strerror or exc}; pass --out a "
                            "folder you can write to") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def models_used(config: Config) -> list[dict]:
    """Every model slot with its source, licence and sha256 (as `moodwire models` lists them)."""
    from moodwire.pipeline.runtime.model_report import report_all

    keep = ("slot", "source", "license", "sha256", "status")
    return [{k: v for k, v in r.to_dict().items() if k in keep} for r in report_all(config)]


def frames_in_file(info: MediaInfo) -> int:
    """Video frames in the file, counted from its packets (no decoding)."""
    if not info.has_video:
        return 0
    import av

    with av.open(info.path) as container:
        return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)


def run_key(file_sha: str, config: Config, models: list[dict]) -> str:
    """What the tables depend on: the file's content, the config (less where the file is) and the models."""
    settings = config.to_dict()
    settings["sources"] = {k: v for k, v in settings["sources"].items() if k != "file"}
    settings["bus"] = {k: v for k, v in settings["bus"].items() if k != "public"}
    blob = json.dumps({"file": file_sha, "config": settings, "models": models, "moodwire": version()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def version() -> str:
    try:
        return metadata.version("moodwire")
    except metadata.PackageNotFoundError:
        return "unknown"


def lossless_config(config: Config, path: Path, endpoint_dir: str) -> Config:
    """``config`` on ``path``'s tracks, lossless, with a bus endpoint of its own (a live pipeline on this
    machine, or another analysis, keeps its port)."""
    config = with_source_file(config, str(path))
    sources = dataclasses.replace(config.sources, pace="lossless", loop=False)
    bus = dataclasses.replace(config.bus, public=f"ipc://{endpoint_dir}/public.sock")
    return dataclasses.replace(config, sources=sources, bus=bus)


def run_lossless(config: Config, log: Any, on_progress: Callable[[float], None] = lambda s: None
                 ) -> tuple[dict[str, Any], int, float]:
    """Run the pipeline over ``config``'s file; (collected rows, t0, wall seconds). ``on_progress`` gets the
    seconds of the file that fusion has finished."""
    from moodwire.pipeline.runtime.manager import Manager

    manager = Manager(config, log=log)
    collector = Collector(manager.endpoints.internal_sub, LOSSLESS_HWM)
    code: list[int] = []
    started = time.monotonic()
    runner = threading.Thread(target=lambda: code.append(manager.run(taken=lambda: collector.finished)),
                              name="moodwire-analyze", daemon=True)
    runner.start()
    try:
        while runner.is_alive():
            runner.join(POLL_S)
            if manager.t0_ns and collector.data.fusion_watermark:
                on_progress(max(0.0, (collector.data.fusion_watermark - manager.t0_ns) / 1e9))
    except KeyboardInterrupt:
        manager.stopping.set()
        runner.join()
        collector.close()
        raise
    wall = time.monotonic() - started
    data = collector.close()
    if code != [0] or not collector.finished:
        raise AnalysisError(manager.failure or "the run stopped before every node had finished (see run.log)")
    if data.lost:
        raise AnalysisError(f"messages lost on the way to the tables: {data.lost}")
    return data, manager.t0_ns, wall


def analyze_file(path: Path, out: Path, config: Config, fmt: str = "parquet",
                 models: list[dict] | None = None, progress: bool = False) -> FileResult:
    """Analyse one file into ``out/<stem>/``; never raises for a bad file (its result says why, and the nodes'
    log of a failed run is kept as ``out/<stem>.failed.log``)."""
    target, partial = out / path.stem, out / f"{path.stem}.partial"
    try:
        info = probe_media(path)
        models = models if models is not None else models_used(config)
        file_sha = file_sha256(path)
        with tempfile.TemporaryDirectory(prefix="moodwire-analyze-") as endpoint_dir:
            run_config = lossless_config(config, path, endpoint_dir)
            key = run_key(file_sha, run_config, models)
            if _up_to_date(target, key):
                return FileResult(str(path), "up to date", out=str(target), summary=_read_summary(target))
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            with (partial / "run.log").open("w") as log, _bar(progress, path.name, info.duration_s) as bar:
                data, t0, wall = run_lossless(run_config, log, bar)
        result = tables(data, t0)
        processing = data.last_at - data.first_at if data.first_at else wall
        summary = _summary(path, info, result, wall, processing, run_config, models, key, file_sha, fmt)
        write_tables(result, partial, fmt)
        write_report(result, partial / "report.png", f"{path.name}: moodwire {version()}")
        (partial / SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        return FileResult(str(path), "analysed", out=str(target), summary=summary)
    except (SourceUnavailable, AnalysisError, ConfigError, OSError) as exc:
        return FileResult(str(path), "failed", reason=str(exc) + _keep_log(partial, out / f"{path.stem}.failed.log"))


def _keep_log(partial: Path, log: Path) -> str:
    """Keep a failed run's log beside the tables (nothing else of it); where it went, for the reason."""
    if not (partial / "run.log").is_file():
        return ""
    (partial / "run.log").replace(log)
    shutil.rmtree(partial, ignore_errors=True)
    return f" (the nodes' log: {log})"


def write_tables(result: dict[str, Any], folder: Path, fmt: str) -> None:
    for name, frame in result.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)


def read_tables(folder: Path) -> dict[str, Any]:
    import pandas as pd

    out = {}
    for name in ("frames", "utterances", "words"):
        parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
        out[name] = pd.read_parquet(parquet) if parquet.is_file() else pd.read_csv(csv)
    return out


def _summary(path: Path, info: MediaInfo, result: dict[str, Any], wall: float, processing: float, config: Config,
             models: list[dict], key: str, file_sha: str, fmt: str) -> dict:
    frames = result["frames"]
    analysed = int(frames["frame_index"].nunique()) if len(frames) and info.has_video else 0
    return {
        "file": str(path), "file_sha256": file_sha, "media": info.describe(), "duration_s": info.duration_s,
        "fps": info.fps, "frames_in_file": frames_in_file(info), "frames_analysed": analysed,
        "utterances": len(result["utterances"]), "words": len(result["words"]),
        "wall_s": round(wall, 3), "speed_x": round(info.duration_s / wall, 3) if wall > 0 else 0.0,
        # without loading the models (once per file): from the first frame or sample sent to fusion's end
        "processing_s": round(processing, 3),
        "processing_speed_x": round(info.duration_s / processing, 3) if processing > 0 else 0.0,
        "format": fmt, "key": key, "moodwire": version(), "models": models, "config": config.to_dict(),
    }


def _up_to_date(target: Path, key: str) -> bool:
    summary = _read_summary(target)
    return summary is not None and summary.get("key") == key


def _read_summary(target: Path) -> dict | None:
    try:
        return json.loads((target / SUMMARY).read_text())
    except (OSError, ValueError):
        return None


class _bar:
    """A tqdm bar over the file's seconds (stderr), or nothing."""

    def __init__(self, enabled: bool, name: str, total_s: float) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total_s, 1), desc=name, unit="s", file=sys.stderr, leave=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")

    def __enter__(self) -> Callable[[float], None]:
        return self.update

    def update(self, seconds: float) -> None:
        if self.bar is not None:
            self.bar.update(max(0.0, min(seconds, self.bar.total) - self.bar.n))

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def analyze_batch(paths: list[str | Path], out: str | Path, config: Config, fmt: str = "parquet",
                  progress: bool = True) -> list[FileResult]:
    """Every file of ``paths`` (files or folders) into ``out``; ``out/batch.json`` lists the results."""
    if fmt not in FORMATS:
        raise AnalysisError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    require_extra(fmt)
    out = Path(out)
    check_out_dir(out)
    files = media_files(paths)
    if not files:
        raise AnalysisError(f"no media files in {', '.join(map(str, paths))} (looked for {', '.join(sorted(MEDIA_SUFFIXES))})")
    stems = [f.stem for f in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise AnalysisError(f"several files are named {', '.join(twice)}: their tables would share a folder; "
                            "analyse them into different --out folders")
    models = models_used(config)
    results: list[FileResult] = []
    started = time.monotonic()
    for i, path in enumerate(files):
        result = analyze_file(path, out, config, fmt, models, progress)
        results.append(result)
        elapsed = time.monotonic() - started
        eta = elapsed / (i + 1) * (len(files) - i - 1)
        print(f"[{i + 1}/{len(files)}, {elapsed:.0f} s, about {eta:.0f} s left] {result.line()}", file=sys.stderr,
              flush=True)
        (out / "batch.json").write_text(json.dumps([dataclasses.asdict(r) | {"summary": None} for r in results],
                                                   indent=2))
    return results


def analyze(path: str | Path, out: str | Path | None = None, format: str = "parquet",
            config: str | Path | None = None, set: tuple[str, ...] | list[str] = (),
            progress: bool = False) -> dict[str, Any]:
    """Analyse one recording; its tables as pandas data frames (``frames``, ``utterances``, ``words``) and its
    ``summary``. ``out``: where the files go (default: a temporary folder, removed after reading)."""
    require_extra(format)
    settings = load_config(config, list(set))
    with tempfile.TemporaryDirectory(prefix="moodwire-tables-") as scratch:
        folder = Path(out) if out is not None else Path(scratch)
        check_out_dir(folder)
        result = analyze_file(Path(path), folder, settings, format, progress=progress)
        if result.status == "failed":
            raise AnalysisError(f"{path}: {result.reason}")
        found = read_tables(Path(result.out))
        return {**found, "summary": _read_summary(Path(result.out))}
