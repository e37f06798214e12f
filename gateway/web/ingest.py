"""`POST /v1/dialects/{dialect}/events`: native frames in, canonical events stored and fanned out.

Contract (DESIGN.md): `202 {"accepted", "duplicates", "ignored", "events": [{"id", "seq"}]}`.
A batch is all or nothing: a malformed known frame rejects it (422, with the frame index and
path) before anything is stored. Unknown dialect 404, not JSON 400, too large 413, store down
503 (the sender retries the same body: the hub deduplicates, so nothing doubles).
"""

from __future__ import annotations

import functools
import time

import msgspec
from aiohttp import web
from prometheus_client.metrics import Counter, Histogram

from gateway import decoding, metrics, tracing
from gateway.adapter import Adapter, Decoded
from gateway.errors import DecodeError, GatewayError, PayloadTooLarge, UnsupportedMediaType
from gateway.logging import bind, get_logger
from gateway.web.auth import Forbidden, token_of
from gateway.web.keys import (
    AUTH,
    DECODE_OPTIONS,
    HUB,
    LOGGED,
    REGISTRY,
    SETTINGS,
    WEBHOOK_KEYS,
)
from gateway.web.responses import json_response
from gateway.web.signatures import check_fresh

log = get_logger(__name__)


class _Stored(msgspec.Struct):
    id: str
    seq: int


class _Accepted(msgspec.Struct):
    accepted: int
    duplicates: int
    ignored: int
    events: list[_Stored]


class _Meters:
    """One dialect's ingest metrics, labelled once: labelling looks the child up under a lock
    on every call."""

    def __init__(self, dialect: str) -> None:
        self.accepted_requests: Counter = metrics.INGEST_REQUESTS.labels(dialect, "202")
        self.accepted: Counter = metrics.INGEST_FRAMES.labels(dialect, "accepted")
        self.duplicate: Counter = metrics.INGEST_FRAMES.labels(dialect, "duplicate")
        self.ignored: Counter = metrics.INGEST_FRAMES.labels(dialect, "ignored")
        self.decode_seconds: Histogram = metrics.DECODE_SECONDS.labels(dialect)


@functools.cache
def _meters(dialect: str) -> _Meters:
    """Only for installed dialects: the path's name is the sender's to choose."""
    return _Meters(dialect)


async def ingest(request: web.Request) -> web.Response:
    """The handler. Its outcome line (`ingest.accepted` or `ingest.rejected`) carries the
    access line's fields, and stands for it: one line per request."""
    started = time.perf_counter()
    dialect = request.match_info["dialect"]
    conversation = request.query.get("conversation") or None
    # Metric labels come from closed sets: a name anyone can put in a URL is not one.
    label = dialect if dialect in request.app[REGISTRY] else "unknown"
    bind(dialect=label)
    request[LOGGED] = True
    try:
        with tracing.span(
            "ingest",
            kind="server",
            carrier=request.headers,
            attributes={"gateway.dialect": dialect},
        ):
            return await _ingest(request, dialect, conversation, started)
    except GatewayError as exc:
        metrics.INGEST_REQUESTS.labels(label, str(exc.status)).inc()
        if exc.status < 500:
            metrics.INGEST_FRAMES.labels(label, "rejected").inc()
        # the error's `path` (where in the body) is `where` here: `path` is the request's
        fields = {("where" if k == "path" else k): v for k, v in exc.details.items()}
        fields |= {
            "code": exc.code,
            "status": exc.status,
            "method": request.method,
            "path": request.path,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        log.info("ingest.rejected", **fields)
        raise
    except BaseException:
        request[LOGGED] = False  # the access line says how it ended
        raise


async def _read_from_sender(request: web.Request, dialect: str) -> bytes:
    """The body of a sender allowed to post `dialect`'s frames. A dialect with webhook secrets
    takes signed bodies; any other needs a token whose `ingest` claim names the dialect (or
    authentication off). What can be checked before the body is read is (the token, or the
    signature's presence and freshness): nobody makes us read a body for nothing."""
    keys = request.app[WEBHOOK_KEYS].get(dialect)
    if keys:
        window_s = request.app[SETTINGS].webhook_window_s
        timestamp, offered = check_fresh(request.headers, window_s)
        body = await read_body(request)
        keys.check(timestamp, offered, body)
        return body
    auth = request.app[AUTH]
    if auth.enabled:  # off: anyone may post
        grant = await auth.authenticate(token_of(request.headers, request.query))
        if not grant.can_ingest(dialect):
            raise Forbidden(f"this token may not post {dialect!r} frames")
    return await read_body(request)


FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
"""The media types a browser may POST to another site without asking it first (CORS "simple"
requests): a body in one of them is refused, so a web page cannot post events or commands
to a gateway its visitor can reach. Any other type (JSON, or none) is read as JSON."""


def check_media_type(request: web.Request) -> None:
    """Raise `UnsupportedMediaType` for a body sent as a form or as text."""
    if request.content_type in FORM_TYPES and request.can_read_body:
        raise UnsupportedMediaType(
            f"a body of type {request.content_type!r} is not taken: send JSON "
            "(Content-Type: application/json)"
        )


async def read_body(request: web.Request) -> bytes:
    """The request's body, or `PayloadTooLarge` past `max_body_bytes` (checked before reading
    when the length is announced), or `UnsupportedMediaType` for a form or text body."""
    check_media_type(request)
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"body of {request.content_length} bytes exceeds {limit}", limit=limit
        )
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"body exceeds {limit} bytes", limit=limit) from None


