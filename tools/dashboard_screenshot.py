"""Screenshot of the dashboard on a running pipeline, taken by headless Chromium (docs/img/dashboard.png).

    .venv/bin/moodwire run --config configs/sample.toml        # in another terminal
    .venv/bin/python -m tools.dashboard_screenshot --out docs/img/dashboard.png

It serves the dashboard itself (on a free loopback port), waits until the page shows a person
and a transcribed utterance (or ``--wait`` seconds), lets the plot fill for ``--settle`` seconds
and writes the whole page as PNG. Needs the dev extra (playwright) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import sys
import time

from moodwire.pipeline.core.bus import DEFAULT_PUBLIC
from moodwire.pipeline.dashboard.browser import headless_page
from moodwire.pipeline.dashboard.run import DashboardOptions, serving

from .harness.machine import ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=DEFAULT_PUBLIC, help="the pipeline's public endpoint")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "dashboard.png"))
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a person and an utterance")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds more, so the rolling plot has a history")
    args = parser.parse_args()
    with serving(DashboardOptions(args.endpoint, port=0)) as server:
        with headless_page(server.url("127.0.0.1")) as page:
            page.wait_for_selector("#persons .person", timeout=args.wait * 1000)
            page.wait_for_selector("#transcript .utterance", timeout=args.wait * 1000)
            time.sleep(args.settle)
            page.screenshot(path=args.out, full_page=True)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
