"""`python -m bench.sessions`: N owned vendor sessions on one gateway, measured (issue 24).

Against a running gateway (Redis engine, leases on) whose dialect points at its emulator (its
own process, `bench.emulator`), from frontend WebSockets:

1. start N conversations, at most `--inflight` starts outstanding (a frontend's own bound),
   a recoverable refusal retried with the same `ref` (`--attempts` tries in all): the time
   until every one is `started`, the retries and the final refusals by code;
2. let them settle (`--settle` seconds, then on while the gateway's CPU is still falling: the
   burst's tail, greetings decoded and published, is not what the idle window or the probes
   measure), then over an idle window: the gateway's RSS growth per session, its CPU per 1,000
   sessions, the lease renewals it made and the commands and CPU they cost Redis;
3. on `--probes` sessions spread over the whole set, a user's `send` each (`--probe-gap`
   apart): the time until the scripted agent's `echo: <text>` arrives (p50/p99), and the p99
   minus the script's own delay.

With `--emulator-pid`, the CPU of the gateway and of the emulator (the platform shares the
machine) in each phase, so a phase's cost is told apart from the platform's.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

import aiohttp
import msgspec
from gateway import heap

from bench.common import cpu_seconds, percentile, raise_fd_limit, rss_bytes

PER_SOCKET = 1000
"""Sessions started (and subscribed) through one frontend socket."""
SETTLE_WINDOW_S = 2.0
"""The windows in which the gateway's CPU is compared while the burst settles."""
IDLE_CORES = 0.02
"""A gateway below this much CPU has settled, whatever the windows before it (a few sessions'
noise falls by a fifth and more from one window to the next)."""