async def decode(
    app: web.Application, adapter: Adapter, body: bytes, conversation: str | None
) -> Decoded:
    """The body's events, decoded with the stored context of each conversation it names
    (DIALECTS.md: context is the conversation's, not the path's), and a dialect's bug turned
    into a clear `DECODE_FAILED`, not a 500. Nothing is stored: `Decoded.learned` is for the
    caller to keep (`Hub.remember`) with the events."""
    try:
        options = app[DECODE_OPTIONS].get(adapter.name)
        parsed = adapter.parse(body, conversation=conversation, options=options)
        wanted = parsed.conversations if parsed.spec.contextual else ()
        return decoding.build(parsed, await app[HUB].contexts(wanted) if wanted else {})
    except GatewayError:
        raise
    except Exception as exc:
        log.exception("ingest.decode_crashed", dialect=adapter.name)
        raise DecodeError(
            f"the {adapter.name} adapter could not decode this body ({type(exc).__name__})",
            code="DECODE_FAILED",
        ) from exc


async def _ingest(
    request: web.Request, dialect: str, conversation: str | None, started: float
) -> web.Response:
    adapter = request.app[REGISTRY].get(dialect)
    meters = _meters(dialect)
    body = await _read_from_sender(request, dialect)
    decoding_at = time.perf_counter()
    with tracing.span("decode", attributes={"gateway.body_bytes": len(body)}):
        decoded = await decode(request.app, adapter, body, conversation)
    publishing_at = time.perf_counter()
    meters.decode_seconds.observe(publishing_at - decoding_at)
    hub = request.app[HUB]
    with tracing.span("hub.publish", attributes={"gateway.events": len(decoded.events)}):
        if decoded.learned:  # first: a retried body re-learns it, and no event goes out without
            await hub.remember(decoded.learned)
        published = await hub.publish(decoded.events)
    done = time.perf_counter()
    metrics.PUBLISH_SECONDS.observe(done - publishing_at)
    duplicates = sum(p.duplicate for p in published)
    accepted = len(published) - duplicates
    meters.accepted_requests.inc()
    if accepted:
        meters.accepted.inc(accepted)
    if duplicates:
        meters.duplicate.inc(duplicates)
    if decoded.ignored:
        meters.ignored.inc(decoded.ignored)
    conversations = {e.conversation_id for e in decoded.events}
    log.info(
        "ingest.accepted",
        accepted=accepted,
        duplicates=duplicates,
        ignored=decoded.ignored,
        conversation_id=next(iter(conversations)) if len(conversations) == 1 else None,
        conversations=len(conversations),
        method=request.method,
        path=request.path,
        status=202,
        duration_ms=round((done - started) * 1000, 2),
    )
    return json_response(
        _Accepted(accepted, duplicates, decoded.ignored, [_Stored(p.id, p.seq) for p in published]),
        status=202,
    )
