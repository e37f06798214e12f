"""The five scenarios of issue 11, the two webhook scenarios of issue 27 (`ingest-single`,
`mixed`), each with its references in the same run, and the owned vendor sessions of issue 24
(`sessions`).

Each function starts what it needs (a private redis-server, the gateway or a reference server)
as separate processes, drives them with a `bench.loadgen` or `bench.codec` worker process, and
returns raw runs plus their median/min/max.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import spy
from bench.codec import result_key
from bench.common import (
    ROOT,
    dialect_env,
    emulator,
    flush,
    gateway,
    peer,
    redis_server,
    summary,
)
from bench.instructions import count_all
from bench.report_webhooks import cost_us

DIALECTS = ("genesys", "server_events", "signalwire", "visitor_widget", "wonderful")
PEERS = ("floor", "socketio", "broadcaster")


@dataclass
class Context:
    outdir: Path
    sizes: dict[str, Any]
    auth: bool
    log_level: str
    run_json: Callable[[list[str], float], dict[str, Any]]
    say: Callable[[str], None]

    @property
    def runs(self) -> int:
        return int(self.sizes["runs"])

    def server(self, kind: str, redis_url: str, memory: Path | None = None) -> Any:
        if kind == "gateway":
            return gateway(redis_url, self.outdir, self.log_level, self.auth, memory)
        return peer(kind, redis_url, self.outdir)

    def loadgen(
        self,
        scenario: str,
        url: str,
        redis_url: str,
        pids: dict[str, int],
        *extra: str,
        timeout: float = 600,
    ) -> dict[str, Any]:
        argv = [
            "-m", "bench.loadgen", scenario, "--url", url, "--redis", redis_url,
            "--runs", str(self.runs), "--pids", ",".join(f"{k}={v}" for k, v in pids.items()),
            *extra,
        ]  # fmt: skip
        if not self.auth:
            argv.append("--no-auth")
        return self.run_json(argv, timeout)


# -- 1. codec ----------------------------------------------------------------------------------


CODEC_JOBS = [
    *((d, ("gateway", "floor")) for d in DIALECTS),
    ("wonderful", ("gateway", "pydantic")),  # on single frames: pydantic's corpus
]
"""The codec's pairs: each dialect against the floor, and wonderful against pydantic."""


def codec(ctx: Context) -> dict[str, Any]:
    """Each dialect's gateway and floor, and wonderful's single frames against pydantic, the
    two of a pair sharing each run in one worker (see `bench.codec`)."""
    out: dict[str, Any] = {}
    seconds = str(ctx.sizes["codec_seconds"])
    for dialect, impls in CODEC_JOBS:
        result = ctx.run_json(
            ["-m", "bench.codec", dialect, *impls, "--runs", str(ctx.runs), "--seconds", seconds],
            600,
        )
        single = "pydantic" in impls
        for impl in impls:
            key = result_key(dialect, impl, single)
            runs = result["runs"][impl]
            entry = {k: v for k, v in result.items() if k not in ("runs", "mismatches")}
            entry.update(runs=runs, summary=summary(runs))
            if impl == "pydantic":
                entry["mismatches"] = result.get("mismatches", [])
            out[key] = entry
            ctx.say(f"  {key:32} {entry['summary']['median']:>12,.0f} frames/s")
            if entry.get("mismatches"):
                ctx.say(f"  !! pydantic output differs on {len(entry['mismatches'])} frames")
    return out


