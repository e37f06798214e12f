"""Run `gateway serve` with a raised fd limit (and, if asked, with tracemalloc).

`BENCH_TRACEMALLOC=<file.txt>` traces allocations: the first SIGUSR1 takes a baseline snapshot,
each later one writes the growth since it, by source line, to the file. (CPU profiles are taken
from outside, with py-spy: see `bench.spy`.) The gateway itself is unchanged.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from bench.common import raise_fd_limit


def _tracemalloc(out: str) -> None:
    import tracemalloc

    tracemalloc.start(1)
    state: dict[str, Any] = {}

    def snap(*_: object) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        base = state.get("base")
        if base is None:
            state["base"] = snapshot
            return
        stats = snapshot.compare_to(base, "lineno")
        total = sum(s.size_diff for s in stats)
        with open(out, "w") as f:
            f.write(f"# growth since the baseline: {total / 1024:.0f} KiB (traced Python heap)\n")
            for stat in stats[:40]:
                f.write(f"{stat}\n")

    signal.signal(signal.SIGUSR1, snap)


def main() -> int:
    raise_fd_limit()
    from gateway.cli import main as gateway_main

    if out := os.environ.get("BENCH_TRACEMALLOC"):
        _tracemalloc(out)
    return gateway_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
