"""Load clients, one process each: `python -m bench.loadgen {ingest,fanout,idle,resume,
ingest-single,mixed} …` (the last two in `bench.webhooks`).

Each prints one JSON object (its runs) on stdout. Every loop is bounded by a count and a
deadline and stops by itself. Servers are reached on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from bench import webhooks
from bench.auth import signed, token
from bench.common import cpu_seconds, percentile, raise_fd_limit, rss_bytes
from bench.wsclient import Stats, WSProtocol, connect

DIALECT = "wonderful"
PAD = b"t=" + b"0" * 19
PUBLISHERS = 4  # concurrent publishing tasks at saturation


def frame(event_id: str, session: str, now_ns: int) -> bytes:
    """A realistic Wonderful `message` webhook frame (the fixture `message_text_agent`'s shape),
    its text carrying the send time for the latency probes."""
    return (
        b'{"type":"message","data":{"eventId":"%s","sessionId":"%s","speaker":"agent",'
        b'"locale":"en-US","data":{"type":"text","text":"t=%019d Hi! How can I help you '
        b'today?"},"metadata":{"intent":"greeting"},"timestamp":"2024-02-02T13:00:00.000Z"}}'
        % (event_id.encode(), session.encode(), now_ns)
    )


def canonical(session: str) -> bytes:
    """The stored form the gateway makes of `frame` (seq 1, time zeroed): what the reference
    servers carry, byte for byte the same size."""
    from gateway.adapter import Registry
    from gateway.hub import wire

    adapter = Registry.load([DIALECT]).get(DIALECT)
    event = adapter.decode(frame("e-0", session, 0)).events[0]
    return wire.encode_stored(event, 1, "0a1b2c3d")


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = cpu_seconds(pid)
        except OSError:
            out[name] = float("nan")
    out["client"] = sum(os.times()[:2])
    return out


def cpu_share(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Cores each process used over the window (1.0 = one core busy)."""
    return {k: round((after[k] - before[k]) / seconds, 3) for k in before}


# ---------------------------------------------------------------------------------------------
# ingest


class _Tally:
    def __init__(self, workers: int) -> None:
        self.counts = [0] * workers
        self.errors = 0
        self.measuring = False


async def ingest(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp
    import redis.asyncio as aioredis

    batch = args.batch
    runs = []
    payload_tpl = canonical("ingest") if args.target == "bare" else b""
    redis = aioredis.Redis.from_url(args.redis, max_connections=args.concurrency + 4)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.concurrency + 4),
        timeout=aiohttp.ClientTimeout(total=30),
    )
    url = f"{args.url}/v1/dialects/{DIALECT}/events"
    try:
        for run in range(args.runs):
            tag = uuid.uuid4().hex[:8]
            tally = _Tally(args.concurrency)

            async def gateway_worker(
                k: int, deadline: float, tag: str = tag, tally: _Tally = tally
            ) -> None:
                sid = f"ing-{tag}-{k}"
                n = 0
                while time.monotonic() < deadline:
                    now = time.monotonic_ns()
                    frames = [frame(f"e{n + i}", sid, now) for i in range(batch)]
                    n += batch
                    body = frames[0] if batch == 1 else b"[" + b",".join(frames) + b"]"
                    headers = signed(body) if args.auth else {}
                    async with session.post(url, data=body, headers=headers) as response:
                        reply = await response.read()
                    if response.status != 202 or json.loads(reply)["accepted"] != batch:
                        tally.errors += 1
                        continue
                    if tally.measuring:
                        tally.counts[k] += batch

            async def bare_worker(
                k: int, deadline: float, tag: str = tag, tally: _Tally = tally
            ) -> None:
                conv = f"{DIALECT}:ing-{tag}-{k}"
                key, channel = "bench:{" + conv + "}:log", "bench:ev:" + conv
                while time.monotonic() < deadline:
                    now = b"t=%019d" % time.monotonic_ns()
                    pipe = redis.pipeline(transaction=False)
                    for _ in range(batch):
                        payload = payload_tpl.replace(PAD, now)
                        pipe.xadd(key, {"e": payload}, maxlen=10_000, approximate=True)
                        pipe.publish(channel, payload)
                    await pipe.execute()
                    if tally.measuring:
                        tally.counts[k] += batch

            worker = bare_worker if args.target == "bare" else gateway_worker
            deadline = time.monotonic() + args.warmup + args.seconds
            tasks = [asyncio.create_task(worker(k, deadline)) for k in range(args.concurrency)]
            await asyncio.sleep(args.warmup)
            tally.measuring = True
            t0, c0 = time.monotonic(), cpu_of(args.pids)
            await asyncio.sleep(args.seconds)
            tally.measuring = False
            t1, c1 = time.monotonic(), cpu_of(args.pids)
            done = sum(tally.counts)
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            runs.append(
                {
                    "run": run,
                    "events_per_s": done / (t1 - t0),
                    "errors": tally.errors,
                    "cpu": cpu_share(c0, c1, t1 - t0),
                }
            )
    finally:
        await session.close()
        await redis.aclose()
    return {"runs": runs}


