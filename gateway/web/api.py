"""The small HTTP API: the log of a conversation, the dialects, the schema, health, metrics."""

from __future__ import annotations

import msgspec
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from gateway import metrics
from gateway.errors import RequestError
from gateway.hub import MAX_SEQ, is_pattern
from gateway.web.keys import GRANT, HUB, REGISTRY, SESSIONS, SETTINGS
from gateway.web.responses import json_response
from gateway.web.schema import full_schema


class _Log(msgspec.Struct, omit_defaults=True):
    conversation: str
    events: list[msgspec.Raw]
    last_seq: int
    has_more: bool
    epoch: str | None = None


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        if not raw.isascii():  # int() takes any script's digits: "١٢" is not 12 here
            raise ValueError(raw)
        value = int(raw)
    except ValueError:
        raise RequestError(
            f"`{name}` must be an integer, got {raw!r}", path=f"query.{name}"
        ) from None
    if not low <= value <= high:
        raise RequestError(f"`{name}` must be between {low} and {high}", path=f"query.{name}")
    return value


async def conversation_events(request: web.Request) -> web.Response:
    """`GET /v1/conversations/{id}/events?since=&limit=`: stored events after `since`, oldest
    first; `last_seq` is where to continue from, `has_more` whether more follow, `epoch` the
    log's epoch (a different one than before means the log restarted: read again from 0)."""
    conversation = request.match_info["conversation"]
    if is_pattern(conversation):
        raise RequestError("the log is per conversation, not per pattern", path="path.conversation")
    request[GRANT].check_read(conversation)
    since = _int_param(request, "since", 0, 0, MAX_SEQ)
    max_limit = request.app[SETTINGS].history_max_limit
    limit = _int_param(request, "limit", min(100, max_limit), 1, max_limit)
    read = await request.app[HUB].read_page(conversation, since, limit + 1)
    page = read.rows[:limit]
    return json_response(
        _Log(
            conversation=conversation,
            events=[msgspec.Raw(payload) for _, payload in page],
            last_seq=page[-1][0] if page else since,
            has_more=len(read.rows) > limit,
            epoch=read.state.epoch or None,
        )
    )


async def dialects(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return json_response(
        {
            "dialects": [adapter.describe() for adapter in registry],
            "failed": [{"name": f.name, "error": f.error} for f in registry.failures],
        }
    )


async def schema(request: web.Request) -> web.Response:
    return json_response(_SCHEMA)


_SCHEMA = msgspec.json.encode(full_schema())


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the hub's store answers and its fan-out listener is alive."""
    hub_ok = await request.app[HUB].ready()
    sessions = request.app.get(SESSIONS)
    sessions_ok = sessions.ready() if sessions is not None else True
    ok = hub_ok and sessions_ok
    body: dict[str, object] = {
        "status": "ready" if ok else "unavailable",
        "hub": hub_ok,
        "sessions": sessions_ok,
        # Informational: a repair backlog drains at its own rate and never makes a replica
        # unready (the store answers; taking the pod out would only move the backlog).
        "repair_backlog": request.app[HUB].reads.backlog,
    }
    if not ok:
        body["error"] = {"code": "NOT_READY", "message": "the event store or its listener is down"}
    return json_response(body, status=200 if ok else 503)


async def prometheus(request: web.Request) -> web.Response:
    """The Prometheus text format, or OpenMetrics when the scraper's `Accept` asks for it
    (exemplars, `# EOF`; Prometheus asks for it when its scrape protocols allow)."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(metrics.REGISTRY), headers={"Content-Type": content_type})
