"""Webhook load, one process: `python -m bench.loadgen {ingest-single,mixed} …`.

Both scenarios post one Wonderful frame per request, as platforms do, through `HTTPConn`: one
keep-alive HTTP/1.1 connection as a bare asyncio `Protocol`, one request in flight, the reply
read by its `Content-Length` and never parsed as JSON. Every server is driven by the same
client, so the client's cost is the same for all; the servers of a run are all up at once and
take their rounds in turn (`rounds`), so a change of the host's speed moves every side alike.

Requests are built (and signed, for a signed server) before the round that sends them and
before its CPU is read: the client's own cost a request is then the same for every server,
signed or not. Signatures stay valid for the gateway's window (300 s), far longer than a round.

Latency is measured from when a request was due, not from when it could be sent: under the
paced load a request waiting for a free connection counts its wait. The paced load of
`ingest-single` comes in slices that take turns between the servers; a server's paced p99 in a
run is the median of its slices' (`sliced`), its pooled p99 and maximum beside it.
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

    def next(self, k: int, at_ns: int = 0) -> bytes:
        self.n += 1
        return self.frame(f"e{self.n}", f"{self.prefix}-{k}", at_ns or time.monotonic_ns())


_fastest = {"requests_per_s": 6000.0}
"""The most requests/s any server reached at saturation so far: how many requests to build
before the next saturation round."""


async def saturate(
    target: Target, concurrency: int, seconds: float, warmup: float, pids: dict[str, int]
) -> dict[str, Any]:
    """`concurrency` connections, each posting its next frame as soon as the last is answered.

    Every request (signed, for a signed target) is built before the round and before its CPU
    is read: during the round the client only writes and reads, the same for every server. A
    connection that uses up its share builds more as it goes (`built_late` counts them)."""
    from bench.loadgen import cpu_of, cpu_share

    conns = [await connect(target.url) for _ in range(concurrency)]
    frames = Frames(f"sat-{uuid.uuid4().hex[:8]}")
    share = int(1.5 * _fastest["requests_per_s"] * (warmup + seconds) / concurrency) + 1
    ready = [[post(frames.next(k), target.sign) for _ in range(share)] for k in range(concurrency)]
    state = {"measuring": False, "done": 0, "errors": 0, "late": 0}
    samples: list[int] = []
    c0, t_start = cpu_of(pids), time.monotonic()
    deadline = t_start + warmup + seconds

    async def worker(k: int, conn: HTTPConn) -> None:
        mine = iter(ready[k])
        while time.monotonic() < deadline:
            raw = next(mine, None)
            if raw is None:
                state["late"] += 1
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
    cpu = cpu_share(c0, cpu_of(pids), time.monotonic() - t_start)
    for conn in conns:
        conn.close()
    rate = state["done"] / elapsed
    _fastest["requests_per_s"] = max(_fastest["requests_per_s"], rate)
    return {
        "requests_per_s": rate,
        "errors": state["errors"],
        "built_late": state["late"],
        "seconds": elapsed,
        "cpu": cpu,
        **latency(samples),
    }


class Pool:
    """`size` open connections to one server, lent one request at a time."""

    def __init__(self, conns: list[HTTPConn]) -> None:
        self.conns = conns
        self.free: asyncio.Queue[HTTPConn] = asyncio.Queue()
        for conn in conns:
            self.free.put_nowait(conn)

    @classmethod
    async def open(cls, url: str, size: int) -> Pool:
        return cls([await connect(url) for _ in range(size)])

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


_lead = {"s": 0.3}
"""How far ahead of its first request a paced round starts, so that its requests, built (and
signed) for their due times, are ready before the first is due: twice the last build's time."""


