"""What the app reports to `/metrics` beyond the counters updated in place: values read at
scrape time from the hub, the sessions and the sockets, and timings of every vendor request
made through the dialects' connection pools (`gateway.vendor_http`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace

import aiohttp
from aiohttp import web

from gateway import metrics
from gateway.metrics import Sample
from gateway.web.keys import CONNECTIONS, HUB, REGISTRY, SESSIONS, SETTINGS, VENDOR_HTTP


def provider(app: web.Application) -> Callable[[], list[Sample]]:
    """The scrape-time samples of one app."""

    def read() -> list[Sample]:
        hub = app[HUB]
        connections = app[CONNECTIONS]
        samples = [
            Sample(
                "hub_round_trips_total",
                hub.round_trips,
                kind="counter",
                help="Requests made to the hub's store.",
            ),
            Sample(
                "hub_reconnects_total",
                hub.reconnects,
                kind="counter",
                help="Times the hub re-established its fan-out link to the store.",
            ),
            Sample(
                "ws_send_queue_depth",
                sum(c.queued for c in connections),
                help="Frames waiting in the sockets' send queues.",
            ),
            Sample(
                "ws_send_queue_max",
                max((c.queued for c in connections), default=0),
                help="The longest send queue of one socket.",
            ),
        ]
        sessions = app.get(SESSIONS)
        if sessions is not None:
            owned = Counter((s.record.dialect, s.link) for s in sessions.owned.values())
            for adapter in app[REGISTRY]:
                if "start" in adapter.capabilities:
                    for state in ("up", "down", "retrying"):
                        samples.append(
                            Sample(
                                "sessions_owned",
                                owned.get((adapter.name, state), 0),
                                (("dialect", adapter.name), ("state", state)),
                                help="Vendor sessions this replica owns, by dialect and the "
                                "state of their vendor link.",
                            )
                        )
            samples.append(
                Sample(
                    "session_takeovers_total",
                    sessions.takeovers,
                    kind="counter",
                    help="Vendor sessions taken over from another owner.",
                )
            )
            samples += sessions.samples()
        pools = app.get(VENDOR_HTTP)
        if pools is not None:
            samples += pools.samples()
        return samples

    return read


def vendor_tracing(app: web.Application) -> aiohttp.TraceConfig:
    """Time every request the connectors make, labelled with the dialect whose base URL it
    starts with (`other` when none matches)."""
    settings = app[SETTINGS]
    prefixes = sorted(
        (
            (url, adapter.name)
            for adapter in app[REGISTRY]
            if (url := settings.dialect(adapter.name).url)
        ),
        key=lambda item: -len(item[0]),
    )

    def dialect_of(url: str) -> str:
        return next((name for prefix, name in prefixes if url.startswith(prefix)), "other")

    async def start(
        _: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        ctx.started = time.perf_counter()
        ctx.dialect = dialect_of(str(params.url))

    async def end(
        _: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        metrics.VENDOR_REQUEST_SECONDS.labels(ctx.dialect, params.method).observe(
            time.perf_counter() - ctx.started
        )
        if params.response.status >= 400:
            metrics.VENDOR_REQUEST_ERRORS.labels(
                ctx.dialect, f"{params.response.status // 100}xx"
            ).inc()

    async def failed(
        _: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        metrics.VENDOR_REQUEST_ERRORS.labels(
            getattr(ctx, "dialect", "other"), type(params.exception).__name__
        ).inc()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(start)
    trace.on_request_end.append(end)
    trace.on_request_exception.append(failed)
    return trace
