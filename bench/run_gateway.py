"""Run `gateway serve` with a raised fd limit (and, if asked, under pyinstrument).

`BENCH_PYINSTRUMENT=<file.txt>` profiles the whole process until it stops (SIGTERM) and writes the text
report there. The gateway itself is unchanged: this is only its entry point.
"""

from __future__ import annotations

import os
import sys

from bench.common import raise_fd_limit


def main() -> int:
    raise_fd_limit()
    from gateway.cli import main as gateway_main

    out = os.environ.get("BENCH_PYINSTRUMENT")
    if not out:
        return gateway_main(sys.argv[1:])
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        return gateway_main(sys.argv[1:])  # returns after aiohttp handled SIGTERM
    finally:
        profiler.stop()
        with open(out, "w") as f:
            f.write(profiler.output_text(unicode=True, show_all=False))


if __name__ == "__main__":
    sys.exit(main())