async def paced(
    target: Target,
    rate: float,
    seconds: float,
    conversations: list[str] | None = None,
    pool: Pool | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """`rate` requests a second for `seconds`, each on a free connection of `pool` (64 of its
    own when not given); frames go to `conversations` (session ids) in turn, or to
    conversations of their own. Each request carries its due time and is built (and signed)
    before the round starts, so a signed request's latency holds none of the client's
    signing. `keep`: the latencies themselves too (`_lat`, ns), for `sliced`."""
    from bench.loadgen import frame

    own = pool is None
    lender = pool if pool is not None else await Pool.open(target.url, 64)
    tag = uuid.uuid4().hex[:8]
    sessions = conversations or [f"pace-{tag}-{k}" for k in range(len(lender.conns))]
    count = int(rate * seconds)
    while True:
        built_at = time.monotonic_ns()
        start_ns = built_at + int(_lead["s"] * 1e9)
        due = [start_ns + int(k * 1e9 / rate) for k in range(count)]
        ready = [post(frame(f"p{tag}-{k}", sessions[k % len(sessions)], due[k]), target.sign)
                 for k in range(count)]  # fmt: skip
        took = (time.monotonic_ns() - built_at) / 1e9
        if time.monotonic_ns() < start_ns:
            _lead["s"] = max(0.05, 2 * took)
            break
        _lead["s"] = 2 * took  # built too late for its own start: again, further ahead
    samples: list[int] = []
    errors = 0

    async def one(k: int) -> None:
        nonlocal errors
        conn = await lender.free.get()
        try:
            if await conn.request(ready[k]) != 202:
                errors += 1
            samples.append(time.monotonic_ns() - due[k])
        finally:
            lender.free.put_nowait(conn)

    tasks = []
    for k in range(count):
        delay = (due[k] - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    elapsed = (time.monotonic_ns() - start_ns) / 1e9
    if own:
        lender.close()
    return {
        "rate": rate,
        "requests_per_s": count / elapsed,
        "errors": errors,
        "seconds": elapsed,
        **latency(samples),
        **({"_lat": samples} if keep else {}),
    }


def sliced(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's paced slices of a run as one result: `p50_ms` and `p99_ms` the medians of
    the slices' (a stall of the host spoils the slice it falls in, not the run's figure), and
    beside them what every sample of the run gives together (`p99_pooled_ms`, `max_ms`), so a
    tail that comes back is still seen."""
    import statistics

    pooled = sum(s["samples"] for s in slices)
    return {
        "rate": slices[0]["rate"],
        "requests_per_s": statistics.median(s["requests_per_s"] for s in slices),
        "errors": sum(s["errors"] for s in slices),
        "seconds": sum(s["seconds"] for s in slices),
        "p50_ms": statistics.median(s["p50_ms"] for s in slices),
        "p99_ms": statistics.median(s["p99_ms"] for s in slices),
        "p99_pooled_ms": _pooled_p99(slices),
        "max_ms": max(s["max_ms"] for s in slices),
        "samples": pooled,
        "slices_p99_ms": [round(s["p99_ms"], 3) for s in slices],
    }


def _pooled_p99(slices: list[dict[str, Any]]) -> float:
    lat = sorted(x for s in slices for x in s["_lat"])
    return percentile(lat, 0.99) / 1e6


def _cpu(pids: dict[str, int], target: Target) -> dict[str, int]:
    """The processes whose CPU a round of `target` reports: its server, Redis (and the client)."""
    return {"server": pids[target.name], **({"redis": pids["redis"]} if "redis" in pids else {})}


async def ingest_single(args: argparse.Namespace) -> dict[str, Any]:
    """Per run: a saturation round of each target in turn (`concurrency` connections), then
    the paced load (`rate` requests/s, `paced_seconds` a target) in `slices` slices, the
    targets' slices taking turns, so a stall of the host spoils one slice of one server, not
    a server's whole paced figure (`sliced`). CPU per process over each round."""
    from bench.loadgen import cpu_of, cpu_share

    targets = [Target(spec) for spec in args.target]
    out: dict[str, Any] = {t.name: {"runs": []} for t in targets}
    for run in range(args.runs):
        shift = run % len(targets)
        order = targets[shift:] + targets[:shift]
        sat = {}
        for target in order:
            sat[target.name] = await saturate(
                target, args.concurrency, args.seconds, args.warmup, _cpu(args.pids, target)
            )
        pools = {t.name: await Pool.open(t.url, 64) for t in targets}
        slices: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        cpu: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
        for k in range(args.slices):
            for target in order[k % len(order) :] + order[: k % len(order)]:
                pids = _cpu(args.pids, target)
                c0, t0 = cpu_of(pids), time.monotonic()
                result = await paced(target, args.rate, args.paced_seconds / args.slices,
                                     pool=pools[target.name], keep=True)  # fmt: skip
                cpu[target.name].append(cpu_share(c0, cpu_of(pids), time.monotonic() - t0))
                slices[target.name].append(result)
        for pool in pools.values():
            pool.close()
        for target in targets:
            pace = sliced(slices[target.name])
            pace["cpu"] = cpu[target.name][len(cpu[target.name]) // 2]
            out[target.name]["runs"].append(
                {"run": run, "saturation": sat[target.name], "paced": pace}
            )
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
