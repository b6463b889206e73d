"""The ``moodwire`` command: run, listen, record, replay, doctor, models, export, view, keys, dashboard."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from moodwire.engines.engine import EngineError
from moodwire.engines.registry import ModelError
from moodwire.pipeline.core.client_keys import add_key_options, curve_from_args
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.config import ConfigError, load_config
from moodwire.pipeline.core.signals import stop_on_signals
from moodwire.pipeline.core.topics import UnknownPrefixError
from moodwire.pipeline.sources import SourceUnavailable

LISTED_ARRAY_MAX = 64  # `listen --json` prints arrays up to this many elements as lists (docs/schema.md)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (moodwire models --json | head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at the interpreter's last flush
        return 0
    except (ConfigError, UnknownPrefixError, SourceUnavailable, ModelError, EngineError, OSError) as exc:
        print(f"moodwire: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the command set its own handler (while starting): one line
        print(f"moodwire: {args.command}: interrupted", file=sys.stderr)
        return 130


def positive_seconds(text: str) -> float:
    """An argparse type: a duration in seconds, above 0 (``--duration 0`` would end before anything ran)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds (e.g. --duration 10; "
                                         "leave it out to run until Ctrl-C)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moodwire", description="streaming affect perception pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the pipeline (webcam + mic, or --source FILE)")
    run.add_argument("--config", help="TOML config file (default: built-in defaults = configs/default.toml)")
    run.add_argument("--source", help="run on a media file (video with or without audio, or WAV)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set sources.fps=25 (repeatable)")
    run.add_argument("--duration", type=positive_seconds, help="stop after S seconds and exit 0")
    run.add_argument("--quiet", action="store_true", help="no live status line (fps, latency, faces, last words)")
    run.add_argument("--nodes", help="run only these nodes on this host, comma-separated (= manager.nodes), "
                                     "e.g. video_source,audio_source")
    run.add_argument("--bus", metavar="tcp://HOST:PORT",
                     help="join the bus of the pipeline on HOST (its bus.public; = bus.join) instead of running one")
    run.add_argument("--server-key", help="with --bus: the bus host's server.key (= bus.server_key)")
    run.add_argument("--client-key", help="with --bus: this host's NAME.key_secret (= bus.client_secret)")
    run.set_defaults(func=cmd_run)

    analyze = sub.add_parser("analyze", help="recordings -> per-frame, per-utterance and per-word tables "
                                              "(lossless, docs/analysis.md)")
    analyze.add_argument("paths", nargs="+", metavar="PATH", help="media files, or folders of them")
    analyze.add_argument("--out", required=True, help="output folder: a folder per file, named by its stem")
    analyze.add_argument("--format", default="parquet", choices=("parquet", "csv"), help="table files (default %(default)s)")
    analyze.add_argument("--config", help="TOML config file (as for run)")
    analyze.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    analyze.add_argument("--quiet", action="store_true", help="no progress bars")
    analyze.set_defaults(func=cmd_analyze)

    listen = sub.add_parser("listen", help="print messages under a topic prefix")
    listen.add_argument("prefix", nargs="?", default="", help="topic prefix, e.g. video. or affect.")
    listen.add_argument("--json", action="store_true", help="one JSON object per line")
    listen.add_argument("--count", type=int, help="exit after N messages")
    listen.add_argument("--duration", type=positive_seconds, help="exit after S seconds")
    _subscriber_args(listen)
    listen.set_defaults(func=cmd_listen)

    rec = sub.add_parser("record", help="record topics to a file")
    rec.add_argument("file")
    rec.add_argument("--topics", nargs="*", default=[""], help="topic prefixes (default: all)")
    rec.add_argument("--duration", type=positive_seconds)
    rec.add_argument("--count", type=int)
    _subscriber_args(rec)
    rec.set_defaults(func=cmd_record)

    rep = sub.add_parser("replay", help="publish a recording with its original timing")
    rep.add_argument("file")
    rep.add_argument("--topics", nargs="*", default=None, help="topic prefixes to replay (default: all)")
    rep.add_argument("--speed", type=float, default=1.0, help="2 = twice as fast")
    rep.add_argument("--keep-timestamps", action="store_true",
                     help="send t_capture as recorded instead of shifted to now")
    rep.add_argument("--wait", type=float, default=0.5, help="seconds to let subscribers connect first")
    _endpoint_arg(rep, "bind the replay publisher here")
    rep.set_defaults(func=cmd_replay)

    doc = sub.add_parser("doctor", help="what is installed, and how to fix what is missing")
    doc.add_argument("--config", help="TOML config file (for the endpoint and the selected model profiles)")
    doc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, as for run")
    doc.set_defaults(func=cmd_doctor)

    models = sub.add_parser("models", help="every model slot and profile: source, license, checksum, status")
    models.add_argument("--config", help="TOML config file (for [models] path overrides and the selected profiles)")
    models.add_argument("--json", action="store_true", help="one JSON object per slot and per profile")
    models.set_defaults(func=cmd_models)
    fetch = models.add_subparsers(dest="models_command").add_parser(
        "fetch", help="download a model profile once (pinned revision, checked), into the cache")
    fetch.add_argument("profile", help="a profile name from `moodwire models`")
    fetch.add_argument("--base-url", default="", help="a mirror that serves the same paths as the profile's host")
    fetch.add_argument("--from", dest="from_dir", metavar="DIR", default="",
                       help="install from files copied by hand into DIR (same checks; docs/models.md), no network")
    fetch.add_argument("--force", action="store_true", help="download again even if the cached files are intact")
    fetch.set_defaults(func=cmd_models_fetch)

    export = sub.add_parser("export", help="export a model to ONNX (and a TensorRT engine where possible)")
    export.add_argument("slot", help="face-expression, text-encoder, asr-base, fusion, or 'all'")
    export.add_argument("--config", help="TOML config file (for [models] path overrides and fusion.params)")
    export.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set fusion.params=my.json (repeatable)")
    export.set_defaults(func=cmd_export)

    lsl = sub.add_parser("lsl", help="the affect stream as Lab Streaming Layer outlets (docs/lsl.md)")
    lsl.add_argument("--slots", type=int, default=4, help="face slots in moodwire-affect (default %(default)s)")
    lsl.add_argument("--rate", type=float, default=30.0, help="moodwire-affect's nominal rate: the video's fps "
                                                             "(default %(default)s)")
    lsl.add_argument("--duration", type=positive_seconds, help="stop after S seconds")
    _subscriber_args(lsl)
    lsl.set_defaults(func=cmd_lsl)

    view = sub.add_parser("view", help="draw the live stream over its video, in a window or to --out")
    view.add_argument("--out", default="", help="write instead of a window: a .mp4/.avi video, a .png "
                                               "snapshot (the latest), or a folder of numbered PNG snapshots")
    view.add_argument("--frames", type=int, help="stop after N drawn frames")
    view.add_argument("--duration", type=positive_seconds, help="stop after S seconds")
    view.add_argument("--every", type=int, default=1, help="PNG folder: keep every N-th frame")
    _subscriber_args(view)
    view.set_defaults(func=cmd_view)

    _dashboard_parser(sub)

    keys = sub.add_parser("keys", help="make CURVE keys so the public endpoint can leave loopback (docs/security.md)")
    keys.add_argument("folder", help="where to write them (created, mode 0700); an existing server keypair "
                                     "there is kept, so run it again with another --client to add a client")
    keys.add_argument("--client", default="client", help="name of the client keypair to make (default %(default)s)")
    keys.set_defaults(func=cmd_keys)
    return parser