def instructions(ctx: Context) -> dict[str, Any]:
    """The codec's pairs in instructions per frame (callgrind; see `bench.instructions`).
    Not one of the default scenarios: it needs valgrind and takes minutes."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        ctx.say("  valgrind is not on the PATH (Debian: apt-get install valgrind)")
        return {"error": "valgrind is not on the PATH"}
    jobs = [(d, impl, "pydantic" in impls) for d, impls in CODEC_JOBS for impl in impls]
    return count_all(jobs, valgrind, ctx.say)


# -- 2. ingest ---------------------------------------------------------------------------------


def ingest(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seconds = str(ctx.sizes["ingest_seconds"])
    batch = ctx.sizes["ingest_batch"]
    cases = [
        ("gateway", 1, 32), ("gateway", batch, 8), ("bare", 1, 32), ("bare", batch, 8),
    ]  # fmt: skip
    with (
        redis_server(ctx.outdir) as (redis_url, redis_proc),
        ctx.server("gateway", redis_url) as (url, gw),
    ):
        for target, size, concurrency in cases:
            flush(redis_url)
            time.sleep(0.2)
            pids = {"gateway": gw.pid, "redis": redis_proc.pid}
            result = ctx.loadgen(
                "ingest", url, redis_url, pids, "--target", target, "--batch", str(size),
                "--concurrency", str(concurrency), "--seconds", seconds,
            )  # fmt: skip
            result["summary"] = summary([r["events_per_s"] for r in result["runs"]])
            key = f"{target}/{'batch' if size > 1 else 'single'}"
            result["batch"], result["concurrency"] = size, concurrency
            out[key] = result
            errors = sum(r["errors"] for r in result["runs"])
            ctx.say(
                f"  {key:16} {result['summary']['median']:>12,.0f} events/s"
                + (f"  ({errors} errors)" if errors else "")
            )
    return out


# -- 2b. single-frame webhooks ------------------------------------------------------------------


def ingest_single(ctx: Context) -> dict[str, Any]:
    """One frame per request, as platforms post: the gateway unsigned (auth off) and signed
    (auth on, HMAC) against the floor's webhook (`bench.servers.floor`), all three up at once
    and driven in turn by one client (`bench.webhooks`)."""
    with (
        redis_server(ctx.outdir) as (redis_url, redis_proc),
        peer("floor", redis_url, ctx.outdir) as (floor_url, floor),
        gateway(redis_url, ctx.outdir, ctx.log_level, False, name="gateway") as (gw_url, gw),
        gateway(redis_url, ctx.outdir, ctx.log_level, True, name="gateway-signed") as (
            signed_url,
            signed,
        ),
    ):
        pids = {"floor": floor.pid, "gateway": gw.pid, "gateway-signed": signed.pid,
                "redis": redis_proc.pid}  # fmt: skip
        try:
            result = ctx.loadgen(
                "ingest-single", "", redis_url, pids,
                "--target", f"floor={floor_url}", "--target", f"gateway={gw_url}",
                "--target", f"gateway-signed={signed_url}",
                "--concurrency", "32", "--seconds", str(ctx.sizes["ingest_seconds"]),
                "--rate", str(ctx.sizes["ingest_paced_rate"]),
            )  # fmt: skip
        except Exception as exc:  # a failing server must not end the run
            ctx.say(f"  FAILED: {str(exc)[-300:]}")
            return {"error": str(exc)[-2000:]}
    timings = ("requests_per_s", "p50_ms", "p99_ms")
    _summarise(result, {"saturation": timings, "paced": (*timings, "p99_pooled_ms")})
    for name, res in result.items():
        s = res["summary"]
        cost = cost_us(res)
        ctx.say(
            f"  {name:16} {s['saturation/requests_per_s']['median']:>8,.0f} requests/s"
            f" ({cost:.0f} µs CPU each)"
            f"  p50 {s['saturation/p50_ms']['median']:.2f} p99 "
            f"{s['saturation/p99_ms']['median']:.2f} ms | paced "
            f"{ctx.sizes['ingest_paced_rate']}/s p50 {s['paced/p50_ms']['median']:.2f} p99 "
            f"{s['paced/p99_ms']['median']:.2f} ms (pooled "
            f"{s['paced/p99_pooled_ms']['median']:.2f})"
        )
    return result


def _summarise(result: dict[str, Any], parts: dict[str, tuple[str, ...]]) -> None:
    """Each server's `summary`: `<part>/<what>` over its runs, for the `whats` of each part."""
    result.pop("wall_s", None)
    for res in result.values():
        res["summary"] = {
            f"{part}/{what}": summary([r[part][what] for r in res["runs"]])
            for part, whats in parts.items()
            for what in whats
        }


