"""Profile one dialect's codec path (pyinstrument): `python -m bench.profile_codec DIALECT`."""

from __future__ import annotations

import argparse
import json
import sys

from pyinstrument import Profiler

from bench.codec import corpus, implementation, measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile_codec")
    parser.add_argument("dialect")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    frames = corpus(args.dialect)
    fn = implementation(args.dialect, "gateway")
    measure(fn, frames, 0.2)
    profiler = Profiler(interval=0.0002)
    profiler.start()
    rate = measure(fn, frames, args.seconds)
    profiler.stop()
    with open(args.out, "w") as f:
        f.write(f"# {args.dialect}: {rate:,.0f} frames/s under the profiler\n")
        f.write(profiler.output_text(unicode=True, show_all=False))
    sys.stdout.write(json.dumps({"rate": rate, "out": args.out}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
