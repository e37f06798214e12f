"""The unified WebSocket `/v1/ws`: subscriptions, history and commands for one client each.

A `Connection` is the hub's `Sink` for its subscriptions: the hub hands it stored events
without waiting, it queues their frames, and one writer task sends them. The queue is bounded
(`ws_send_queue`): a client that reads too slowly is closed with 4008 and counted, so it never
holds up the hub or the other sockets; it reconnects and resumes with `since`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from typing import Any

import msgspec
import structlog
from aiohttp import WSMsgType, web

from gateway import metrics, tracing
from gateway.codec import path_of
from gateway.errors import GatewayError, MalformedJSON, RequestError, Unsupported
from gateway.hub import MAX_SEQ, Subscription, is_pattern, wire
from gateway.logging import bound
from gateway.model import Command, FetchHistory, Start
from gateway.sessions.replies import Recovered, Started
from gateway.web import protocol
from gateway.web.auth import Grant, token_of
from gateway.web.keys import AUTH, CLIENT_LIMITS, CONNECTIONS, HUB, REGISTRY, SESSIONS, SETTINGS
from gateway.web.limits import LimitExceeded, TokenBucket
from gateway.web.responses import error_response

log = structlog.get_logger(__name__)


WRITE_BUFFER_HIGH = 64 * 1024
"""Beyond this much unsent data on a socket, frames wait in its queue instead (see `_emit`)."""


def wire_frame(frame: bytes) -> bytes:
    """`frame` as a complete WebSocket text frame from a server (RFC 6455 §5.2: FIN, opcode 1,
    no mask). The same bytes serve every socket, so they are built once per event."""
    size = len(frame)
    if size < 126:
        return bytes((0x81, size)) + frame
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + frame
    return b"\x81\x7f" + size.to_bytes(8, "big") + frame


class _FrameCache:
    """The `event` frame of the payload being fanned out: built once for all local sockets."""

    __slots__ = ("frame", "payload", "wire")

    def __init__(self) -> None:
        self.payload = b""
        self.frame = b""
        self.wire = b""

    def frames_for(self, payload: bytes) -> tuple[bytes, bytes]:
        """The JSON frame and its wire bytes."""
        if payload is not self.payload:
            self.payload = payload
            self.frame = protocol.event_frame(payload)
            self.wire = wire_frame(self.frame)
        return self.frame, self.wire


_frames = _FrameCache()


class _Batch:
    """Wire frames bound for sockets during this turn of the event loop, written once per
    socket at its end: a burst of events costs one write (one syscall) per socket, not one per
    event, and nothing waits longer than the turn it arrived in."""

    def __init__(self) -> None:
        self.pending: dict[Connection, list[bytes]] = {}
        self.scheduled: asyncio.AbstractEventLoop | None = None  # the loop a flush is due on

    def add(self, connection: Connection, wire: bytes) -> None:
        chunks = self.pending.get(connection)
        if chunks is not None:
            chunks.append(wire)
            return
        self.pending[connection] = [wire]
        loop = asyncio.get_running_loop()
        if self.scheduled is not loop:  # none due, or due on a loop that has since stopped
            self.scheduled = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = None
        pending, self.pending = self.pending, {}
        for connection, chunks in pending.items():
            connection._write_now(chunks)


_batch = _Batch()

_COMMANDS: set[asyncio.Task[Any]] = set()
"""Commands under way, of every socket: held here (the loop keeps only weak references) so
they finish after their socket has gone (see `Connection._spawn_command`)."""

# Idle sockets are most sockets: what one holds is made when first needed (an empty deque is
# over 600 bytes). Readers see the shared empty one; a writer replaces it before appending.
_NO_FRAMES: deque[bytes] = deque(maxlen=0)


class Connection:
    """One client socket: what it subscribed to, and its bounded outgoing queue."""

    __slots__ = (
        "__weakref__",
        "_client_limits",
        "_closing",
        "_frames",
        "_limit",
        "_queue",
        "_room",
        "_starting",
        "_tasks",
        "_transport",
        "_writer",
        "app",
        "grant",
        "hub",
        "id",
        "settings",
        "subscriptions",
        "ws",
    )

    def __init__(
        self,
        app: web.Application,
        ws: web.WebSocketResponse,
        grant: Grant,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        self.id = secrets.token_hex(6)
        self.app = app
        self.ws = ws
        self._transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self.grant = grant
        self._frames = TokenBucket(app[SETTINGS].ws_rate, app[SETTINGS].ws_burst)
        self._client_limits = app[CLIENT_LIMITS]
        self.hub = app[HUB]
        self.settings = app[SETTINGS]
        self.subscriptions: dict[str, Subscription] = {}
        self._queue = _NO_FRAMES
        self._limit = self.settings.ws_send_queue
        self._room: asyncio.Event | None = None  # made when a replay first waits for room
        self._closing = False
        self._starting = 0  # starts in flight, each holding a place among the subscriptions
        self._tasks: set[asyncio.Task[Any]] | None = None
        # The writer runs only while there is something to send: an idle socket holds no task.
        self._writer: asyncio.Task[None] | None = None

    # -- Sink -------------------------------------------------------------------------------

    def deliver(self, conversation: str, seq: int, payload: bytes) -> None:
        if not self._closing:
            self._emit(*_frames.frames_for(payload))

    def restarted(self, conversation: str, epoch: str) -> None:
        self.send(
            protocol.Subscribed(
                conversation=conversation, seq=0, epoch=epoch or None, recovered=False
            )
        )

    async def drained(self) -> None:
        while not self._closing and len(self._queue) > self._limit // 2:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    def _make_room(self) -> None:
        if self._room is not None:
            self._room.set()

    # -- sending ----------------------------------------------------------------------------

    def send(self, frame: msgspec.Struct | bytes) -> None:
        """Send a protocol frame (in order with the events)."""
        if not self._closing:
            data = frame if isinstance(frame, bytes) else protocol.server_encoder.encode(frame)
            self._emit(data, None)

    def _emit(self, frame: bytes, wire: bytes | None) -> None:
        """Write now if the socket keeps up, else queue (bounded) for the writer task.

        A socket that reads as fast as we send has nothing queued and little unsent data: its
        frame goes straight into the transport, with no task and no copy per socket, as fast as
        a bare fan-out. Once it falls behind (64 KiB unsent), frames wait in its queue, which a
        writer task drains as the transport allows; past `ws_send_queue` the socket is closed.
        """
        transport = self._transport
        if (
            transport is not None
            and self._writer is None
            and not self._queue
            and not self.ws.closed
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= WRITE_BUFFER_HIGH
        ):
            _batch.add(self, wire if wire is not None else wire_frame(frame))
            return
        if len(self._queue) >= self._limit:
            self._evict()
            return
        if self._queue is _NO_FRAMES:
            self._queue = deque()
        self._queue.append(frame)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    def _write_now(self, chunks: list[bytes]) -> None:
        """Write what `_batch` gathered for this socket (dropped if it is going away)."""
        transport = self._transport
        if transport is not None and not transport.is_closing() and not self.ws.closed:
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def send_error(self, error: GatewayError, ref: str | None = None) -> None:
        self.send(protocol.error_frame(error, ref))

    async def _write(self) -> None:
        """Send until the queue is empty, then end (the next frame starts a new writer)."""
        queue, ws = self._queue, self.ws
        low = self._limit // 2
        try:
            while queue:
                await ws.send_frame(queue.popleft(), WSMsgType.TEXT)
                if len(queue) <= low:
                    self._make_room()
        except (ConnectionError, RuntimeError):  # the peer went away mid-write
            self._closing = True
        finally:
            # No await between the last `while queue` and here: nothing queued is stranded.
            self._writer = None
            self._make_room()

    def _evict(self) -> None:
        self._closing = True
        self._make_room()
        metrics.WS_EVICTIONS.inc()
        log.warning("ws.evicted", connection=self.id, queued=len(self._queue))
        self._spawn(
            self.ws.close(code=protocol.CLOSE_SLOW_CONSUMER, message=b"send queue overflow")
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_command(self, coro: Any) -> None:
        """Run a command to its end even if the socket closes meanwhile (its answer is then
        dropped): one cut off after the platform acted but before the answer to its ref was
        stored would act again when the client re-sends it with the same ref after
        reconnecting. `command_timeout_s` bounds it."""
        task = asyncio.ensure_future(coro)
        _COMMANDS.add(task)
        task.add_done_callback(_COMMANDS.discard)

    # -- receiving --------------------------------------------------------------------------

    async def handle(self, data: bytes | str) -> None:
        """Act on one client frame; every failure is answered with an `error` frame."""
        try:  # every frame spends the limits, a malformed one too
            self._frames.take("frames on this connection")
            self._client_limits.take(self.grant.subject, "frames")
        except GatewayError as exc:
            metrics.WS_COMMANDS.labels("limited", "error").inc()
            self.send_error(exc, _ref_of(data))  # still correlated, when the frame has a ref
            return
        try:
            frame = protocol.client_decoder.decode(data)
        except msgspec.ValidationError as exc:
            metrics.WS_COMMANDS.labels("invalid", "error").inc()
            self.send_error(RequestError(str(exc), path=path_of(exc)), _ref_of(data))
            return
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            # msgspec raises UnicodeDecodeError for bad UTF-8 inside a string (text frames
            # reach us undecoded), RecursionError for nesting deeper than it parses
            metrics.WS_COMMANDS.labels("invalid", "error").inc()
            self.send_error(MalformedJSON(f"frame is not valid JSON: {exc}"))
            return
        op = type(frame).__struct_config__.tag
        try:
            self._authorize(frame)
            match frame:
                case protocol.Subscribe():
                    await self._subscribe(frame)
                case protocol.Unsubscribe():
                    self._unsubscribe(frame)
                case protocol.History(source="platform"):
                    # the platform answers at its own pace: off the read loop, like a command
                    self._spawn_command(self._command(_fetch_history(frame)))
                    return
                case protocol.History():
                    await self._history(frame)
                case protocol.Ping():
                    self.send(protocol.Pong(ref=frame.ref))
                case _:
                    self._spawn_command(self._command(frame))
                    return
        except GatewayError as exc:
            metrics.WS_COMMANDS.labels(op, "error").inc()
            self.send_error(exc, frame.ref)
            return
        metrics.WS_COMMANDS.labels(op, "ok").inc()

    def _authorize(self, frame: protocol.ClientFrame) -> None:
        """Raise `Forbidden` unless this client's grant covers `frame`."""
        match frame:
            case protocol.Subscribe() | protocol.History():
                self.grant.check_read(frame.conversation)
            case protocol.Unsubscribe() | protocol.Ping():
                pass
            case Start():
                self.grant.check_command("start", dialect=frame.dialect)
            case _:
                self.grant.check_command(
                    str(type(frame).__struct_config__.tag), conversation=frame.conversation
                )

    async def _subscribe(self, frame: protocol.Subscribe) -> None:
        target = frame.conversation
        if not target:
            raise RequestError("`conversation` must not be empty", path="$.conversation")
        limit = self.settings.max_subscriptions
        if target not in self.subscriptions and len(self.subscriptions) + self._starting >= limit:
            raise LimitExceeded(
                f"a socket may hold {limit} subscriptions (its starts in flight included)",
                limit=limit,
            )
        subscription = await self.hub.subscribe(target, self, frame.since, frame.epoch or None)
        if self._closing:
            subscription.close()
            return
        # Replace after the await: two subscribes to one target may be in flight at once
        # (`start` subscribes its caller too), and the last one answered wins, alone.
        previous = self.subscriptions.pop(target, None)
        if previous is not None:
            previous.close()
            metrics.WS_SUBSCRIPTIONS.dec()
        self.subscriptions[target] = subscription
        metrics.WS_SUBSCRIPTIONS.inc()
        self.send(
            protocol.Subscribed(
                ref=frame.ref,
                conversation=target,
                seq=subscription.seq,
                epoch=subscription.epoch or None if subscription.exact else None,
                recovered=subscription.recovered,
            )
        )
        subscription.start()

    def _unsubscribe(self, frame: protocol.Unsubscribe) -> None:
        subscription = self.subscriptions.pop(frame.conversation, None)
        if subscription is not None:
            subscription.close()
            metrics.WS_SUBSCRIPTIONS.dec()
        self.send(protocol.Unsubscribed(ref=frame.ref, conversation=frame.conversation))

    async def _history(self, frame: protocol.History) -> None:
        if is_pattern(frame.conversation):
            raise RequestError(
                "history needs one conversation, not a pattern", path="$.conversation"
            )
        if frame.cursor is not None:
            raise RequestError(
                '`cursor` pages the platform\'s history: add `"source": "platform"`',
                path="$.cursor",
            )
        if frame.before is not None and not 0 <= frame.before <= MAX_SEQ:
            raise RequestError(f"`before` must be between 0 and {MAX_SEQ}", path="$.before")
        limit_max = self.settings.history_max_limit
        if not 1 <= frame.limit <= limit_max:
            raise RequestError(f"`limit` must be between 1 and {limit_max}", path="$.limit")
        rows = await self.hub.read_before(
            frame.conversation, before=frame.before, limit=frame.limit + 1
        )
        has_more = len(rows) > frame.limit
        events = [msgspec.Raw(payload) for _, payload in rows[-frame.limit :]]
        self.send(
            protocol.HistoryReply(
                ref=frame.ref,
                conversation=frame.conversation,
                events=events,
                has_more=has_more,
                epoch=wire.read_epoch(rows[-1][1]) or None if rows else None,
            )
        )

    async def _command(self, command: Command) -> None:
        op = type(command).__struct_config__.tag
        sessions = self.app.get(SESSIONS)
        # A start subscribes its caller: its place is taken before the vendor session is
        # opened, so a socket at its limit is refused before anything starts (issue 24).
        holds_place = False
        try:
            if sessions is None:
                raise Unsupported(f"`{op}` needs the sessions layer, which this gateway lacks")
            if isinstance(command, Start):
                self._hold_place()
                holds_place = True
            with tracing.span(
                f"command {op}",
                kind="server",
                carrier=tracing.command_context(command),
                attributes=tracing.command_attributes(command),
            ):
                replies = await sessions.execute(command, self.grant.subject)
            for reply in replies:
                # Read access comes from the record of who started the session, never from
                # the answer: a start that joined someone else's live conversation (SignalWire
                # joins by address) grants nothing. Checked before the answer goes out, so that
                # nothing is awaited between it and the subscription below.
                if (
                    isinstance(reply, Started)
                    and await sessions.started_by(reply.conversation) == self.grant.subject
                ):
                    self.grant.own(reply.conversation)
                self.send(reply)
                # start and recover subscribe their caller, right after the answer.
                if isinstance(reply, Started):
                    self._starting -= 1  # the subscription takes its place
                    holds_place = False
                    if self.grant.can_read(reply.conversation):
                        await self._subscribe(
                            protocol.Subscribe(conversation=reply.conversation, since=0)
                        )
                elif isinstance(reply, Recovered):
                    last = bytes(reply.events[-1]) if reply.events else None
                    await self._subscribe(
                        protocol.Subscribe(
                            conversation=reply.conversation,
                            since=reply.last_seq,
                            epoch=wire.read_epoch(last) or None if last else None,
                        )
                    )
        except GatewayError as exc:
            metrics.WS_COMMANDS.labels(op, "error").inc()
            self.send_error(exc, command.ref)
            return
        finally:
            if holds_place:
                self._starting -= 1
        metrics.WS_COMMANDS.labels(op, "ok").inc()

    def _hold_place(self) -> None:
        """Take a place among the subscriptions for a start's; `LimitExceeded` when none."""
        limit = self.settings.max_subscriptions
        if len(self.subscriptions) + self._starting >= limit:
            raise LimitExceeded(
                f"a socket may hold {limit} subscriptions and a start subscribes: "
                "unsubscribe from one first, or start on another socket",
                limit=limit,
            )
        self._starting += 1

    # -- closing ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Drop every subscription and stop the writer (the socket is closed by then)."""
        self._closing = True
        self._make_room()
        subscriptions = list(self.subscriptions.values())
        self.subscriptions.clear()
        metrics.WS_SUBSCRIPTIONS.dec(len(subscriptions))
        await self.hub.wait_closed(subscriptions)
        tasks = [*(self._tasks or ())] + ([self._writer] if self._writer is not None else [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def queued(self) -> int:
        return len(self._queue)


async def close_expired(app: web.Application, every: float = 1.0) -> None:
    """Close, with 4401, every socket whose token has expired (the client reconnects with a
    new token and resumes with `since`). One sweep a second for all sockets, rather than a
    timer each: most sockets are idle, and they are many."""
    while True:
        await asyncio.sleep(every)
        now = time.time()
        connections: set[Connection] = app[CONNECTIONS]
        for connection in list(connections):
            expires_at = connection.grant.expires_at
            if expires_at is not None and expires_at <= now and not connection._closing:
                connection._closing = True
                log.info("ws.token_expired", connection=connection.id)
                connection._spawn(
                    connection.ws.close(code=protocol.CLOSE_TOKEN_EXPIRED, message=b"token expired")
                )


def _ref_of(data: bytes | str) -> str | None:
    """The `ref` of a frame that failed validation, so its error can still be correlated."""
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):  # nesting deeper than the decoder goes
        return None
    ref = value.get("ref") if isinstance(value, dict) else None
    return ref if isinstance(ref, str) else None


def _fetch_history(frame: protocol.History) -> FetchHistory:
    """The session command a `history` with `source: "platform"` stands for."""
    if frame.before is not None:
        raise RequestError(
            "`before` is a seq of the gateway's log: the platform pages by `cursor`",
            path="$.before",
        )
    return FetchHistory(
        ref=frame.ref, conversation=frame.conversation, cursor=frame.cursor, limit=frame.limit
    )


async def ws_handler(request: web.Request) -> web.StreamResponse:
    """`GET /v1/ws`: authenticate, upgrade, welcome, then serve frames until the client or the
    gateway leaves. A refused handshake gets the JSON error body (401), never an upgrade."""
    app = request.app
    settings = app[SETTINGS]
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    try:
        grant = await app[AUTH].authenticate(token_of(request.headers, request.query, offered))
        app[CLIENT_LIMITS].take(grant.subject, "connections")
    except GatewayError as exc:
        return error_response(exc)
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_s,
        max_msg_size=settings.ws_max_frame_bytes,
        compress=False,  # per-socket deflate would cost more CPU than fan-out itself
        decode_text=False,
        protocols=[p for p in offered if p == protocol.SUBPROTOCOL],
    )
    await ws.prepare(request)
    connection = Connection(app, ws, grant, request.transport)
    app[CONNECTIONS].add(connection)
    metrics.WS_CONNECTIONS.inc()
    with bound(connection=connection.id):
        log.info("ws.connected", peer=request.remote)
        connection.send(
            protocol.Welcome(
                version=protocol.PROTOCOL_VERSION,
                connection=connection.id,
                dialects=sorted(a.name for a in app[REGISTRY]),
                max_frame_bytes=settings.ws_max_frame_bytes,
            )
        )
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    if message.type == WSMsgType.BINARY:
                        connection.send_error(
                            RequestError(
                                "binary frames are not part of the protocol: send JSON text frames"
                            )
                        )
                        continue
                    await connection.handle(message.data)
                elif message.type == WSMsgType.ERROR:
                    log.info("ws.error", error=str(ws.exception()))
        finally:
            await connection.close()
            app[CONNECTIONS].discard(connection)
            metrics.WS_CONNECTIONS.dec()
            log.info("ws.closed", code=ws.close_code)
    return ws