# -- 3b. webhooks and deliveries together -------------------------------------------------------


def mixed(ctx: Context) -> dict[str, Any]:
    """`mixed_subs` sockets subscribed while webhooks arrive at `mixed_rate`/s: the gateway
    (as configured: auth on by default) and the floor, in turn; webhook and delivery p99."""
    with (
        redis_server(ctx.outdir) as (redis_url, redis_proc),
        peer("floor", redis_url, ctx.outdir) as (floor_url, floor),
        ctx.server("gateway", redis_url) as (gw_url, gw),
    ):
        name = "gateway-signed" if ctx.auth else "gateway"
        pids = {"floor": floor.pid, name: gw.pid, "redis": redis_proc.pid}
        try:
            result = ctx.loadgen(
                "mixed", "", redis_url, pids,
                "--target", f"floor={floor_url}", "--target", f"{name}={gw_url}",
                "--subs", str(ctx.sizes["mixed_subs"]),
                "--conversations", str(ctx.sizes["mixed_conversations"]),
                "--rate", str(ctx.sizes["mixed_rate"]),
                "--seconds", str(ctx.sizes["mixed_seconds"]),
            )  # fmt: skip
        except Exception as exc:  # a failing server must not end the run
            ctx.say(f"  FAILED: {str(exc)[-300:]}")
            return {"error": str(exc)[-2000:]}
    _summarise(
        result,
        {"webhooks": ("p50_ms", "p99_ms", "requests_per_s"), "deliveries": ("p50_ms", "p99_ms",
         "per_s")},
    )  # fmt: skip
    for name, res in result.items():
        s = res["summary"]
        ctx.say(
            f"  {name:16} webhooks p50 {s['webhooks/p50_ms']['median']:.2f} p99 "
            f"{s['webhooks/p99_ms']['median']:.2f} ms | deliveries "
            f"{s['deliveries/per_s']['median']:,.0f}/s p50 {s['deliveries/p50_ms']['median']:.2f}"
            f" p99 {s['deliveries/p99_ms']['median']:.2f} ms"
        )
    return result


# -- 3. fan-out --------------------------------------------------------------------------------