class Frontend:
    """One `/v1/ws` socket: replies by `ref`, and the agent's echoes by text."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.echoes: dict[str, asyncio.Future[float]] = {}
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = msgspec.json.decode(message.data)
            op = frame.get("op")
            if op == "event":
                content = frame["event"].get("content") or {}
                waiter = self.echoes.get(str(content.get("text", "")))
                if waiter is not None and not waiter.done():
                    waiter.set_result(time.monotonic())
            elif (ref := frame.get("ref")) in self.replies and op != "subscribed":
                waiter_ = self.replies[ref]
                if not waiter_.done():
                    waiter_.set_result(frame)

    async def request(self, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        ref = frame["ref"]
        future = self.replies[ref] = asyncio.get_running_loop().create_future()
        try:
            await self.ws.send_str(json.dumps(frame))
            return await asyncio.wait_for(future, timeout)
        finally:
            self.replies.pop(ref, None)


def redis_stats(url: str) -> dict[str, float]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("all")
    finally:
        client.close()
    return {
        "commands": float(info["total_commands_processed"]),
        "cpu_s": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
    }


async def renewals(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_session_lease_renewals_total")
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.auth import token

    ws_url = f"{args.url.replace('http', 'ws', 1)}/v1/ws"
    if args.auth:
        ws_url += f"?token={token()}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets = [
            Frontend(await http.ws_connect(ws_url, max_msg_size=0))
            for _ in range(max(1, -(-args.n // PER_SOCKET)))
        ]
        await asyncio.sleep(0.5)
        rss_before = rss_bytes(args.gateway_pid)
        tag = uuid.uuid4().hex[:8]
        gate = asyncio.Semaphore(args.inflight)
        retried: dict[str, int] = {}

        async def start(i: int) -> dict[str, Any]:
            frame = {
                "op": "start",
                "ref": f"s{i}",
                "dialect": args.dialect,
                "participant": {"from": f"bench-{tag}-{i}@example.com", "from_type": "email"},
            }
            if args.dialect == "signalwire":
                # A SignalWire conversation is the subscriber's with one address: N sessions
                # are N addresses (one address would join one conversation N times).
                frame["agent_id"] = f"bench-agent-{tag}-{i}"
            async with gate:
                for attempt in range(1, args.attempts + 1):
                    try:
                        answer = await sockets[i % len(sockets)].request(frame, args.timeout)
                    except TimeoutError:
                        return {"op": "error", "code": "NO_ANSWER"}
                    # A recoverable refusal (TIMEOUT in a burst, CAPACITY, a store blink) is
                    # retried with the same ref, as a frontend would: it acts once.
                    if answer["op"] == "started" or not answer.get("recoverable"):
                        break
                    if attempt < args.attempts:
                        retried[answer.get("code", "?")] = (
                            retried.get(answer.get("code", "?"), 0) + 1
                        )
                return answer

        cpu: dict[str, dict[str, float]] = {}
        t0, mark = time.monotonic(), _cpu(args)
        answers = await asyncio.gather(*(start(i) for i in range(args.n)))
        start_all_s = time.monotonic() - t0
        cpu["start"] = _spent(args, mark)
        started = [(i, a["conversation"]) for i, a in enumerate(answers) if a["op"] == "started"]
        refused: dict[str, int] = {}
        for answer in answers:
            if answer["op"] != "started":
                refused[answer.get("code", "?")] = refused.get(answer.get("code", "?"), 0) + 1

        settle_s, settle_cores = await _settle(args)
        rss_after = rss_bytes(args.gateway_pid)
        cpu0, redis0, renew0 = (
            cpu_seconds(args.gateway_pid),
            redis_stats(args.redis),
            await renewals(http, args.url),
        )
        t_idle, mark = time.monotonic(), _cpu(args)
        await asyncio.sleep(args.idle)
        idle_s = time.monotonic() - t_idle
        cpu["idle"] = _spent(args, mark)
        cpu1, redis1, renew1 = (
            cpu_seconds(args.gateway_pid),
            redis_stats(args.redis),
            await renewals(http, args.url),
        )
        owned = max(1, len(started))

        step = max(1, len(started) // max(1, args.probes))
        chosen = started[::step][: args.probes]

        async def probe(j: int, i: int, conversation: str) -> float | None:
            await asyncio.sleep(j * args.probe_gap)  # staggered: a steady trickle of users
            client = sockets[i % len(sockets)]
            text = f"probe-{tag}-{j}"
            echo = client.echoes[f"echo: {text}"] = asyncio.get_running_loop().create_future()
            sent = time.monotonic()
            frame = {
                "op": "send",
                "ref": f"p{j}",
                "conversation": conversation,
                "content": {"kind": "text", "text": text},
            }
            try:
                await client.request(frame, args.timeout)
                return await asyncio.wait_for(echo, args.timeout) - sent
            except TimeoutError:
                return None

        mark = _cpu(args)
        probed = await asyncio.gather(*(probe(j, i, c) for j, (i, c) in enumerate(chosen)))
        cpu["probes"] = _spent(args, mark)
        latencies = [p for p in probed if p is not None]
        missing = len(probed) - len(latencies)
        latencies.sort()
        for client in sockets:
            await client.ws.close()
            client.reader.cancel()
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return {
        "dialect": args.dialect,
        "n": args.n,
        "started": len(started),
        "refused": refused,
        "retried": retried,
        "start_all_s": round(start_all_s, 3),
        "settle_s": round(settle_s, 1),
        "settle_cores": settle_cores,
        "rss_per_session_kib": round((rss_after - rss_before) / owned / 1024, 2),
        "rss_mib": round(rss_after / 2**20, 1),
        "idle_s": round(idle_s, 2),
        "idle_cores_per_1000": round((cpu1 - cpu0) / idle_s * 1000 / owned, 4),
        "renewals_per_s": round((renew1 - renew0) / idle_s, 1),
        "redis_commands_per_s": round((redis1["commands"] - redis0["commands"]) / idle_s, 1),
        "redis_cores": round((redis1["cpu_s"] - redis0["cpu_s"]) / idle_s, 4),
        "probes": len(latencies),
        "probes_missing": missing,
        "reply_p50_s": round(p50, 3),
        "reply_p99_s": round(p99, 3),
        "scripted_delay_s": args.scripted_delay,
        "reply_excess_p99_s": round(p99 - args.scripted_delay, 3),
        "cpu_s": cpu,
    }


async def _settle(args: argparse.Namespace) -> tuple[float, list[float]]:
    """Wait `--settle` seconds after the last start's answer, then on in windows of
    `SETTLE_WINDOW_S` while the gateway's CPU still falls by a fifth or more from one window to
    the next (up to `--settle-max` seconds in all; below `IDLE_CORES` it has settled): the
    burst's backlog is drained before the idle window and the probes. Returns the seconds
    waited and the gateway's cores in each window (the last one is where it settled)."""
    waited = max(0.0, args.settle - SETTLE_WINDOW_S)
    await asyncio.sleep(waited)
    cores: list[float] = []
    while True:
        before = cpu_seconds(args.gateway_pid)
        await asyncio.sleep(SETTLE_WINDOW_S)
        waited += SETTLE_WINDOW_S
        cores.append(round((cpu_seconds(args.gateway_pid) - before) / SETTLE_WINDOW_S, 3))
        falling = len(cores) >= 2 and cores[-1] < 0.8 * cores[-2] and cores[-1] > IDLE_CORES
        if (len(cores) >= 2 and not falling) or waited >= args.settle_max:
            return waited, cores


def _cpu(args: argparse.Namespace) -> dict[str, float]:
    """CPU seconds so far of the gateway (and of the emulator, when its pid is given)."""
    pids = {"gateway": args.gateway_pid, "emulator": args.emulator_pid}
    return {name: cpu_seconds(pid) for name, pid in pids.items() if pid}


def _spent(args: argparse.Namespace, since: dict[str, float]) -> dict[str, float]:
    return {name: round(now - since[name], 2) for name, now in _cpu(args).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions")
    parser.add_argument("--url", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--gateway-pid", type=int, required=True)
    parser.add_argument("--emulator-pid", type=int, default=0)
    parser.add_argument("--dialect", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--inflight", type=int, default=500)
    parser.add_argument("--attempts", type=int, default=3, help="tries of a refused start")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to settle, at least")
    parser.add_argument("--settle-max", type=float, default=60.0, help="seconds to settle, at most")
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--probe-gap", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--scripted-delay", type=float, default=0.0)
    parser.add_argument("--no-auth", dest="auth", action="store_false")
    args = parser.parse_args(argv)
    raise_fd_limit()
    # The client holds a future and a socket's worth of objects per session too: with CPython's
    # default policy its own full collections (0.3 s at 1,000 sessions on a loaded host) were
    # counted in the replies it timed.
    heap.install()
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
