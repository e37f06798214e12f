"""Instructions per frame of the codec (callgrind): `python -m bench --only instructions`.

A timed codec run on a shared 2-core VM moves by half within minutes; an instruction count
hardly moves at all. Each count runs the codec worker (`python -m bench.codec DIALECT IMPL
--passes N`) under `valgrind --tool=callgrind` twice, with `FEW` and `FEW + MANY` passes, and
divides the difference by the frames of `MANY` passes: what is left is the passes alone, not
the start-up (the imports are over a billion instructions). `PYTHONHASHSEED` is fixed so that
both processes of a pair start alike. The worker is the one the timed scenario uses, so the
counts cover the same code, corpus and build. Counts run two at a time, one per core: an
instruction count does not depend on what the other core does.

Instructions are not time: cache misses and branch mispredictions are not in them, and
pydantic's count over ours has come out a little above the ratio of the two times. They are
the figure to compare before and after a change to the codec, and across machines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.codec import result_key
from bench.common import ROOT

FEW, MANY = 10, 200
"""Passes of the shorter process of a pair, and how many more the longer one makes."""
_COLLECTED = re.compile(r"==\d+== Collected : (\d+)")


def collected(valgrind: str, dialect: str, impl: str, single: bool, passes: int) -> str:
    """The codec worker's stdout after `passes` passes under callgrind, its instruction count
    appended as the JSON line's `instructions`."""
    argv = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
            "-m", "bench.codec", dialect, impl, "--passes", str(passes)]  # fmt: skip
    if single:
        argv.append("--single")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    found = _COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"{' '.join(argv[4:])} under callgrind failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["instructions"] = int(found.group(1))
    return json.dumps(result)


def per_frame(valgrind: str, dialect: str, impl: str, single: bool) -> dict[str, Any]:
    """`{"bodies", "frames", "per_frame"}`: the instructions one frame costs, on average over
    the corpus (`single`: wonderful's single frames, pydantic's corpus)."""
    few, more = (
        json.loads(collected(valgrind, dialect, impl, single, n)) for n in (FEW, FEW + MANY)
    )
    frames = int(few["frames"])
    cost = (more["instructions"] - few["instructions"]) / (MANY * frames)
    return {"bodies": few["bodies"], "frames": frames, "per_frame": round(cost)}


def count_all(
    jobs: list[tuple[str, str, bool]], valgrind: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """`per_frame` of every `(dialect, impl, single)` job, keyed as the timed scenario keys
    its results (`wonderful/gateway-single`)."""

    def one(job: tuple[str, str, bool]) -> tuple[str, dict[str, Any]]:
        dialect, impl, single = job
        key = result_key(dialect, impl, single)
        result = per_frame(valgrind, dialect, impl, single)
        say(f"  {key:32} {result['per_frame']:>12,} instructions/frame")
        return key, result

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, jobs))
