"""Webhook load, one process: `python -m bench.loadgen {ingest-single,mixed} …`.

Both scenarios post one Wonderful frame per request, as platforms do, through `HTTPConn`: one
keep-alive HTTP/1.1 connection as a bare asyncio `Protocol`, one request in flight, the reply
read by its `Content-Length` and never parsed as JSON. Every server is driven by the same
client, so the client's cost is the same for all; the servers of a run are all up at once and
take their rounds in turn (`rounds`), so a change of the host's speed moves every side alike.

Latency is measured from when a request was due, not from when it could be sent: under the
paced load a request waiting for a free connection counts its wait.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

from bench.auth import signed
from bench.common import percentile
from bench.wsclient import Stats

DIALECT = "wonderful"
PATH = f"/v1/dialects/{DIALECT}/events"


class HTTPConn(asyncio.Protocol):
    """One keep-alive connection; `request(raw)` sends a whole request and returns its status."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.want = -1  # bytes of the whole reply, once its head is in
        self.status = 0
        self.waiter: asyncio.Future[int] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.want < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            self.status = int(head[9:12])
            start = head.find(b"content-length:")
            length = int(head[start + 15 : head.find(b"\r\n", start)]) if start >= 0 else 0
            self.want = end + 4 + length
        if len(self.buf) >= self.want:
            del self.buf[: self.want]
            self.want = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(self.status)

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(base: str) -> HTTPConn:
    host, _, port = base.split("://", 1)[1].partition(":")
    _, conn = await asyncio.get_running_loop().create_connection(HTTPConn, host, int(port))
    return conn


def post(body: bytes, sign: bool, host: bytes = b"127.0.0.1") -> bytes:
    """A whole `POST` of `body` to the ingest path (signed now, when `sign`)."""
    head = [
        b"POST " + PATH.encode() + b" HTTP/1.1",
        b"Host: " + host,
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
    ]
    if sign:
        head += [f"{k}: {v}".encode() for k, v in signed(body).items()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class Target:
    """One server under test: its name (`floor`, `gateway`, `gateway-signed`), URL, and whether
    its webhooks are signed (names ending in `signed`)."""

    def __init__(self, spec: str) -> None:
        self.name, _, self.url = spec.partition("=")
        self.sign = self.name.endswith("signed")


def rounds(targets: list[Target], runs: int) -> Iterator[tuple[int, Target]]:
    """(run, target) in turn, the order rotated each run so no server always goes first."""
    for run in range(runs):
        shift = run % len(targets)
        for target in targets[shift:] + targets[:shift]:
            yield run, target


def latency(samples: list[int]) -> dict[str, float]:
    lat = sorted(samples)
    return {
        "p50_ms": percentile(lat, 0.5) / 1e6,
        "p99_ms": percentile(lat, 0.99) / 1e6,
        "max_ms": lat[-1] / 1e6 if lat else float("nan"),
        "samples": len(lat),
    }


class Frames:
    """Unique frames (`frame` of `bench.loadgen`) for conversations `<prefix>-<k>`."""

    def __init__(self, prefix: str) -> None:
        from bench.loadgen import frame

        self.frame = frame
        self.prefix = prefix
        self.n = 0

    def next(self, k: int) -> bytes:
        self.n += 1
        return self.frame(f"e{self.n}", f"{self.prefix}-{k}", time.monotonic_ns())


async def saturate(
    target: Target, concurrency: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """`concurrency` connections, each posting its next frame as soon as the last is answered."""
    conns = [await connect(target.url) for _ in range(concurrency)]
    frames = Frames(f"sat-{uuid.uuid4().hex[:8]}")
    state = {"measuring": False, "done": 0, "errors": 0}
    samples: list[int] = []
    deadline = time.monotonic() + warmup + seconds

    async def worker(k: int, conn: HTTPConn) -> None:
        while time.monotonic() < deadline:
            raw = post(frames.next(k), target.sign)
            sent = time.monotonic_ns()
            status = await conn.request(raw)
            if status != 202:
                state["errors"] += 1
            elif state["measuring"]:
                state["done"] += 1
                samples.append(time.monotonic_ns() - sent)

    tasks = [asyncio.create_task(worker(k, c)) for k, c in enumerate(conns)]
    await asyncio.sleep(warmup)
    state["measuring"] = True
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    state["measuring"] = False
    elapsed = time.monotonic() - t0
    await asyncio.gather(*tasks)
    for conn in conns:
        conn.close()
    return {
        "requests_per_s": state["done"] / elapsed,
        "errors": state["errors"],
        "seconds": elapsed,
        **latency(samples),
    }


async def paced(
    target: Target,
    rate: float,
    seconds: float,
    conversations: list[str] | None = None,
    pool: int = 64,
) -> dict[str, Any]:
    """`rate` requests a second for `seconds`, each on a free connection of `pool`; frames go
    to `conversations` (session ids) in turn, or to conversations of their own."""
    from bench.loadgen import frame

    conns = [await connect(target.url) for _ in range(pool)]
    free: asyncio.Queue[HTTPConn] = asyncio.Queue()
    for conn in conns:
        free.put_nowait(conn)
    tag = uuid.uuid4().hex[:8]
    sessions = conversations or [f"pace-{tag}-{k}" for k in range(pool)]
    samples: list[int] = []
    errors = 0

    async def one(k: int, due_ns: int) -> None:
        nonlocal errors
        conn = await free.get()
        try:
            body = frame(f"p{tag}-{k}", sessions[k % len(sessions)], due_ns)
            if await conn.request(post(body, target.sign)) != 202:
                errors += 1
            samples.append(time.monotonic_ns() - due_ns)
        finally:
            free.put_nowait(conn)

    count = int(rate * seconds)
    start, start_ns = time.monotonic(), time.monotonic_ns()
    tasks = []
    for k in range(count):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k, start_ns + int(k * 1e9 / rate))))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    for conn in conns:
        conn.close()
    return {
        "rate": rate,
        "requests_per_s": count / elapsed,
        "errors": errors,
        "seconds": elapsed,
        **latency(samples),
    }


