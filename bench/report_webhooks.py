"""The report's part for the single-frame webhook scenarios (`ingest-single`, `mixed`):
their targets, tables and failures. Ratios are taken run by run (the servers of a run take
their rounds in turn, so each run's ratio has seen one phase of the host) and their median
quoted."""

from __future__ import annotations

from typing import Any

from bench.common import fmt_summary, summary

LABELS = {
    "floor": "floor: aiohttp + msgspec + one pipeline (XADD + PUBLISH)",
    "gateway": "gateway, unsigned (auth off)",
    "gateway-signed": "gateway, signed (auth on, HMAC)",
}


def _measured(r: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The scenario's results by server, or None when it did not run or failed."""
    section = r.get(name)
    return None if section is None or "error" in section else section


def ratio(section: dict[str, Any], ours: str, theirs: str, *path: str) -> float:
    """The median over runs of `ours`' value at `path` over `theirs`'."""
    if ours not in section or theirs not in section:
        return float("nan")

    def at(run: dict[str, Any]) -> float:
        node: Any = run
        for key in path:
            node = node[key]
        return float(node)

    pairs = zip(section[ours]["runs"], section[theirs]["runs"], strict=True)
    return summary([at(a) / at(b) for a, b in pairs if at(b)])["median"]


def cost_us(res: dict[str, Any]) -> float:
    """The server's CPU a request at saturation, in µs (median of runs): the figure that a
    busy shared host disturbs least (it slows every process, not one side's share)."""
    return summary(
        [1e6 * x["saturation"]["cpu"]["server"] / x["saturation"]["requests_per_s"]
         for x in res["runs"] if x["saturation"]["requests_per_s"]]
    )["median"]  # fmt: skip


def targets(r: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    rows: list[tuple[str, str, str, bool | None]] = []
    single = _measured(r, "ingest-single")
    if single:
        for name in ("gateway", "gateway-signed"):
            rps = ratio(single, name, "floor", "saturation", "requests_per_s")
            short = "signed" if name.endswith("signed") else "unsigned"
            rows.append((f"single-frame webhooks, {short}: requests/s vs the floor",
                         "≥ 90 %", f"{100 * rps:.0f} % (median of runs)",
                         None if rps != rps else rps >= 0.9))  # fmt: skip
            p99 = ratio(single, name, "floor", "paced", "p99_ms")
            rows.append((f"single-frame webhooks, {short}: paced p99 vs the floor's", "≤ 1.2×",
                         f"{p99:.2f}×",
                         None if p99 != p99 else p99 <= 1.2))  # fmt: skip
    return rows


def _row(name: str, res: dict[str, Any], keys: tuple[str, ...], cpu: dict[str, float]) -> str:
    """A table row: the server, the summaries of `keys`, then CPU server / redis / client."""
    cells = [fmt_summary(res["summary"][key]) for key in keys]
    cpu_cell = " / ".join(f"{cpu.get(k, 0):.2f}" for k in ("server", "redis", "client"))
    return f"| {LABELS.get(name, name)} | " + " | ".join(cells) + f" | {cpu_cell} |"


def markdown(r: dict[str, Any]) -> list[str]:
    out: list[str] = []
    single = _measured(r, "ingest-single")
    if single:
        rate = r["sizes"]["ingest_paced_rate"]
        out += ["", "### 2b. Single-frame webhooks", "",
                "One Wonderful frame per `POST`, built (and signed) before its round, 32 "
                "connections each waiting for its reply (saturation), then "
                f"{rate:,} requests/s offered (paced; latency from when a request was due) in "
                "slices that take turns between the servers: a run's paced p50 and p99 are the "
                "medians of its slices', the pooled p99 that of all its paced requests. The "
                "three servers take their rounds in turn in each run. CPU in cores, of the "
                "server / Redis / the load client, over the saturation round.", "",
                "| server | requests/s | p50 ms | p99 ms | paced p50 ms | paced p99 ms | "
                "paced p99 pooled ms | CPU server / redis / client | server CPU µs a request | "
                "vs floor (requests/s) |",
                "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, res in single.items():
            vs = ratio(single, name, "floor", "saturation", "requests_per_s")
            keys = ("saturation/requests_per_s", "saturation/p50_ms", "saturation/p99_ms",
                    "paced/p50_ms", "paced/p99_ms", "paced/p99_pooled_ms")  # fmt: skip
            out.append(
                _row(name, res, keys, res["runs"][len(res["runs"]) // 2]["saturation"]["cpu"])
                + f" {cost_us(res):.0f} | {100 * vs:.0f} % |"
            )
    mixed = _measured(r, "mixed")
    if mixed:
        sz = r["sizes"]
        out += ["", "### 3b. Webhooks and deliveries together", "",
                f"{sz['mixed_subs']:,} sockets subscribed over {sz['mixed_conversations']} "
                f"conversations while webhooks arrive at {sz['mixed_rate']}/s, spread over "
                "them; the gateway and the floor in turn. Latency of a delivery from when its "
                "webhook was due to the subscriber's read.", "",
                "| server | webhook p50 ms | webhook p99 ms | deliveries/s | delivery p50 ms | "
                "delivery p99 ms | CPU server / redis / client |",
                "|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, res in mixed.items():
            keys = ("webhooks/p50_ms", "webhooks/p99_ms", "deliveries/per_s",
                    "deliveries/p50_ms", "deliveries/p99_ms")  # fmt: skip
            out.append(_row(name, res, keys, res["runs"][len(res["runs"]) // 2]["cpu"]))
    return out


def failures(r: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in ("ingest-single", "mixed"):
        if "error" in (r.get(name) or {}):
            out[name] = [r[name]["error"][-300:]]
    single = _measured(r, "ingest-single")
    if single is not None:
        out["ingest-single"] = [
            f"{name} run {x['run']}: {x[phase]['errors']} {phase} errors"
            for name, res in single.items()
            for x in res["runs"]
            for phase in ("saturation", "paced")
            if x[phase]["errors"]
        ]
    mixed = _measured(r, "mixed")
    if mixed is not None:
        out["mixed"] = [
            f"{name} run {x['run']}: {x['webhooks']['errors']} webhook errors, "
            f"{x['deliveries']['missing']} deliveries missing, {x['closed']} sockets closed"
            for name, res in mixed.items()
            for x in res["runs"]
            if x["webhooks"]["errors"] or x["deliveries"]["missing"] or x["closed"]
        ]
    return out
