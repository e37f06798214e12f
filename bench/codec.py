"""Codec worker (one process, one core): `python -m bench.codec DIALECT IMPL... --runs R`.

The corpus of a dialect is every valid body of `tests/fixtures/<dialect>/` (no `bad_*`): single
frames, arrays and the dialect's envelopes, minified as platforms send them. A body counts for
the frames in it (its canonical events plus its ignored frames, from `<case>.expected.json`);
one pass decodes each body and encodes its events. `--single` keeps the bodies that are one
frame making one event (the pydantic reference covers only those).

IMPL: `gateway` (the adapter's `decode` → canonical Structs → the hub's `wire.encode`,
what ingest does), `floor` (`msgspec.json.decode` + `msgspec.json.encode` of the same frames,
untyped: the least any JSON-in/JSON-out step costs), `pydantic` (bench/pydantic_wonderful.py,
wonderful only; it implies `--single`). Given several, they share each run in this one
process: a run is `--slices` rounds, each giving every IMPL a slice of `--seconds / --slices`
in turn, and an IMPL's figure for the run is its frames over its time in all of them. A host
whose speed drifts (a shared VM's does, by half within seconds) then moves a ratio's two sides
alike (whole runs in turn gave one code ratios from 4.3 to 5.5 within a minute).
Prints one JSON line: the corpus, and `runs` of frames/s by IMPL.

`--passes N` times nothing: it makes one pass of each IMPL, then N more, and prints the corpus.
It is for counting instructions (`bench.instructions`, under callgrind), where the difference
between two counts of different N is the cost of the passes alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bench.common import ROOT

FIXTURES = ROOT / "tests" / "fixtures"


def result_key(dialect: str, impl: str, single: bool) -> str:
    """How a run's results name one side of a codec pair: `wonderful/gateway`, and
    `wonderful/gateway-single` for the gateway on pydantic's corpus (`--single`)."""
    return f"{dialect}/{impl}" + ("-single" if single and impl == "gateway" else "")


def dialects() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def corpus(dialect: str, single: bool = False) -> list[tuple[bytes, str | None, int]]:
    """(minified body, ?conversation=, frames in it) of the dialect's valid fixtures."""
    out = []
    for expected_path in sorted((FIXTURES / dialect).glob("*.expected.json")):
        if expected_path.name.startswith("bad_"):
            continue
        expected = json.loads(expected_path.read_text())
        if "error" in expected:
            continue
        events, ignored = len(expected.get("events", [])), expected.get("ignored") or 0
        body_path = Path(str(expected_path).replace(".expected.json", ".json"))
        try:
            body = json.loads(body_path.read_bytes())
        except ValueError:
            continue
        if single and (events != 1 or ignored or isinstance(body, list)):
            continue
        if events + ignored == 0:
            continue
        minified = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        out.append((minified, expected.get("conversation"), events + ignored))
    return out


def implementation(dialect: str, impl: str) -> Callable[[bytes, str | None], int]:
    """A function doing one frame's decode → encode, returning the events it made."""
    if impl == "floor":
        decode, encode = msgspec.json.decode, msgspec.json.encode

        def floor(body: bytes, conversation: str | None) -> int:
            encode(decode(body))
            return 1

        return floor
    if impl == "pydantic":
        if dialect != "wonderful":
            raise SystemExit("the pydantic reference implements the wonderful dialect only")
        from bench.pydantic_wonderful import decode_encode

        def pyd(body: bytes, conversation: str | None) -> int:
            decode_encode(body, conversation)
            return 1

        return pyd
    from gateway.adapter import Registry
    from gateway.hub.wire import encode

    adapter = Registry.load([dialect]).get(dialect)
    adapter_decode = adapter.decode

    def gateway(body: bytes, conversation: str | None) -> int:
        events = adapter_decode(body, conversation=conversation).events
        for event in events:
            encode(event)
        return len(events)

    return gateway


def check_pydantic(frames: list[tuple[bytes, str | None, int]]) -> list[str]:
    """Frames whose pydantic output differs from the gateway's (should be none)."""
    from gateway.adapter import Registry
    from gateway.model import event_encoder

    from bench.pydantic_wonderful import decode_encode

    adapter = Registry.load(["wonderful"]).get("wonderful")
    bad = []
    for body, conversation, _ in frames:
        event = adapter.decode(body, conversation=conversation).events[0]
        ours = msgspec.json.decode(event_encoder.encode(event))
        theirs = msgspec.json.decode(decode_encode(body, conversation))
        if ours != theirs:
            bad.append(f"{body[:60]!r}: gateway {ours} != pydantic {theirs}")
    return bad


def one_pass(fn: Callable[[bytes, str | None], int], frames: list[Any]) -> None:
    """Every body of the corpus through `fn` once."""
    for body, conversation, _ in frames:
        fn(body, conversation)


def passes(
    fn: Callable[[bytes, str | None], int], frames: list[Any], seconds: float
) -> tuple[int, float]:
    """`(frames, seconds taken)` of whole passes of the corpus until `seconds` have passed."""
    per_pass = sum(n for _, _, n in frames)
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        one_pass(fn, frames)
        count += per_pass
        now = time.perf_counter()
        if now >= deadline or count >= 10_000_000 * per_pass:
            return count, now - started


def interleaved(
    fns: dict[str, Callable[[bytes, str | None], int]],
    frames: list[Any],
    seconds: float,
    slices: int,
) -> dict[str, float]:
    """One run: frames/s of each function over `slices` rounds of `seconds / slices` each,
    the functions taking turns within every round."""
    totals = {impl: [0, 0.0] for impl in fns}
    for _ in range(slices):
        for impl, fn in fns.items():
            count, taken = passes(fn, frames, seconds / slices)
            totals[impl][0] += count
            totals[impl][1] += taken
    return {impl: count / taken for impl, (count, taken) in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.codec")
    parser.add_argument("dialect")
    parser.add_argument("impl", nargs="+", choices=["gateway", "floor", "pydantic"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--slices", type=int, default=10, help="turns per run (see above)")
    parser.add_argument("--single", action="store_true")
    parser.add_argument("--passes", type=int, help="run N passes untimed (see above)")
    args = parser.parse_args(argv)
    frames = corpus(args.dialect, args.single or "pydantic" in args.impl)
    fns = {impl: implementation(args.dialect, impl) for impl in args.impl}
    result: dict[str, Any] = {
        "bodies": len(frames),
        "frames": sum(n for _, _, n in frames),
        "mean_body_bytes": sum(len(b) for b, _, _ in frames) / len(frames),
    }
    if "pydantic" in fns:
        result["mismatches"] = check_pydantic(frames)
    if args.passes is not None:
        for fn in fns.values():
            for _ in range(1 + args.passes):  # the first warms caches, as in timed runs
                one_pass(fn, frames)
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    for fn in fns.values():
        passes(fn, frames, min(0.3, args.seconds))  # warm caches
    runs: dict[str, list[float]] = {impl: [] for impl in fns}
    for _ in range(args.runs):
        for impl, rate in interleaved(fns, frames, args.seconds, max(1, args.slices)).items():
            runs[impl].append(rate)
    result["runs"] = runs
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