def _cpu(pids: dict[str, int], target: Target) -> dict[str, int]:
    """The processes whose CPU a round of `target` reports: its server, Redis (and the client)."""
    return {"server": pids[target.name], **({"redis": pids["redis"]} if "redis" in pids else {})}


async def ingest_single(args: argparse.Namespace) -> dict[str, Any]:
    """Each target in turn: a saturation round (`concurrency` connections), then a paced one
    (`rate` requests/s), both timed per request, CPU per process over each round."""
    from bench.loadgen import cpu_of, cpu_share

    targets = [Target(spec) for spec in args.target]
    out: dict[str, Any] = {t.name: {"runs": []} for t in targets}
    for run, target in rounds(targets, args.runs):
        pids = _cpu(args.pids, target)
        c0, t0 = cpu_of(pids), time.monotonic()
        sat = await saturate(target, args.concurrency, args.seconds, args.warmup)
        sat["cpu"] = cpu_share(c0, cpu_of(pids), time.monotonic() - t0)
        c0, t0 = cpu_of(pids), time.monotonic()
        pace = await paced(target, args.rate, args.seconds)
        pace["cpu"] = cpu_share(c0, cpu_of(pids), time.monotonic() - t0)
        out[target.name]["runs"].append({"run": run, "saturation": sat, "paced": pace})
    return out


async def mixed(args: argparse.Namespace) -> dict[str, Any]:
    """Per target: `subs` sockets subscribed over `conversations` conversations (connected
    once, before any round), then rounds of webhooks at `rate`/s spread over those
    conversations, each round reporting the webhooks' latency and the deliveries'."""
    from bench.loadgen import cpu_of, cpu_share, drain, open_many

    targets = [Target(spec) for spec in args.target]
    tag = uuid.uuid4().hex[:8]
    sessions = [f"mix-{tag}-{c}" for c in range(args.conversations)]
    per = {t.name: Stats() for t in targets}
    sockets = {}
    connect_s = {}
    for target in targets:
        kind = "floor" if target.name == "floor" else "gateway"
        wanted = [f"{DIALECT}:{sessions[i % len(sessions)]}" for i in range(args.subs)]
        started = time.monotonic()
        sockets[target.name] = await open_many(kind, target.url, per[target.name], wanted,
                                               args.auth)  # fmt: skip
        connect_s[target.name] = round(time.monotonic() - started, 2)
        for sock in sockets[target.name]:
            sock.counting = True
    fanout = args.subs / len(sessions)
    out: dict[str, Any] = {
        t.name: {"runs": [], "connect_s": connect_s[t.name], "sockets": args.subs} for t in targets
    }
    for run, target in rounds(targets, args.runs):
        stats = per[target.name]
        expected = stats.delivered + round(args.rate * args.seconds) * fanout
        stats.latencies, stats.record = [], True
        pids = _cpu(args.pids, target)
        c0, t0 = cpu_of(pids), time.monotonic()
        hooks = await paced(target, args.rate, args.seconds, sessions)
        drained = await drain(stats, int(expected))
        stats.record = False
        elapsed = time.monotonic() - t0
        deliveries = latency(stats.latencies)
        out[target.name]["runs"].append(
            {
                "run": run,
                "webhooks": hooks,
                "deliveries": {
                    **deliveries,
                    "per_s": deliveries["samples"] / elapsed,
                    "missing": 0 if drained else int(expected) - stats.delivered,
                },
                "closed": stats.closed,
                "cpu": cpu_share(c0, cpu_of(pids), elapsed),
            }
        )
        stats.delivered = max(stats.delivered, int(expected))
    for socks in sockets.values():
        for sock in socks:
            sock.close()
    return out