def _subscriber_args(parser: argparse.ArgumentParser) -> None:
    """What every command that subscribes to a running pipeline takes: its endpoint, CURVE keys, a stream."""
    _endpoint_arg(parser)
    add_key_options(parser)
    _stream_arg(parser)


def _stream_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream", help="only this stream (sources.stream of its camera: cam2; '' the default "
                                         "stream); default: every stream")


def _endpoint_arg(parser: argparse.ArgumentParser, help_text: str = "the pipeline's public endpoint") -> None:
    parser.add_argument("--endpoint", default=load_config().bus.public, help=f"{help_text} (default %(default)s)")


# ------------------------------------------------------------------ analyze


def cmd_analyze(args: argparse.Namespace) -> int:
    from moodwire.pipeline.runtime.analyze import AnalysisError, analyze_batch

    try:
        results = analyze_batch(args.paths, args.out, load_config(args.config, args.set), args.format,
                                progress=not args.quiet)
    except AnalysisError as exc:
        print(f"moodwire: error: {exc}", file=sys.stderr)
        return 2
    return 1 if any(r.status == "failed" for r in results) else 0


# ------------------------------------------------------------------ run


def cmd_run(args: argparse.Namespace) -> int:
    from moodwire.pipeline.core.keys import server_curve
    from moodwire.pipeline.runtime.doctor import endpoint_problem, in_use_fix
    from moodwire.pipeline.runtime.manager import Manager
    from moodwire.pipeline.runtime.process_table import enabled_nodes
    from moodwire.pipeline.sources.resolve import resolve_sources, with_source_file

    config = load_config(args.config, [*args.set, *_run_settings(args)])
    if args.source:
        config = with_source_file(config, args.source)
    here = {spec.name for spec in enabled_nodes(config)}
    config, notes = resolve_sources(config, frozenset(kind for kind in ("video", "audio") if f"{kind}_source" in here))
    for note in notes:
        print(note, file=sys.stderr)
    if not config.bus.join:
        server_curve(config.bus)  # before the port probe: an exposed endpoint without keys is the first to fix
        for setting, endpoint in (("bus.public", config.bus.public), ("bus.ingest", config.bus.ingest)):
            problem = endpoint_problem(endpoint)
            if problem:
                raise ConfigError(f"{problem}; {in_use_fix(setting)}")
    manager = Manager(config, notes)
    stop_on_signals(manager.stopping)
    if args.quiet:
        return manager.run(args.duration)
    from moodwire.pipeline.runtime.status_line import StatusLine

    status = StatusLine(manager.endpoints.internal_sub, curve=manager.curve).start()
    try:
        return manager.run(args.duration)
    finally:
        status.stop()


