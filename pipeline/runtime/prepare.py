"""The prepare step: before any node starts, export the models the enabled nodes will load and the cache lacks.

Nodes only read exported files (engines/derived.py) and never import torch or the exporters. Exporting
needs torch and takes from a second to a minute, so ``moodwire run`` does it here, once, before the
nodes start, in a child process of its own (``python -m moodwire.pipeline.runtime.prepare NAME ...``,
the config on stdin), so that torch never stays in the manager's memory. Its progress goes to the
manager's stderr. ``moodwire export all`` (which tools/setup.sh runs) does the same ahead of time.
"""

from __future__ import annotations

import json
import subprocess
import sys

from moodwire.engines.profiles import check_selected
from moodwire.engines.registry import ModelError
from moodwire.exporters.slots import export_named, is_exported
from moodwire.pipeline.core.config import Config, from_dict
from moodwire.pipeline.core.progress import Progress
from moodwire.pipeline.runtime.process_table import enabled_nodes

EXPORT_EXTRA = ("torch", "onnx", "h5py", "safetensors")  # what pyproject's "export" extra installs


def needed_exports(config: Config) -> list[str]:
    """Export names of the models the enabled nodes load, in process-table order, each once."""
    names: list[str] = []
    for spec in enabled_nodes(config):
        names += [name for name in spec.exports(config) if name not in names]
    return names


def missing_exports(config: Config) -> list[str]:
    """Those of ``needed_exports`` whose files are not in the cache, or no longer match their checksum."""
    return [name for name in needed_exports(config) if not is_exported(name, config)]


def prepare(config: Config) -> list[str]:
    """Export what is missing (in a child process) and return its names; ModelError if an export fails,
    or if a selected model profile is not fetched (the error gives the fetch command: nothing downloads here)."""
    check_selected(config)
    check_lsl(config)
    missing = missing_exports(config)
    if not missing:
        return []
    print(f"moodwire: exporting {', '.join(missing)} before the nodes start (once; `moodwire export all` "
          "does it ahead of time)", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, "-m", "moodwire.pipeline.runtime.prepare", *missing],
                          input=json.dumps(config.to_dict()), text=True, stdout=sys.stderr)
    if done.returncode != 0:
        raise ModelError(f"exporting {', '.join(missing)} failed (exit {done.returncode}; the reason is above); "
                         f"fix it, or run `moodwire export NAME` to see it again")
    return missing


def check_lsl(config: Config) -> None:
    """ConfigError before anything starts when the lsl node is on and pylsl is not installed."""
    if config.lsl.enabled:
        from moodwire.pipeline.lsl.outlet import require_pylsl

        require_pylsl("lsl.enabled = true", ", or set lsl.enabled = false")


def main(argv: list[str] | None = None) -> int:
    """The child: export each named model for the config read from stdin."""
    config = from_dict(json.loads(sys.stdin.read()))
    progress = Progress(sys.stderr)
    for name in argv if argv is not None else sys.argv[1:]:
        try:
            with progress.step(f"export {name}") as step:
                result = export_named(name, config, step)
        except ImportError as exc:
            if exc.name not in EXPORT_EXTRA:
                raise
            print(f"moodwire: exporting {name} needs the export extra ({', '.join(EXPORT_EXTRA)}): {exc}; install it "
                  "(bash tools/setup.sh does), or export on a machine that has it and copy the model cache",
                  file=sys.stderr)
            return 2
        except (ModelError, OSError, ValueError) as exc:
            print(f"moodwire: exporting {name} failed: {exc}", file=sys.stderr)
            return 2
        print(f"{name}: {result.summary()}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