def fanout(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seconds = str(ctx.sizes["fanout_seconds"])
    rate = str(ctx.sizes["paced_rate"])
    with redis_server(ctx.outdir) as (redis_url, redis_proc):
        for kind in ("gateway", *PEERS):
            patterns = (False, True) if kind in ("gateway", "floor") else (False,)
            with ctx.server(kind, redis_url) as (url, server):
                for subs in ctx.sizes["fanout_subs"]:
                    for pattern in patterns:
                        key = f"{kind}/{subs}/{'pattern' if pattern else 'conversation'}"
                        pids = {"server": server.pid, "redis": redis_proc.pid}
                        extra = [
                            "--kind",
                            kind,
                            "--subs",
                            str(subs),
                            "--seconds",
                            seconds,
                            "--rate",
                            rate,
                            *(["--pattern"] if pattern else []),
                        ]
                        try:
                            result = ctx.loadgen("fanout", url, redis_url, pids, *extra)
                        except Exception as exc:  # one failing server must not end the run
                            ctx.say(f"  {key:32} FAILED: {str(exc)[-300:]}")
                            out[key] = {"error": str(exc)[-2000:]}
                            continue
                        runs = result["runs"]
                        result["summary"] = {
                            "deliveries_per_s": summary([r["deliveries_per_s"] for r in runs]),
                            "p50_ms": summary([r["p50_ms"] for r in runs]),
                            "p99_ms": summary([r["p99_ms"] for r in runs]),
                            "paced_per_s": summary([r["paced_per_s"] for r in runs]),
                        }
                        out[key] = result
                        s = result["summary"]
                        ctx.say(
                            f"  {key:32} {s['deliveries_per_s']['median']:>10,.0f} deliveries/s"
                            f"  p50 {s['p50_ms']['median']:.2f} ms  p99 {s['p99_ms']['median']:.2f}"
                            f" ms (paced {s['paced_per_s']['median']:,.0f}/s)"
                        )
    return out


# -- 3b. Redis Cluster: 1 shard against 3 -------------------------------------------------------


def shards(ctx: Context) -> dict[str, Any]:
    """One gateway on a Redis Cluster of one primary, then of three (no replicas, no
    persistence): ingest events/s (single events from 32 senders, batches from 8, each sender
    its own conversation, so the conversations spread over the shards) and fan-out
    deliveries/s (`shards_subs` sockets on one conversation, which one shard serves). Every
    process shares the machine's cores: on 2 cores three shards add no CPU, only parallel
    event loops (issue 26)."""
    from tests.redis_topology import ClusterSet

    out: dict[str, Any] = {}
    seconds, batch = str(ctx.sizes["ingest_seconds"]), ctx.sizes["ingest_batch"]
    for count in (1, 3):
        topology = ClusterSet(primaries=count, replicas=0, persist=False)
        try:
            node = topology.nodes[0].url  # the loadgen's own client: unused on the gateway
            nodes = {f"redis{i}": n.process.pid for i, n in enumerate(topology.nodes) if n.process}
            with ctx.server("gateway", topology.url) as (url, gw):
                for size, concurrency in ((1, 32), (batch, 8)):
                    key = f"{count}/ingest/{'batch' if size > 1 else 'single'}"
                    result = ctx.loadgen(
                        "ingest", url, node, {"gateway": gw.pid, **nodes}, "--target", "gateway",
                        "--batch", str(size), "--concurrency", str(concurrency),
                        "--seconds", seconds,
                    )  # fmt: skip
                    result["summary"] = summary([r["events_per_s"] for r in result["runs"]])
                    out[key] = result
                    ctx.say(f"  {key:24} {result['summary']['median']:>12,.0f} events/s")
                key = f"{count}/fanout/{ctx.sizes['shards_subs']}"
                result = ctx.loadgen(
                    "fanout", url, node, {"server": gw.pid, **nodes}, "--kind", "gateway",
                    "--subs", str(ctx.sizes["shards_subs"]),
                    "--seconds", str(ctx.sizes["fanout_seconds"]),
                    "--rate", str(ctx.sizes["paced_rate"]),
                )  # fmt: skip
                result["summary"] = summary([r["deliveries_per_s"] for r in result["runs"]])
                out[key] = result
                ctx.say(f"  {key:24} {result['summary']['median']:>12,.0f} deliveries/s")
        finally:
            topology.close()
    return out


# -- 4. idle connections -----------------------------------------------------------------------


def idle(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    smoke = ctx.sizes["idle_sizes"][0] < 100
    with redis_server(ctx.outdir) as (redis_url, _):
        for kind, sizes in ctx.sizes["idle_kinds"].items():
            for size in sizes:
                key = f"{kind}/{size}"
                runs = []
                for _ in range(ctx.runs):
                    flush(redis_url)
                    with ctx.server(kind, redis_url) as (url, server):
                        try:
                            result = ctx.run_json(
                                ["-m", "bench.loadgen", "idle", "--url", url, "--redis",
                                 redis_url, "--pids", f"server={server.pid}", "--kind", kind,
                                 "--subs", str(size), "--settle", "0.3" if smoke else "1.5",
                                 *([] if ctx.auth else ["--no-auth"])], 600,
                            )  # fmt: skip
                        except Exception as exc:
                            ctx.say(f"  {key:20} FAILED: {str(exc)[-300:]}")
                            runs.append({"error": str(exc)[-2000:]})
                            continue
                    runs.append(result)
                good = [r["bytes_per_socket"] for r in runs if "bytes_per_socket" in r]
                out[key] = {"runs": runs, "summary": summary(good)}
                if good:
                    ctx.say(
                        f"  {key:20} {out[key]['summary']['median'] / 1024:>8.1f} KiB/socket"
                        f"  (connect {runs[-1].get('connect_s', 0):.1f} s)"
                    )
    return out


# -- 5. resume ---------------------------------------------------------------------------------


def resume(ctx: Context) -> dict[str, Any]:
    with (
        redis_server(ctx.outdir) as (redis_url, _),
        ctx.server("gateway", redis_url) as (url, gw),
    ):
        result = ctx.loadgen(
            "resume", url, redis_url, {"gateway": gw.pid},
            "--events", str(ctx.sizes["resume_events"]),
        )  # fmt: skip
    result["summary"] = {
        "replay_s": summary([r["replay_s"] for r in result["runs"]]),
        "xrange_s": summary([r["xrange_s"] for r in result["runs"]]),
    }
    s = result["summary"]
    ctx.say(
        f"  replay {result['events']} events: {s['replay_s']['median'] * 1000:.0f} ms"
        f"  (bare XRANGE {s['xrange_s']['median'] * 1000:.0f} ms)"
    )
    return result


# -- 6. owned vendor sessions (issue 24) --------------------------------------------------------


def sessions(ctx: Context) -> dict[str, Any]:
    """Per dialect and size N: its emulator, a private Redis and the gateway, each its own
    process (Redis engine, leases on, default pools and limits), and `bench.sessions` starting
    N conversations and measuring them. One run per size: the largest is minutes."""
    out: dict[str, Any] = {}
    s = ctx.sizes
    for dialect in s.get("dialects", DIALECTS):
        for n in s["sessions_sizes"]:
            key = f"{dialect}/{n}"
            try:
                with (
                    emulator(dialect, ctx.outdir) as platform,
                    redis_server(ctx.outdir) as (redis_url, _),
                ):
                    env = {
                        **dialect_env(dialect, platform["settings"]),
                        "GATEWAY_DIALECTS": dialect,
                        # one frontend socket starts (and so subscribes to) up to 1,000
                        "GATEWAY_MAX_SUBSCRIPTIONS": "1000",
                        "GATEWAY_WS_RATE": "100000",
                        "GATEWAY_WS_BURST": "100000",
                    }
                    if n > 5000:  # past the default max_sessions
                        env["GATEWAY_MAX_SESSIONS"] = str(n)
                    with gateway(redis_url, ctx.outdir, ctx.log_level, ctx.auth, env=env) as (
                        url,
                        gw,
                    ):
                        result = ctx.run_json(
                            ["-m", "bench.sessions", "--url", url, "--redis", redis_url,
                             "--gateway-pid", str(gw.pid), "--emulator-pid", str(platform["pid"]),
                             "--dialect", dialect, "--n", str(n),
                             "--settle", str(s["sessions_settle"]),
                             "--idle", str(s["sessions_idle"]),
                             "--probes", str(min(n, s["sessions_probes"])),
                             "--scripted-delay", str(platform["scripted_delay_s"]),
                             *([] if ctx.auth else ["--no-auth"])],
                            1800,
                        )  # fmt: skip
            except Exception as exc:  # one dialect failing must not end the run
                ctx.say(f"  {key:24} FAILED: {str(exc)[-300:]}")
                out[key] = {"error": str(exc)[-2000:]}
                continue
            out[key] = result
            ctx.say(
                f"  {key:24} {result['started']:>5}/{n} started in {result['start_all_s']:6.2f} s"
                f"  {result['rss_per_session_kib']:6.1f} KiB/session"
                f"  idle {result['idle_cores_per_1000']:.3f} cores/1000"
                f"  renewals {result['renewals_per_s']:,.0f}/s"
                f"  reply p50 {result['reply_p50_s']:.2f} p99 {result['reply_p99_s']:.2f} s"
                f" (script {result['scripted_delay_s']:.2f})"
                + (f"  refused {result['refused']}" if result["refused"] else "")
                + (f"  retried {result['retried']}" if result.get("retried") else "")
                + "  cpu s "
                + " ".join(
                    f"{phase}:" + "/".join(f"{v:g}" for v in spent.values())
                    for phase, spent in result.get("cpu_s", {}).items()
                )
                + " (gateway/emulator)"
            )
    return out


# -- profiles ----------------------------------------------------------------------------------


def profiles(ctx: Context) -> dict[str, str]:
    """Where the gateway's time goes (py-spy, summarised by `bench.spy`) in the codec of each
    dialect, single and batched ingest and fan-out to the most subscribers; and what an idle
    subscribed socket allocates (tracemalloc). Text files next to the results."""
    out: dict[str, str] = {}
    seconds = max(1.0, ctx.sizes["codec_seconds"] * 3)
    for dialect in DIALECTS:
        raw, path = (
            ctx.outdir / f"spy-codec-{dialect}.raw",
            ctx.outdir / f"profile-codec-{dialect}.txt",
        )
        argv = [sys.executable, "-m", "bench.codec", dialect, "gateway", "--runs", "1",
                "--seconds", str(seconds)]  # fmt: skip
        spy.record(argv, seconds, raw, rate=1000)
        title = f"codec {dialect}: decode → encode, one core (the measuring loop only)"
        path.write_text(spy.summarise(raw, title, within="passes (bench/codec.py"))
        out[f"codec/{dialect}"] = str(path)
    ctx.say(f"  codec: {ctx.outdir}/profile-codec-*.txt")
    biggest = str(max(ctx.sizes["fanout_subs"]))
    window = max(2.0, ctx.sizes["fanout_seconds"])
    cases = [
        ("ingest-single", 0.8, window, "ingest", ["--target", "gateway", "--batch", "1",
         "--concurrency", "32", "--seconds", str(window + 1)]),
        ("ingest-batch", 0.8, window, "ingest", ["--target", "gateway", "--batch",
         str(ctx.sizes["ingest_batch"]), "--concurrency", "8", "--seconds", str(window + 1)]),
        # started once the subscribers are connected and warm: the saturation phase
        ("fanout", 5.0 if biggest == "1000" else 1.5, window, "fanout", ["--kind", "gateway",
         "--subs", biggest, "--seconds", str(window + 5), "--rate", str(ctx.sizes["paced_rate"])]),
    ]  # fmt: skip
    for name, delay, length, scenario, extra in cases:
        raw, path = ctx.outdir / f"spy-{name}.raw", ctx.outdir / f"profile-gateway-{name}.txt"
        with (
            redis_server(ctx.outdir) as (redis_url, _),
            ctx.server("gateway", redis_url) as (url, gw),
        ):
            argv = [sys.executable, "-m", "bench.loadgen", scenario, "--url", url, "--redis",
                    redis_url, "--runs", "1", "--pids", f"gateway={gw.pid}", *extra,
                    *([] if ctx.auth else ["--no-auth"])]  # fmt: skip
            load = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            try:
                time.sleep(delay)
                spy.record(gw.pid, length, raw)
                load.communicate(timeout=300)
            finally:
                if load.poll() is None:
                    load.kill()
        path.write_text(
            spy.summarise(
                raw,
                f"gateway under {name} load ({biggest} subscribers)"
                if name == "fanout"
                else f"gateway under {name} load",
            )
        )
        out[f"gateway/{name}"] = str(path)
        ctx.say(f"  {name}: {path}")
    # memory: what an idle subscribed socket allocates (tracemalloc, growth by source line)
    path = ctx.outdir / "profile-gateway-idle-memory.txt"
    size = str(min(2000, max(ctx.sizes["idle_sizes"])))
    with (
        redis_server(ctx.outdir) as (redis_url, _),
        ctx.server("gateway", redis_url, memory=path) as (url, gw),
    ):
        ctx.run_json(
            ["-m", "bench.loadgen", "idle", "--url", url, "--redis", redis_url, "--pids",
             f"server={gw.pid}", "--kind", "gateway", "--subs", size, "--settle", "1",
             "--snapshot", *([] if ctx.auth else ["--no-auth"])], 600,
        )  # fmt: skip
    out["gateway/idle-memory"] = str(path)
    ctx.say(f"  idle memory: {path}")
    return out