def _run_settings(args: argparse.Namespace) -> list[str]:
    """``run``'s own options as the config keys they stand for."""
    pairs = (("manager.nodes", args.nodes), ("bus.join", args.bus), ("bus.server_key", args.server_key),
             ("bus.client_secret", args.client_key))
    return [f"{key}={value}" for key, value in pairs if value is not None]


# ------------------------------------------------------------------ listen


def cmd_listen(args: argparse.Namespace) -> int:
    from moodwire.pipeline.core.bus import Subscriber
    from moodwire.pipeline.core.link_watch import LinkWatch, say_on_stderr
    from moodwire.pipeline.core.topics import check_prefix

    curve = curve_from_args(args)
    stop = stop_on_signals()
    deadline = None if args.duration is None else now_ns() + int(args.duration * 1e9)
    printed = 0
    check_prefix(args.prefix)
    watch = LinkWatch(args.endpoint, [args.prefix], say_on_stderr)
    with Subscriber(args.endpoint, [args.prefix], queue_everything=True, curve=curve, stream=args.stream,
                    watch=watch) as sub:
        while not stop.is_set() and (args.count is None or printed < args.count):
            if deadline is not None and now_ns() >= deadline:
                break
            got = sub.recv_raw(timeout=0.1)
            if got is None:
                continue
            print(format_message(got[1], got[2], args.json), flush=True)
            printed += 1
    return 0


def format_message(frames: list, t_receive: int, as_json: bool) -> str:
    """One line for any message: decoded by its registered type, raw header otherwise."""
    from moodwire.pipeline.core.wire import WireError, decode, split_frames, to_plain

    try:
        topic, msg = decode(frames)
        body = to_plain(msg, _array_summary)
    except WireError as exc:
        try:
            topic, body, _ = split_frames(frames)
            body = {**body, "error": str(exc)}
        except WireError as exc2:
            topic, body = "<malformed>", {"error": str(exc2)}
    body = _finite(body)
    if as_json:
        return json.dumps({"topic": topic, **body, "t_receive": t_receive}, default=_json_fallback, allow_nan=False)
    age = (t_receive - body["t_capture"]) / 1e6 if isinstance(body.get("t_capture"), int) else None
    head = f"{topic} seq={body.get('seq')} valid={body.get('valid')}"
    head += f" age={age:.1f}ms" if age is not None else ""
    rest = {k: v for k, v in body.items() if k not in ("topic", "seq", "valid", "v", "t_publish", "t_capture")}
    return f"{head} {json.dumps(rest, default=_json_fallback)[:300]}"


