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

from gateway import metrics, tracing
from gateway.metrics import Sample
from gateway.vendor_http import Answers
from gateway.web.keys import CONNECTIONS, HUB, REGISTRY, SESSIONS, VENDOR_HTTP


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
                help="Requests made to the hub's store (concurrent writes sent together: one).",
            ),
            Sample(
                "hub_reconnects_total",
                hub.reconnects,
                kind="counter",
                help="Times the hub re-established its fan-out link to the store.",
            ),
            Sample(
                "hub_repair_backlog",
                hub.reads.backlog,
                help="Subscription repair reads waiting for their turn (rate limit).",
            ),
            Sample(
                "hub_log_reads_total",
                hub.reads.reads,
                kind="counter",
                help="Log reads made for subscription replays and repairs.",
            ),
            Sample(
                "hub_log_reads_shared_total",
                hub.reads.shared,
                kind="counter",
                help="Times a subscription was served by another's log read.",
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


def vendor_tracing(dialect: str) -> list[aiohttp.TraceConfig]:
    """Time every request a dialect's connectors make (its pools are its own, so each request
    is the dialect's whatever host it goes to: SignalWire's REST and Relay hosts differ); with
    tracing on, each is a `vendor <METHOD>` span, a child of the command or session it serves.
    Spans carry the URL's host and path, never its query (where some platforms take
    credentials)."""

    async def start(
        _: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        ctx.started = time.perf_counter()
        ctx.span = tracing.start_client_span(
            f"vendor {params.method}",
            {
                "gateway.dialect": dialect,
                "http.request.method": params.method,
                "server.address": params.url.host or "",
                "url.path": params.url.path,
            },
        )

    async def end(
        _: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        metrics.VENDOR_REQUEST_SECONDS.labels(dialect, params.method).observe(
            time.perf_counter() - ctx.started
        )
        status = params.response.status
        answers = ctx.trace_request_ctx  # a normal answer is no error (`vendor_http.Answers`)
        failed = status >= 400 and not (isinstance(answers, Answers) and status in answers.statuses)
        if failed:
            metrics.VENDOR_REQUEST_ERRORS.labels(dialect, f"{status // 100}xx").inc()
        if ctx.span is not None:
            ctx.span.set_attribute("http.response.status_code", status)
            if failed:
                ctx.span.set_attribute("error.type", str(status))
                ctx.span.set_status(tracing.error_status())
            ctx.span.end()

    async def failed(
        _: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        kind = type(params.exception).__name__
        metrics.VENDOR_REQUEST_ERRORS.labels(dialect, kind).inc()
        span = getattr(ctx, "span", None)
        if span is not None:
            span.set_attribute("error.type", kind)
            span.set_status(tracing.error_status(kind))
            span.end()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(start)
    trace.on_request_end.append(end)
    trace.on_request_exception.append(failed)
    return [trace]
