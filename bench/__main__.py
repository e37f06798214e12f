"""`python -m bench`: run the benchmark scenarios of issue 11 and report them.

    python -m bench                 every scenario, full sizes, 3 runs each (~15 min on 2 cores)
    python -m bench --smoke         every scenario at tiny sizes, 1 run, no thresholds (< 3 min)
    python -m bench --only codec,resume --runs 5
    python -m bench --only ingest-single,mixed   webhooks one frame a request, and with sockets
    python -m bench --only sessions --dialects signalwire --sessions 100,1000
                                    one dialect's owned sessions, at those sizes
    python -m bench --profile       also profile the gateway's hot paths (py-spy, tracemalloc)
    python -m bench --instructions  also count the codec's instructions per frame (callgrind,
                                    ~3 min; `--only instructions` for that alone)
    python -m bench --only shards   one gateway on a Redis Cluster of 1 and of 3 primaries
                                    (ingest events/s, fan-out deliveries/s; ~1 min)
    python -m bench --python /usr/bin/python3.11
                                    every process on that CPython (bench/.venv made on it)

On first use it makes `bench/.venv` (uv.lock's `bench` group: python-socketio, Starlette,
broadcaster, uvicorn, pydantic, matplotlib, py-spy; plus this project, editable) and re-runs itself
there. Results: `bench/results/<stamp>.json` (and `latest.json`); a full run also rewrites the
generated part of `docs/benchmarks.md` and the plots in `docs/benchmarks/`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, VENV, raise_fd_limit

SCENARIOS = ("codec", "ingest", "ingest-single", "fanout", "mixed", "idle", "resume", "sessions")
OPTIONAL = ("instructions", "shards")
"""Scenarios run only when `--only` names them."""


# -- the bench venv ----------------------------------------------------------------------------


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv(interpreter: str | None, quiet: bool = True) -> None:
    """Make or refresh bench/.venv on `interpreter`, then re-run this command inside it.
    Every process of a run (gateway, peers, load, codec workers) is the venv's Python, so all
    sides of a comparison run on one build. Without `interpreter` the venv stays on the one it
    was made on (at first use: this one); a venv made on another than the one named is made
    again: a CPython build's options (PGO, LTO, a shared libpython) move these numbers by a
    tenth or more."""
    if _in_venv() or os.environ.get("BENCH_NO_VENV"):
        return
    python = VENV / "bin" / "python"
    base = os.path.realpath(shutil.which(interpreter) or interpreter) if interpreter else None
    base = base or (_venv_base() if python.exists() else None)
    base = base or os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if python.exists() and _venv_base() != base:
        print(f"bench: making bench/.venv again, on {base}", file=sys.stderr, flush=True)
        shutil.rmtree(VENV)
    lock = ROOT / "uv.lock"
    digest = hashlib.sha256(lock.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / f".installed-{digest[:16]}"
    if not python.exists():
        print(f"bench: creating bench/.venv on {base}", file=sys.stderr, flush=True)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists():
        print("bench: installing the peers (uv.lock) into bench/.venv", file=sys.stderr, flush=True)
        # The lock's runtime and `bench` group, the project editable: `./dev uv` is the pinned uv.
        argv = [str(ROOT / "dev"), "uv", "sync", "--locked", "--group", "bench", "--python", base]
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENV)}
        log = None if not quiet else open(VENV / "install.log", "w")  # noqa: SIM115
        try:
            subprocess.run(argv, check=True, stdout=log, stderr=log, env=env, cwd=ROOT)
        except subprocess.CalledProcessError:
            if log is not None:
                log.close()
                sys.stderr.write((VENV / "install.log").read_text()[-4000:])
            raise
        if log is not None:
            log.close()
        for old in VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    os.execve(str(python), [str(python), "-m", "bench", *sys.argv[1:]], env)


def _venv_base() -> str | None:
    """The interpreter bench/.venv was made on (`executable` in its pyvenv.cfg)."""
    try:
        lines = (VENV / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "executable":
            return os.path.realpath(value.strip())
    return None


def ensure_redis() -> None:
    """redis-server from Debian's packages when it is missing (as `./dev test` does)."""
    if shutil.which("redis-server"):
        return
    print("bench: redis-server not found; installing it from Debian's packages", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip


# -- sizes -------------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> dict[str, Any]:
    if args.smoke:
        return {
            "runs": args.runs or 1,
            "codec_seconds": 0.1,
            "ingest_seconds": 0.5,
            "ingest_batch": 100,
            "ingest_paced_rate": 200,
            "fanout_subs": [1, 4],
            "shards_subs": 4,
            "fanout_seconds": 0.5,
            "paced_rate": 500,
            "mixed_subs": 20,
            "mixed_conversations": 4,
            "mixed_rate": 50,
            "mixed_seconds": 0.5,
            "idle_sizes": [20],
            "idle_kinds": {"gateway": [20], "floor": [20], "socketio": [20], "broadcaster": [20]},
            "resume_events": 300,
            "sessions_sizes": [20],
            "sessions_settle": 0.5,
            "sessions_idle": 1.0,
            "sessions_probes": 5,
        }
    return {
        "runs": args.runs or 3,
        "codec_seconds": 1.0,
        "ingest_seconds": 3.0,
        "ingest_batch": 100,
        "ingest_paced_rate": 500,
        "fanout_subs": [1, 100, 1000],
        "shards_subs": 100,
        "fanout_seconds": 3.0,
        "paced_rate": 10_000,
        "mixed_subs": 1000,
        "mixed_conversations": 100,
        "mixed_rate": 200,
        "mixed_seconds": 3.0,
        "idle_sizes": [1000, 10_000],
        "idle_kinds": {  # the peers at the smaller size only: they are not what is judged
            "gateway": [1000, 10_000],
            "floor": [1000, 10_000],
            "socketio": [1000],
            "broadcaster": [1000],
        },
        "resume_events": 10_000,
        "sessions_sizes": [100, 1000, 5000],
        "sessions_settle": 3.0,
        "sessions_idle": 10.0,
        "sessions_probes": 100,
    }


# -- running the parts -------------------------------------------------------------------------


def run_json(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run a bench worker process and parse the JSON it prints last."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.monotonic() - started, 2)
    return result


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run (CI)")
    parser.add_argument("--runs", type=int, help="repetitions of each measurement")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios of {', '.join(SCENARIOS + OPTIONAL)} (default: all but "
        f"{', '.join(OPTIONAL)})",
    )
    parser.add_argument(
        "--dialects",
        help="comma-separated dialects the per-dialect scenarios (sessions) run (default: all)",
    )
    parser.add_argument(
        "--sessions",
        metavar="N,N",
        help="the sizes of the sessions scenario (default: 100,1000,5000; smoke: 20)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count the codec's instructions per frame (callgrind; needs valgrind)",
    )
    parser.add_argument(
        "--no-auth",
        dest="auth",
        action="store_false",
        help="run the gateway with GATEWAY_AUTH=none (default: JWT + signatures)",
    )
    parser.add_argument("--log-level", default="info", help="the gateway's log level (info)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the measurements, profile the gateway (py-spy, tracemalloc)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="the CPython that bench/.venv (every process of the run) is made on; default: the "
        "one it was made on, at first use this one. The recorded runs use a PGO+LTO build, as "
        "the container's image is",
    )
    parser.add_argument("--verbose-install", action="store_true")
    args = parser.parse_args(argv)
    ensure_redis()
    ensure_venv(args.python, quiet=not args.verbose_install)
    raise_fd_limit()
    build = "pure Python"

    from bench import report, scenarios

    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if args.instructions and "instructions" not in only:
        only.append("instructions")
    unknown = set(only) - set(SCENARIOS) - set(OPTIONAL)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    sizes = plan(args)
    if args.dialects:
        dialects = [d.strip() for d in args.dialects.split(",") if d.strip()]
        unknown = set(dialects) - set(scenarios.DIALECTS)
        if unknown:
            parser.error(f"unknown dialects: {', '.join(sorted(unknown))}")
        sizes["dialects"] = dialects
    if args.sessions:
        try:
            sizes["sessions_sizes"] = [int(n) for n in args.sessions.split(",") if n.strip()]
        except ValueError:
            parser.error(f"--sessions: not whole numbers: {args.sessions!r}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    outdir = RESULTS / (stamp + ("-smoke" if args.smoke else ""))
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "stamp": stamp,
        "smoke": args.smoke,
        "auth": args.auth,
        "log_level": args.log_level,
        "sizes": sizes,
        "machine": {**report.machine(), "build": build},
    }
    started = time.monotonic()
    ctx = scenarios.Context(outdir, sizes, args.auth, args.log_level, run_json, say)
    for name in only:
        say(f"== {name}")
        t0 = time.monotonic()
        results[name] = getattr(scenarios, name.replace("-", "_"))(ctx)
        results[name + "_wall_s"] = round(time.monotonic() - t0, 1)
        (outdir / "results.json").write_text(json.dumps(results, indent=1))
    if args.profile:
        say("== profiles")
        results["profiles"] = scenarios.profiles(ctx)
    results["wall_s"] = round(time.monotonic() - started, 1)
    (outdir / "results.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=1))
    say("")
    say(report.text(results))
    # The generated section is one whole run's: a run of some scenarios leaves it alone.
    write_docs = not args.smoke and not args.no_docs and set(SCENARIOS) <= set(only)
    plots_dir = (ROOT / "docs" / "benchmarks") if write_docs else outdir
    report.plots(results, plots_dir)
    if write_docs:
        report.update_docs(results, ROOT / "docs" / "benchmarks.md")
    else:
        (outdir / "tables.md").write_text(report.markdown(results))
    say(f"results: {outdir.relative_to(ROOT)}/results.json ({results['wall_s']} s)")
    broken = report.failures(results)
    for name, problems in broken.items():
        for problem in problems:
            say(f"FAILED {name}: {problem}")
    failed = sum(1 for problems in broken.values() if problems)
    say(f"bench: {len(broken) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