# ---------------------------------------------------------------------------------------------
# subscribers and publishers of every server kind


def _subscribed_marker(kind: str) -> bytes:
    return b"431" if kind == "socketio" else b'"subscribed"'


def ws_path(auth: bool) -> str:
    return "/v1/ws?token=" + token() if auth else "/v1/ws"


async def open_subscriber(
    kind: str, base: str, stats: Stats, target: str, auth: bool = False
) -> WSProtocol:
    """A socket of server `kind` subscribed to `target` (a conversation or `wonderful:*`)."""
    ws_base = "ws://" + base.split("://", 1)[1]
    pattern = target.endswith("*")
    if kind == "gateway":
        proto = await connect(stats, ws_base + ws_path(auth))
        await proto.recv_until(b'"welcome"')
        proto.send_text(json.dumps({"op": "subscribe", "conversation": target}))
    elif kind in ("floor", "broadcaster"):
        query = ("pattern=" if pattern else "channel=") + target
        proto = await connect(stats, f"{ws_base}/ws?{query}")
    elif kind == "socketio":
        proto = await connect(stats, ws_base + "/socket.io/?EIO=4&transport=websocket")
        proto.eio = True
        await proto.recv_until(b"sid")  # engine.io open packet
        proto.send_text("40")
        await proto.recv_until(b"40")  # namespace connected
        proto.send_text(f'421["subscribe",{json.dumps(target)}]')
    else:
        raise ValueError(kind)
    await proto.recv_until(_subscribed_marker(kind), timeout=30)
    return proto


async def open_many(
    kind: str, base: str, stats: Stats, targets: list[str], auth: bool, parallel: int = 64
) -> list[WSProtocol]:
    gate = asyncio.Semaphore(parallel)

    async def one(target: str) -> WSProtocol:
        async with gate:
            for attempt in range(5):
                try:
                    return await open_subscriber(kind, base, stats, target, auth)
                except (OSError, TimeoutError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
            raise AssertionError("unreachable")

    return list(await asyncio.gather(*(one(t) for t in targets)))


class Publisher:
    """Puts `n` events into conversation `conv` of server `kind`, stamped with the send time."""

    def __init__(self, kind: str, base: str, redis_url: str, conv: str, auth: bool) -> None:
        self.kind, self.base, self.conv, self.auth = kind, base, conv, auth
        self.redis_url = redis_url
        self.sid = conv.split(":", 1)[1]
        self.n = 0

    async def __aenter__(self) -> Publisher:
        import aiohttp
        import redis.asyncio as aioredis

        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.redis = aioredis.Redis.from_url(self.redis_url)
        self.template = canonical(self.sid)
        if self.kind == "socketio":
            import socketio

            self.manager = socketio.AsyncRedisManager(
                self.redis_url, channel="bench", write_only=True
            )
            self.event_dict = msgspec.json.decode(self.template)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        await self.redis.aclose()
        if self.kind == "socketio":
            await self.manager.redis.aclose()

    async def publish(self, n: int) -> None:
        now = time.monotonic_ns()
        kind = self.kind
        first = self.n
        self.n += n  # reserved before any await: concurrent publishers never share an id
        if kind == "gateway":
            frames = [frame(f"e{first + i}", self.sid, now) for i in range(n)]
            body = frames[0] if n == 1 else b"[" + b",".join(frames) + b"]"
            url = f"{self.base}/v1/dialects/{DIALECT}/events"
            headers = signed(body) if self.auth else {}
            async with self.http.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"ingest answered {response.status}")
        elif kind in ("floor", "broadcaster"):
            channel = ("floor:" if kind == "floor" else "") + self.conv
            payload = self.template.replace(PAD, b"t=%019d" % now)
            if n == 1:
                await self.redis.publish(channel, payload)
            else:
                pipe = self.redis.pipeline(transaction=False)
                for _ in range(n):
                    pipe.publish(channel, payload)
                await pipe.execute()
        else:
            text = f"t={now:019d} Hi! How can I help you today?"
            data = {**self.event_dict, "content": {"kind": "text", "text": text}}
            for _ in range(n):
                await self.manager.emit("event", data, room=self.conv)


# ---------------------------------------------------------------------------------------------
# fan-out


async def wait_for(predicate: Callable[[], bool], stats: Stats, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        stats.progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stats.progress.wait(), min(left, 0.2))
    return True


