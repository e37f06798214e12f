"""The aiohttp application: routes, middleware, and one cleanup context per resource."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client.metrics import Counter

from gateway import metrics
from gateway.adapter import Registry
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.hub import create_hub
from gateway.logging import bound, get_logger
from gateway.sessions import Sessions, create_store
from gateway.vendor_http import VendorPools
from gateway.web import api, commands, ingest, protocol, telemetry, ws
from gateway.web.auth import Authenticator, token_of
from gateway.web.console import setup_console
from gateway.web.keys import (
    AUTH,
    CLIENT_LIMITS,
    CONNECTIONS,
    DECODE_OPTIONS,
    GRANT,
    HUB,
    LOGGED,
    REGISTRY,
    SESSIONS,
    SETTINGS,
    VENDOR_HTTP,
    WEBHOOK_KEYS,
)
from gateway.web.limits import ClientLimits
from gateway.web.responses import error_response, http_error_response, json_response
from gateway.web.signatures import SigningKeys
from gateway.web.ws import Connection

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def context_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id, turn every failure into the JSON error body, write the access line."""
    # An id has to be unique, not secret: Python's generator (seeded from the OS, again after a
    # fork) makes one without a system call.
    request_id = request.headers.get("X-Request-ID") or f"{random.getrandbits(64):016x}"
    started = time.perf_counter()
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    with bound(request_id=request_id):
        try:
            if _needs_token(request):
                grant = await request.app[AUTH].authenticate(
                    token_of(request.headers, request.query)
                )
                request.app[CLIENT_LIMITS].take(grant.subject, "requests")
                request[GRANT] = grant
            response = await handler(request)
        except GatewayError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = http_error_response(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("request.failed", method=request.method, path=request.path)
            response = json_response(
                {
                    "error": {
                        "code": "INTERNAL",
                        "message": "internal error; see the gateway log",
                        "request_id": request_id,
                    }
                },
                status=500,
            )
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        _requests(route_name, response.status).inc()
        if not request.get(LOGGED):
            log.info(
                "http.request",
                method=request.method,
                path=request.path,
                status=response.status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return response


@functools.cache
def _requests(route: str, status: int) -> Counter:
    """`HTTP_REQUESTS` of a route and status, labelled once (routes are the app's own
    resources, statuses the few the app answers)."""
    return metrics.HTTP_REQUESTS.labels(route, str(status))


# Routes anyone may call: probes, metrics, the schema, the console's files. Ingest checks its
# own credentials (a webhook signature, or a token with an `ingest` claim); the WebSocket
# authenticates its handshake.
_OPEN_PREFIXES = ("/healthz", "/readyz", "/metrics", "/v1/schema", "/v1/ws", "/static/")


def _needs_token(request: web.Request) -> bool:
    path = request.path
    if path == "/" or path.startswith(_OPEN_PREFIXES):
        return False
    return not (path.startswith("/v1/dialects/") and path.endswith("/events"))


def create_app(
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> web.Application:
    """The gateway as an aiohttp app. `registry` defaults to the installed dialects (those
    `settings.dialects` names, or every built-in one); failures to load are logged loudly."""
    settings = settings or Settings()
    registry = registry if registry is not None else Registry.load(settings.dialects)
    app = web.Application(middlewares=[context_and_errors], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[AUTH] = Authenticator(settings)  # ConfigError when the key material is missing
    app[CLIENT_LIMITS] = ClientLimits(settings.client_rate, settings.client_burst)
    app[WEBHOOK_KEYS] = {
        adapter.name: SigningKeys([k.strip() for k in secrets.split(",") if k.strip()])
        for adapter in registry
        if (secrets := settings.dialect(adapter.name).options.get("webhook_secrets"))
    }
    app[DECODE_OPTIONS] = {
        adapter.name: {
            name: value
            for name, value in settings.dialect(adapter.name).options.items()
            if name in adapter.decode_options
        }
        for adapter in registry
    }
    if not app[AUTH].enabled:
        log.warning(
            "auth.disabled",
            hint="GATEWAY_AUTH=none: anyone who reaches this "
            "gateway may read and send; use it for development only",
        )
    app[CONNECTIONS] = set()  # each socket's handler removes it when it closes
    for failure in registry.failures:
        log.error(
            "dialect.load_failed", dialect=failure.name, target=failure.target, error=failure.error
        )
    app.cleanup_ctx.append(_jwks_ctx)  # first: a bad JWKS stops the start before anything opens
    app.cleanup_ctx.append(_hub_ctx)
    app.cleanup_ctx.append(_vendor_http_ctx)
    app.cleanup_ctx.append(_sessions_ctx)
    app.cleanup_ctx.append(_expiry_ctx)
    app.on_shutdown.append(_close_sockets)
    app.router.add_post("/v1/dialects/{dialect}/events", ingest.ingest)
    app.router.add_get("/v1/dialects", api.dialects)
    app.router.add_get("/v1/conversations/{conversation}/events", api.conversation_events)
    app.router.add_get("/v1/conversations/{conversation}/history", commands.platform_history)
    app.router.add_get("/v1/schema", api.schema)
    app.router.add_get("/v1/ws", ws.ws_handler)
    app.router.add_post("/v1/conversations", commands.start)
    app.router.add_post("/v1/conversations/{conversation}/{command}", commands.command)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", api.prometheus)
    setup_console(app)
    if settings.demo:
        from gateway.demo import setup_demo

        setup_demo(app)
    return app


async def _jwks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Fetch the identity provider's keys before serving (`ConfigError` if they are not)."""
    if (jwks := app[AUTH].jwks_url) is not None:
        await asyncio.to_thread(jwks.load)
    yield


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    hub = create_hub(
        settings.redis_url,
        maxlen=settings.retention_maxlen,
        ended_ttl=settings.retention_ended_s,
        namespace=settings.redis_namespace,
        idle_ttl=settings.retention_idle_s,
        max_conversations=settings.memory_max_conversations,
        repair_rate=settings.repair_reads_per_s,
        repair_burst=settings.repair_burst,
        repair_concurrency=settings.repair_concurrency,
        pattern_idle_s=settings.pattern_idle_s,
        min_replicas_ack=settings.redis_min_replicas_ack,
        ack_timeout=settings.redis_ack_timeout_s,
    )
    await hub.start()
    app[HUB] = hub

    log.info("hub.started", engine=type(hub).__name__)
    read = telemetry.provider(app)
    metrics.add_provider(read)
    yield
    metrics.remove_provider(read)
    await hub.close()


async def _vendor_http_ctx(app: web.Application) -> AsyncIterator[None]:
    """The connectors' HTTP: per dialect, a pool of held connections and one of requests."""
    settings = app[SETTINGS]
    pools = VendorPools(
        settings.pool_limits,
        telemetry.vendor_tracing,
        dialects=(adapter.name for adapter in app[REGISTRY]),
    )
    app[VENDOR_HTTP] = pools
    yield
    await pools.close()


async def _sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    """The session router: owns vendor sessions (leases shared through Redis when the hub is)."""
    settings = app[SETTINGS]
    sessions = Sessions(
        app[REGISTRY],
        app[HUB],
        create_store(settings.redis_url, settings.redis_namespace),
        app[VENDOR_HTTP],
        settings.dialect,
        lease_ttl=settings.lease_ttl_s,
        idle_s=settings.session_idle_s,
        command_timeout=settings.command_timeout_s,
        ended_ttl=settings.retention_ended_s,
        history_limit=settings.history_max_limit,
        max_sessions=settings.max_sessions,
        max_starting=settings.max_starting,
    )
    await sessions.start()
    app[SESSIONS] = sessions
    yield
    await sessions.close()


async def _expiry_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sweep that closes sockets whose token expired (only when tokens can expire)."""
    if not app[AUTH].enabled:
        yield
        return
    sweep = asyncio.create_task(ws.close_expired(app), name="token-expiry")
    yield
    sweep.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweep


async def _close_sockets(app: web.Application) -> None:
    """On shutdown: tell every client to go away and resume elsewhere."""
    connections: list[Connection] = [*app[CONNECTIONS]]
    if connections:
        log.info("ws.draining", connections=len(connections))
    await asyncio.gather(
        *(
            c.ws.close(
                code=protocol.CLOSE_GOING_AWAY,
                message=b"gateway shutting down: reconnect and resume with since",
            )
            for c in connections
        ),
        return_exceptions=True,
    )


__all__ = ["SESSIONS", "create_app"]