def _finite(value: Any) -> Any:
    """NaN and infinities (a prosody measure that does not exist) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _array_summary(array: np.ndarray) -> list | dict:
    """A small array (a face's expression probabilities, its blendshapes, head pose) as a list of its values,
    floats to 6 decimals (beyond float32's precision); a larger one (frames, audio, landmarks) as its dtype
    and shape."""
    if array.size > LISTED_ARRAY_MAX:
        return {"dtype": array.dtype.str, "shape": list(array.shape)}
    if array.dtype.kind == "f":
        return np.round(array.astype(np.float64), 6).tolist()
    return array.tolist()


def _json_fallback(value: Any) -> Any:
    """What JSON cannot hold as is: raw bytes (msgpack bin) of a header that did not decode."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": len(value)}
    return repr(value)


# ------------------------------------------------------------------ record / replay


def cmd_record(args: argparse.Namespace) -> int:
    from moodwire.pipeline.runtime.recording import record

    stop = stop_on_signals()
    n = record(args.endpoint, args.file, args.topics, stop, args.duration, args.count, curve_from_args(args),
               args.stream)
    print(f"moodwire: recorded {n} messages to {args.file}", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from moodwire.pipeline.core.bus import Publisher
    from moodwire.pipeline.runtime.doctor import endpoint_problem, in_use_fix
    from moodwire.pipeline.runtime.recording import RecordingError, replay

    problem = endpoint_problem(args.endpoint)
    if problem:
        raise ConfigError(f"{problem}; pass another --endpoint")
    stop = stop_on_signals()
    pub = Publisher(args.endpoint, "replay", bind=True)
    try:
        stop.wait(args.wait)  # PUB/SUB: subscribers joining late miss what was sent before
        n = replay(args.file, pub, stop, speed=args.speed, keep_timestamps=args.keep_timestamps,
                   prefixes=args.topics, warn=lambda m: print(m, file=sys.stderr))
    except RecordingError as exc:
        print(f"moodwire: error: {exc}", file=sys.stderr)
        return 2
    finally:
        pub.close()
    print(f"moodwire: replayed {n} messages from {args.file}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    from moodwire.pipeline.runtime.doctor import run_doctor

    checks = run_doctor(load_config(args.config, args.set))
    for check in checks:
        print(check.line())
    failed = [c.name for c in checks if c.required and not c.ok]
    return 1 if failed else 0


# ------------------------------------------------------------------ models


def cmd_models(args: argparse.Namespace) -> int:
    from moodwire.pipeline.runtime.model_report import report_all, report_profiles

    config = load_config(args.config)
    slots, profiles = report_all(config), report_profiles(config)
    colour = sys.stdout.isatty()
    for report in slots:
        print(json.dumps(report.to_dict()) if args.json else "\n".join(report.lines()))
    if profiles and not args.json:
        print("\nprofiles: stronger public models, fetched only on request (`moodwire models fetch NAME`)")
    for profile in profiles:
        print(json.dumps(profile.to_dict()) if args.json else "\n".join(profile.lines(colour)))
    return 0 if all(r.ok for r in (*slots, *profiles)) else 1


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from moodwire.engines.profiles import get_profile
    from moodwire.engines.registry import ModelError
    from moodwire.pipeline.core.progress import Progress
    from moodwire.pipeline.runtime.model_fetch import CopiedFiles, fetch_profile

    if args.from_dir and args.base_url:
        raise ConfigError("--from DIR and --base-url URL both say where the files come from: give one")
    if args.from_dir and not Path(args.from_dir).is_dir():
        raise ConfigError(f"--from {args.from_dir}: no such folder (copy the profile's files into one first)")
    copied = CopiedFiles(Path(args.from_dir)) if args.from_dir else None
    try:
        profile = get_profile(args.profile)
        print(f"{profile.name}: {profile.repo} at {profile.revision}; licence {profile.licence_label}",
              file=sys.stderr)
        with Progress(sys.stderr).step(f"fetch {profile.name}") as step:
            folder = fetch_profile(profile, args.base_url, step, args.force, copied)
    except ModelError as exc:
        print(f"moodwire: error: {exc}", file=sys.stderr)
        return 2
    print(f"{profile.name}: ready in {folder}; use it with --set {profile.modality}.profile={profile.name}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from moodwire.exporters.slots import EXPORT_NAMES, export_named
    from moodwire.pipeline.core.progress import Progress

    config = load_config(args.config, args.set)
    names = list(EXPORT_NAMES) if args.slot == "all" else [args.slot]
    progress = Progress(sys.stderr)  # a terminal gets one live line per slot; a log, a line every few seconds
    for name in names:
        with progress.step(f"export {name}") as step:
            result = export_named(name, config, progress=step)
        print(f"{name}: {result.summary()}")
    return 0


# ------------------------------------------------------------------ keys


def cmd_keys(args: argparse.Namespace) -> int:
    from moodwire.pipeline.core.keys import make_keys

    print(make_keys(args.folder, args.client).instructions())
    return 0


# ------------------------------------------------------------------ lsl


def cmd_lsl(args: argparse.Namespace) -> int:
    import threading

    from moodwire.pipeline.lsl.mapping import AFFECT_STREAM, MARKER_STREAM
    from moodwire.pipeline.lsl.outlet import require_pylsl, run_outlets

    require_pylsl("moodwire lsl")
    if not 1 <= args.slots <= 64 or not 0 < args.rate <= 1000:
        raise ConfigError("--slots must be 1 to 64 and --rate above 0 (the video's frames per second)")

    stop = stop_on_signals()
    if args.duration is not None:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    print(f"moodwire lsl: {AFFECT_STREAM} and {MARKER_STREAM} from {args.endpoint}", file=sys.stderr, flush=True)
    mapper = run_outlets(args.endpoint, face_slots=args.slots, rate_hz=args.rate, stream=args.stream,
                         curve=curve_from_args(args), stop=stop)
    print(f"moodwire lsl: stopped; {mapper.skipped} message(s) skipped", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ view


def cmd_view(args: argparse.Namespace) -> int:
    from moodwire.pipeline.viewer.run import ViewerError, ViewOptions, run_viewer

    options = ViewOptions(args.endpoint, args.out, args.frames, args.duration, args.every,
                          curve=curve_from_args(args), stream=args.stream)
    try:
        drawn = run_viewer(options, stop_on_signals())
    except ViewerError as exc:
        print(f"moodwire: error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        print(f"drew {drawn} frames to {args.out}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ dashboard


def _dashboard_parser(sub: argparse._SubParsersAction) -> None:
    from moodwire.pipeline.dashboard.run import DEFAULT_HOST, DEFAULT_PORT

    dash = sub.add_parser("dashboard", help="serve a live web page of the stream (127.0.0.1 by default)")
    dash.add_argument("--host", default=DEFAULT_HOST, help="address to serve on (default %(default)s: this "
                                                           "machine only; others need --allow-remote)")
    dash.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s; 0: any free one)")
    dash.add_argument("--allow-remote", action="store_true",
                      help="serve on a non-loopback --host, with a random access token in the printed URL "
                           "(plain HTTP: prefer an SSH tunnel; docs/dashboard.md)")
    dash.add_argument("--duration", type=positive_seconds, help="stop after S seconds")
    _subscriber_args(dash)
    dash.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from moodwire.pipeline.dashboard.run import DashboardOptions, run_dashboard

    options = DashboardOptions(args.endpoint, args.host, args.port, args.allow_remote, curve_from_args(args),
                               args.duration, args.stream)
    return run_dashboard(options, stop_on_signals())


if __name__ == "__main__":
    sys.exit(main())
