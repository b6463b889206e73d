"""The one clock of the pipeline.

All capture timestamps are ``time.monotonic_ns()``: CLOCK_MONOTONIC on Linux
is shared by every process on the host, so audio, video and downstream
messages from different processes can be compared and aligned directly.
"""

import time


def now_ns() -> int:
    return time.monotonic_ns()