async def drain(stats: Stats, expected: int, timeout: float = 15) -> bool:
    """Wait until `expected` deliveries were counted; False if they were not in time."""
    return await wait_for(lambda: stats.delivered >= expected, stats, timeout)


async def fanout(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    n_subs = args.subs
    session = f"fan-{uuid.uuid4().hex[:8]}"
    conv = f"{DIALECT}:{session}"
    target = f"{DIALECT}:*" if args.pattern else conv
    started = time.monotonic()
    subs = await open_many(args.kind, args.url, stats, [target] * n_subs, args.auth)
    connect_s = time.monotonic() - started
    for s in subs:
        s.counting = True
    runs = []
    published = 0
    async with Publisher(args.kind, args.url, args.redis, conv, args.auth) as pub:
        # Warm-up: every subscriber has seen an event before anything is measured.
        deadline = time.monotonic() + 20
        while min(s.count for s in subs) == 0 and time.monotonic() < deadline:
            await pub.publish(1)
            published += 1
            await asyncio.sleep(0.05)
        if min(s.count for s in subs) == 0:
            raise RuntimeError(f"{args.kind}: some subscribers got nothing in the warm-up")
        await drain(stats, published * n_subs)

        window = min(500, max(10, 20_000 // n_subs))
        batch = max(1, min(100, window // 4))
        for run in range(args.runs):
            result: dict[str, Any] = {"run": run}
            # -- saturation: `PUBLISHERS` tasks keep up to `window` events in flight
            base_delivered = stats.delivered
            sent = [0]
            t0, c0 = time.monotonic(), cpu_of(args.pids)
            end = t0 + args.seconds

            async def saturate(
                end: float = end, base: int = base_delivered, sent: list[int] = sent
            ) -> None:
                while time.monotonic() < end:
                    if sent[0] - (stats.delivered - base) / n_subs + batch > window:
                        stats.progress.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stats.progress.wait(), 0.5)
                        continue
                    sent[0] += batch
                    await pub.publish(batch)

            await asyncio.gather(*(saturate() for _ in range(PUBLISHERS)))
            t1, c1 = time.monotonic(), cpu_of(args.pids)
            result["deliveries_per_s"] = (stats.delivered - base_delivered) / (t1 - t0)
            result["cpu"] = cpu_share(c0, c1, t1 - t0)
            published += sent[0]
            drained = await drain(stats, published * n_subs)
            result["missing_after_saturation"] = (
                0 if drained else published * n_subs - stats.delivered
            )
            stats.delivered = published * n_subs if not drained else stats.delivered

            # -- paced: `rate` deliveries/s, latency of each delivery
            events_per_s = args.rate / n_subs
            tick = max(0.01, 1 / events_per_s)
            ticks = int(args.seconds / tick)
            stats.latencies = []
            stats.record = True
            base_delivered = stats.delivered
            start = time.monotonic()
            t_c0 = cpu_of(args.pids)
            paced = 0
            for k in range(ticks):
                delay = start + k * tick - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                due = round(events_per_s * (k + 1) * tick) - paced
                if due > 0:
                    await pub.publish(due)
                    paced += due
            published += paced
            drained = await drain(stats, published * n_subs)
            stats.record = False
            elapsed = time.monotonic() - start
            lat = sorted(stats.latencies)
            result.update(
                paced_target_per_s=args.rate,
                paced_per_s=(stats.delivered - base_delivered) / elapsed,
                paced_cpu=cpu_share(t_c0, cpu_of(args.pids), elapsed),
                p50_ms=percentile(lat, 0.5) / 1e6,
                p99_ms=percentile(lat, 0.99) / 1e6,
                max_ms=(lat[-1] / 1e6) if lat else float("nan"),
                samples=len(lat),
                missing_after_paced=0 if drained else published * n_subs - stats.delivered,
                closed=stats.closed,
            )
            if not drained:
                stats.delivered = published * n_subs
            runs.append(result)
    for s in subs:
        s.close()
    return {"connect_s": connect_s, "runs": runs}


# ---------------------------------------------------------------------------------------------
# idle connections


async def idle(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    tag = uuid.uuid4().hex[:6]
    targets = [f"{DIALECT}:idle-{tag}-{i}" for i in range(args.subs)]
    first = max(10, args.subs // 10)
    pid = args.pids["server"]
    started = time.monotonic()
    socks = await open_many(args.kind, args.url, stats, targets[:first], args.auth)
    await asyncio.sleep(args.settle)
    rss0 = rss_bytes(pid)
    if args.snapshot:  # the server's tracemalloc baseline (see bench.run_gateway)
        os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(2)
    socks += await open_many(args.kind, args.url, stats, targets[first:], args.auth)
    connect_s = time.monotonic() - started
    await asyncio.sleep(args.settle)
    rss1 = rss_bytes(pid)
    if args.snapshot:
        os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(5)
    alive = sum(1 for s in socks if not s.is_closed)
    for s in socks:
        s.close()
    added = args.subs - first
    return {
        "subs": args.subs,
        "rss_before": rss0,
        "rss_after": rss1,
        "bytes_per_socket": (rss1 - rss0) / added,
        "alive": alive,
        "connect_s": connect_s,
    }


# ---------------------------------------------------------------------------------------------
# resume


async def resume(args: argparse.Namespace) -> dict[str, Any]:
    import redis.asyncio as aioredis

    session = f"resume-{uuid.uuid4().hex[:8]}"
    conv = f"{DIALECT}:{session}"
    total = args.events
    async with Publisher("gateway", args.url, args.redis, conv, args.auth) as pub:
        left = total
        while left:
            n = min(100, left)
            await pub.publish(n)
            left -= n
    runs = []
    redis = aioredis.Redis.from_url(args.redis)
    key = "gw:{" + conv + "}:log"
    try:
        for run in range(args.runs):
            stats = Stats()
            ws_base = "ws://" + args.url.split("://", 1)[1]
            proto = await connect(stats, ws_base + ws_path(args.auth))
            await proto.recv_until(b'"welcome"')

            def on_text(p: WSProtocol, payload: bytes) -> bool:
                if b'"subscribed"' in payload:
                    p.counting = True
                return False

            proto.on_text = on_text
            t0 = time.monotonic()
            proto.send_text(json.dumps({"op": "subscribe", "conversation": conv, "since": 0}))
            ok = await wait_for(lambda p=proto: p.count >= total, stats, 60)
            replay_s = time.monotonic() - t0
            proto.close()
            # the floor: the same log read straight from Redis, in the hub's page size
            t0 = time.monotonic()
            after, got = "-", 0
            while True:
                rows = await redis.xrange(key, after, "+", count=500)
                got += len(rows)
                if len(rows) < 500:
                    break
                after = "(" + rows[-1][0].decode()
            xrange_s = time.monotonic() - t0
            runs.append(
                {
                    "run": run,
                    "replay_s": replay_s if ok else float("nan"),
                    "events": proto.count,
                    "xrange_s": xrange_s,
                    "xrange_events": got,
                }
            )
    finally:
        await redis.aclose()
    return {"events": total, "runs": runs}


# ---------------------------------------------------------------------------------------------


def _pids(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (p.split("=") for p in text.split(",") if p)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.loadgen")
    sub = parser.add_subparsers(dest="scenario", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default="")
    common.add_argument("--redis", required=True)
    common.add_argument("--runs", type=int, default=3)
    common.add_argument("--seconds", type=float, default=3.0)
    common.add_argument("--pids", type=_pids, default={})
    common.add_argument("--no-auth", dest="auth", action="store_false")

    p = sub.add_parser("ingest", parents=[common])
    p.add_argument("--target", choices=["gateway", "bare"], required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=float, default=0.5)

    p = sub.add_parser("fanout", parents=[common])
    p.add_argument("--kind", required=True)
    p.add_argument("--subs", type=int, required=True)
    p.add_argument("--pattern", action="store_true")
    p.add_argument("--rate", type=float, default=10_000)

    p = sub.add_parser("idle", parents=[common])
    p.add_argument("--kind", required=True)
    p.add_argument("--subs", type=int, required=True)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--snapshot", action="store_true", help="signal the server's tracemalloc")

    p = sub.add_parser("resume", parents=[common])
    p.add_argument("--events", type=int, default=10_000)

    # `bench.webhooks`: the servers of a run in turn, each `--target name=url`
    p = sub.add_parser("ingest-single", parents=[common])
    p.add_argument("--target", action="append", required=True)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rate", type=float, default=1000, help="paced requests/s")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--slices", type=int, default=5, help="paced slices a target, in turns")
    p.add_argument("--paced-seconds", type=float, default=6.0, help="paced time a target")

    p = sub.add_parser("mixed", parents=[common])
    p.add_argument("--target", action="append", required=True)
    p.add_argument("--subs", type=int, default=1000)
    p.add_argument("--conversations", type=int, default=100)
    p.add_argument("--rate", type=float, default=200, help="webhooks/s")

    args = parser.parse_args(argv)
    raise_fd_limit()
    scenario: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]] = {
        "ingest": ingest,
        "fanout": fanout,
        "idle": idle,
        "resume": resume,
        "ingest-single": webhooks.ingest_single,
        "mixed": webhooks.mixed,
    }[args.scenario]
    result = asyncio.run(scenario(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
