"""py-spy profiles, summarised as text: where a process spends its time, by function.

`record(argv | pid, seconds, out)` samples with `py-spy record --format raw` (collapsed stacks,
one `frame;frame;… count` line each); `summarise` turns them into two tables: self time (the
innermost frame of each sample) and inclusive time (every function on the stack, once per
sample), in % of all samples, plus the heaviest whole stacks.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from bench.common import VENV

_FRAME = re.compile(r"^(?P<func>.*) \((?P<where>[^()]*)\)$")


def _py_spy() -> str:
    candidate = VENV / "bin" / "py-spy"
    return str(candidate) if candidate.exists() else "py-spy"


def record(target: list[str] | int, seconds: float, raw: Path, rate: int = 400) -> None:
    """Sample a new process (`target` an argv) or a running one (`target` a pid)."""
    argv = [_py_spy(), "record", "--format", "raw", "--rate", str(rate), "--output", str(raw)]
    if isinstance(target, int):
        argv += ["--pid", str(target), "--duration", str(max(1, round(seconds))), "--nonblocking"]
    else:
        argv += ["--", *target]
    subprocess.run(argv, check=True, capture_output=True, timeout=seconds + 120)


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    where = match["where"]
    path, _, _ = where.rpartition(":")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def summarise(raw: Path, title: str, top: int = 25, within: str = "") -> str:
    """The tables of `raw`; with `within`, only the samples whose stack has a frame containing
    that text (e.g. the measuring loop, leaving out start-up)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    stacks: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if within and within not in stack:
            continue
        frames = [_name(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
        stacks[" → ".join(frames[-4:])] += count
    if not total:
        return f"# {title}\n\n(no samples)\n"

    def table(counter: Counter[str]) -> list[str]:
        return [f"{100 * n / total:6.1f} %  {name}" for name, n in counter.most_common(top)]

    lines = [f"# {title}", "", f"{total} samples (py-spy, idle time excluded)", "",
             "## self time", "", *table(own), "", "## inclusive time", "", *table(inclusive),
             "", "## heaviest stacks (innermost 4 frames)", "",
             *[f"{100 * n / total:6.1f} %  {s}" for s, n in stacks.most_common(12)],
             ""]  # fmt: skip
    return "\n".join(lines)
