"""Shared helpers: paths, ports, processes, Redis, the gateway, /proc readings and statistics."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV = BENCH / ".venv"
HOST = "127.0.0.1"  # everything binds here and only here
START_S = 60.0
"""How long a server (Redis, the gateway, a peer) may take to listen: on a shared 2-core host
under load, a gateway's start has taken more than 20 s."""


def raise_fd_limit(want: int = 65536) -> int:
    """Raise this process's soft fd limit as far as the hard limit allows; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout}s")


class Proc:
    """A child process that is always stopped (SIGTERM, then SIGKILL) when the block ends."""

    def __init__(
        self, name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def redis_server(logdir: Path) -> Iterator[tuple[str, Proc]]:
    """A private redis-server on a free loopback port, no persistence. Yields (url, process)."""
    port = free_port()
    argv = [
        "redis-server", "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
        "--protected-mode", "yes", "--maxclients", "20000", "--dir", str(logdir),
    ]  # fmt: skip
    with Proc("redis", argv, logdir / "redis.log") as proc:
        wait_port(port, START_S, proc=proc.popen)
        yield f"redis://{HOST}:{port}/0", proc


def python() -> str:
    return sys.executable


@contextlib.contextmanager
def gateway(
    redis_url: str,
    logdir: Path,
    log_level: str = "info",
    auth: bool = True,
    tracemalloc: Path | None = None,
    env: dict[str, str] | None = None,
    name: str = "gateway",
) -> Iterator[tuple[str, Proc]]:
    """The gateway (Redis engine) as its own process. Yields (base URL, process).

    Default settings except a short drain on SIGTERM (and what `bench.auth` sets, and `env`);
    `tracemalloc` turns on the allocation tracing of `bench.run_gateway`; `name` names its log
    (`<name>.log`) when a scenario runs more than one."""
    port = free_port()
    argv = [
        python(), "-m", "bench.run_gateway", "serve", "--host", HOST, "--port", str(port),
        "--redis-url", redis_url, "--log-format", "json", "--log-level", log_level,
    ]  # fmt: skip
    from bench.auth import gateway_env

    settings = {"GATEWAY_SHUTDOWN_TIMEOUT_S": "2", **gateway_env(auth), **(env or {})}
    if tracemalloc is not None:
        settings["BENCH_TRACEMALLOC"] = str(tracemalloc)
    with Proc(name, argv, logdir / f"{name}.log", settings) as proc:
        wait_port(port, START_S, proc=proc.popen)
        yield f"http://{HOST}:{port}", proc


@contextlib.contextmanager
def peer(kind: str, redis_url: str, logdir: Path) -> Iterator[tuple[str, Proc]]:
    """A reference server (`floor`, `socketio`, `broadcaster`) as its own process."""
    port = free_port()
    argv = [python(), "-m", f"bench.servers.{kind}", "--port", str(port), "--redis", redis_url]
    with Proc(kind, argv, logdir / f"{kind}.log") as proc:
        wait_port(port, START_S, proc=proc.popen)
        yield f"http://{HOST}:{port}", proc


@contextlib.contextmanager
def emulator(dialect: str, logdir: Path, timeout: float = 20.0) -> Iterator[dict[str, Any]]:
    """A dialect's platform emulator as its own process (`bench.emulator`). Yields what it
    wrote, `{"settings": {url, options…}, "scripted_delay_s"}`, and its `pid`."""
    import json

    out = logdir / f"emulator-{dialect}.json"
    out.unlink(missing_ok=True)
    argv = [python(), "-m", "bench.emulator", dialect, "--out", str(out)]
    with Proc(f"emulator-{dialect}", argv, logdir / f"emulator-{dialect}.log") as proc:
        deadline = time.monotonic() + timeout
        while not out.exists():
            if proc.popen.poll() is not None:
                raise RuntimeError(f"the {dialect} emulator exited with {proc.popen.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {dialect} emulator did not come up in {timeout}s")
            time.sleep(0.05)
        yield {**json.loads(out.read_text()), "pid": proc.pid}


def dialect_env(dialect: str, table: dict[str, str]) -> dict[str, str]:
    """`GATEWAY_<DIALECT>_*` for a `[dialects.<dialect>]` table (`url` and options)."""
    return {f"GATEWAY_{dialect.upper()}_{key.upper()}": value for key, value in table.items()}


def flush(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()
    finally:
        client.close()


# -- /proc -----------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -- statistics ------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of several runs."""
    clean = [v for v in values if v is not None]
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {
        "median": statistics.median(clean),
        "min": min(clean),
        "max": max(clean),
        "n": len(clean),
    }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def fmt(value: float, unit: str = "") -> str:
    if value != value:  # nan
        return "n/a"
    for bound, suffix, div in ((1e6, "M", 1e6), (1e4, "k", 1e3)):
        if abs(value) >= bound:
            return f"{value / div:.1f}{suffix}{unit}"
    if abs(value) >= 100:
        return f"{value:.0f}{unit}"
    return f"{value:.3g}{unit}"


def fmt_summary(s: dict[str, float], unit: str = "") -> str:
    return f"{fmt(s['median'], unit)} ({fmt(s['min'])}–{fmt(s['max'])})"
