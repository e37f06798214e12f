"""`GatewayClient`: the unified WebSocket for Python programs (back-office tools, tests, bench).

The same contract as the TypeScript SDK (clients/typescript/):

- the token travels as the `bearer.<token>` subprotocol, never in the URL;
- a dropped socket (network loss, `1001` a replica leaving, `4008` a slow reader evicted) is
  reconnected with jittered exponential backoff, `4401` asks `get_token` for a fresh token first,
  and `1009` (a frame too large) is reported and not retried (`reconnect()` is the way back);
- every subscription resumes with `since` = the last seq it delivered, and yields each event
  once, in seq order per conversation (`async for event in subscription`);
- requests return the gateway's answer (`Started`, `Ack`, `RecoveredSession`, pages) or raise
  `GatewayError` with its `code`, `recoverable` and details; a command in flight when the socket
  drops is re-sent with the same `ref` after the reconnect, and answers once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import structlog

from gateway.client.commands import Commands
from gateway.client.delivery import Delivery, Subscription
from gateway.client.model import (
    ConnectionState,
    Gap,
    MemorySeqStore,
    SeqStore,
    StateChange,
    TokenReason,
)
from gateway.errors import GatewayError
from gateway.hub import is_pattern
from gateway.model import Event

log = structlog.get_logger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_TOO_LARGE = 1009
CLOSE_TOKEN_EXPIRED = 4401
CLOSE_LOCAL_DROP = 4000
HISTORY_PAGE = 500


class _Head(msgspec.Struct):
    op: str = ""
    ref: str | None = None


class _EventFrame(msgspec.Struct):
    event: Event


class _Subscribed(msgspec.Struct):
    conversation: str
    seq: int
    recovered: bool | None = None
    epoch: Any = None


_head = msgspec.json.Decoder(_Head)
_event_frame = msgspec.json.Decoder(_EventFrame)
_encoder = msgspec.json.Encoder()


@dataclass
class _Pending:
    frame: dict[str, Any]
    future: asyncio.Future[bytes]
    delivery: Delivery | None = None  # a first subscribe: the resume sends it again as it was
    resume: bool = False  # a resume's subscribe: void once its socket is gone


@dataclass
class _Target:
    delivery: Delivery
    handles: list[Subscription] = field(default_factory=list)


class GatewayClient(Commands):
    """One logical connection to the gateway; use `async with GatewayClient(url) as client:`.

    `url` is the WebSocket URL (`ws://host:8080/v1/ws`) or several (replicas, tried in turn).
    `get_token(reason)` gives a fresh token when there is none, on 4401, and after a refused
    handshake; `token` is a fixed one.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        token: str | None = None,
        get_token: Callable[[TokenReason], Awaitable[str]] | None = None,
        store: SeqStore | None = None,
        session: aiohttp.ClientSession | None = None,
        backoff_s: float = 0.5,
        backoff_max_s: float = 15.0,
        request_timeout_s: float = 30.0,
        ping_interval_s: float = 20.0,
        ref_prefix: str = "py",
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("GatewayClient needs at least one url")
        self.state: ConnectionState = "connecting"
        self.welcome: dict[str, Any] | None = None
        self.store: SeqStore = store if store is not None else MemorySeqStore()
        self._token = token
        self._get_token = get_token
        self._token_reason: TokenReason | None = (
            "connect" if token is None and get_token is not None else None
        )
        self._session = session
        self._own_session = session is None
        self._backoff = (backoff_s, backoff_max_s)
        self._request_timeout = request_timeout_s
        self._ping_interval = ping_interval_s
        self._ref_base = f"{ref_prefix}-{secrets.token_hex(4)}"
        self._refs = 0
        self._url_index = 0
        self._attempt = 0
        self._reconnects = 0
        self._ever_connected = False
        self._closed = False
        self._fatal: GatewayError | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._welcomed = False
        self._dropped = False  # the current socket was dropped by `reconnect()`
        self._hold: float | None = None
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._targets: dict[str, _Target] = {}
        self._pending: dict[str, _Pending] = {}
        self._last: dict[str, int] = {}
        self._state_listeners: list[Callable[[StateChange], None]] = []
        self._error_listeners: list[Callable[[Exception], None]] = []
        self._gap_listeners: list[Callable[[Gap], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None

    # -- life -------------------------------------------------------------------------------

    async def __aenter__(self) -> GatewayClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Begin connecting (in the background; requests wait for the connection)."""
        if self._runner is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            self._runner = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Close for good: pending requests raise `CLOSED`, subscriptions end."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        error = GatewayError("the client was closed", code="CLOSED", recoverable=False)
        for ref in list(self._pending):
            self._fail_pending(ref, error)
        for target in self._targets.values():
            for handle in target.handles:
                handle._put(None)
        ws = self._ws
        if ws is not None:
            await ws.close()
        for task in [*self._tasks, *([self._runner] if self._runner else [])]:
            task.cancel()
        for task in [*self._tasks, *([self._runner] if self._runner else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._own_session and self._session is not None:
            await self._session.close()
        self._set_state("disconnected", code=1000, reason="client closed", will_retry=False)

    def reconnect(self, delay_s: float = 0.0) -> None:
        """Drop the socket as a network failure would and connect again after `delay_s`; also
        the way back after a 1009 or a token failure."""
        self._fatal = None
        self._hold = delay_s
        self._dropped = True
        ws = self._ws
        if ws is not None:
            self._spawn(ws.close(code=CLOSE_LOCAL_DROP, message=b"dropped by the client"))
        self._wake.set()

    def on_state(self, listener: Callable[[StateChange], None]) -> Callable[[], None]:
        self._state_listeners.append(listener)
        return lambda: self._state_listeners.remove(listener)

    def on_gap(self, listener: Callable[[Gap], None]) -> Callable[[], None]:
        """Events trimmed from the log before they were delivered (see `Gap`)."""
        self._gap_listeners.append(listener)
        return lambda: self._gap_listeners.remove(listener)

    def on_error(self, listener: Callable[[Exception], None]) -> Callable[[], None]:
        """Errors no request carries (an `error` frame without a ref, a 1009, a failed resume)."""
        self._error_listeners.append(listener)
        return lambda: self._error_listeners.remove(listener)

    async def connected(self) -> None:
        """Return once the state is `connected` (at once if it is)."""
        await self._connected.wait()

    def last_seq(self, conversation: str) -> int | None:
        """The last seq delivered of a conversation (by any subscription)."""
        return self._last.get(conversation)

    def _set_state(self, state: ConnectionState, **detail: Any) -> None:
        change = StateChange(
            state, self.state, attempt=self._attempt, reconnects=self._reconnects, **detail
        )
        self.state = state
        if state == "connected":
            self._connected.set()
        else:
            self._connected.clear()
        for listener in list(self._state_listeners):
            listener(change)

    def _report(self, error: Exception) -> None:
        for listener in list(self._error_listeners):
            listener(error)
        if not self._error_listeners:
            log.warning("client.error", error=str(error))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the socket -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            resuming = self._ever_connected and bool(self._targets or self._pending)
            wanted: ConnectionState = "resuming" if resuming else "connecting"
            if self.state != wanted:
                self._set_state(wanted)
            code, reason = await self._connect_once()
            if self._closed:
                return
            await self._after_close(code, reason)

    async def _connect_once(self) -> tuple[int, str]:
        """Connect, serve the socket until it closes; its close code and reason."""
        if self._token_reason is not None and self._get_token is not None:
            try:
                self._token = await self._get_token(self._token_reason)
                self._token_reason = None
            except Exception as exc:  # the application's callback: any failure is a retry
                self._report(GatewayError(f"get_token failed: {exc}", code="TOKEN_EXPIRED"))
                return 1006, "get_token failed"
        protocols = ["gateway.v1"] + ([f"bearer.{self._token}"] if self._token else [])
        url = self.urls[self._url_index % len(self.urls)]
        assert self._session is not None
        self._dropped = False
        try:
            ws = await self._session.ws_connect(url, protocols=protocols, max_msg_size=0)
        except (aiohttp.ClientError, OSError) as exc:
            return 1006, str(exc)
        self._ws = ws
        pinger = asyncio.create_task(self._ping(ws)) if self._ping_interval > 0 else None
        reason = ""
        try:
            while True:
                message = await ws.receive()
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._handle(message.data.encode())
                elif message.type == aiohttp.WSMsgType.CLOSE:
                    reason = str(message.extra or "")
                elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            if pinger is not None:
                pinger.cancel()
            self._detach()
        if self._dropped:
            return 1006, "dropped by the client"
        return ws.close_code or 1006, reason

    def _detach(self) -> None:
        self._ws = None
        self.welcome = None
        # Resumes sent on that socket are void with it: the next connection sends its own.
        for ref, pending in list(self._pending.items()):
            if pending.resume and not pending.future.done():
                del self._pending[ref]
                pending.future.cancel()
        was_welcomed, self._welcomed = self._welcomed, False
        if not was_welcomed and not self._dropped:
            self._attempt += 1
            self._url_index += 1  # try the next replica
            if self._get_token is not None:
                self._token_reason = "refused"

    async def _after_close(self, code: int, reason: str) -> None:
        if code == CLOSE_TOO_LARGE:
            self._give_up(
                GatewayError(
                    f"the gateway closed the socket: a frame exceeded its limit ({reason})",
                    code="FRAME_TOO_LARGE",
                ),
                code,
                reason,
            )
        elif code == CLOSE_TOKEN_EXPIRED and self._get_token is None:
            error = GatewayError(
                "the token expired and no get_token was given", code="TOKEN_EXPIRED"
            )
            self._give_up(error, code, reason)
        else:
            delay = self._delay()
            if code == CLOSE_TOKEN_EXPIRED:
                self._token_reason = "expired"
                delay = 0.0
            elif code == CLOSE_GOING_AWAY:
                self._url_index += 1  # that replica is leaving
            if self._hold is not None:
                delay, self._hold = self._hold, None
            self._set_state(
                "disconnected", code=code, reason=reason, will_retry=True, retry_in_s=delay
            )
            await self._sleep(delay)
            return
        await self._sleep(None)  # until reconnect() or close()

    def _delay(self) -> float:
        # Full jitter: clients dropped together (a replica leaving) come back spread out.
        first, most = self._backoff
        cap = min(most, first * 2 ** max(0, self._attempt - 1))
        return float(first / 2 + random.random() * max(0.0, cap - first / 2))

    async def _sleep(self, delay: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    def _give_up(self, error: GatewayError, code: int, reason: str) -> None:
        self._fatal = error
        self._hold = None
        for ref in list(self._pending):
            self._fail_pending(ref, error)
        self._report(error)
        self._set_state("disconnected", code=code, reason=reason, will_retry=False)

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """An application ping each interval; no pong by the next one: the socket is lost."""
        while True:
            await asyncio.sleep(self._ping_interval)
            ref = self._next_ref("ping")
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._pending[ref] = _Pending({"op": "ping", "ref": ref}, future, resume=True)
            await self._transmit(ref)
            try:
                async with asyncio.timeout(self._ping_interval):
                    await future
            except TimeoutError:
                if self._ws is ws:
                    self.reconnect()
                return
            finally:
                self._pending.pop(ref, None)

    # -- frames -----------------------------------------------------------------------------

    def _handle(self, data: bytes) -> None:
        try:
            head = _head.decode(data)
        except msgspec.DecodeError:
            return
        if head.op == "event":
            try:
                event = _event_frame.decode(data).event
            except msgspec.ValidationError as exc:  # a newer gateway's event: skip, say so
                log.warning("client.event_unknown", error=str(exc))
                return
            self._on_event(event)
        elif head.op == "welcome":
            self._on_welcome(msgspec.json.decode(data))
        elif head.op == "subscribed":
            self._on_subscribed(head.ref, msgspec.json.decode(data, type=_Subscribed))
        elif head.op == "error":
            body = msgspec.json.decode(data)
            error = _error_of(body)
            if head.ref is not None and head.ref in self._pending:
                pending = self._pending[head.ref]
                if pending.delivery is not None:
                    self._drop_target(pending.delivery)
                self._fail_pending(head.ref, error)
            else:
                self._report(error)
        elif head.ref is not None:
            self._resolve(head.ref, data)

    def _resolve(self, ref: str, data: bytes) -> _Pending | None:
        pending = self._pending.pop(ref, None)
        if pending is not None and not pending.future.done():
            pending.future.set_result(data)
        return pending

    def _fail_pending(self, ref: str, error: Exception) -> None:
        pending = self._pending.pop(ref, None)
        if pending is not None and not pending.future.done():
            if pending.resume:  # the client's own: nobody else awaits it
                pending.future.cancel()
            else:
                pending.future.set_exception(error)

    def _on_welcome(self, welcome: dict[str, Any]) -> None:
        self._welcomed = True
        self.welcome = welcome
        self._attempt = 0
        resumed = self._ever_connected
        if resumed:
            self._reconnects += 1
        self._ever_connected = True
        resumes = [self._resume(target) for target in list(self._targets.values())]
        # Then every request still unanswered, with its own ref: the gateway acts once per ref.
        for ref, pending in list(self._pending.items()):
            if pending.delivery is None and not pending.resume:
                self._spawn(self._transmit(ref))
        if not resumed or not resumes:
            self._set_state("connected", **({"resumed": 0} if resumed else {}))
        self._spawn(self._finish_resume(self._ws, resumes, resumed))

    async def _finish_resume(
        self,
        ws: aiohttp.ClientWebSocketResponse | None,
        resumes: Sequence[Awaitable[None]],
        resumed: bool,
    ) -> None:
        """Subscribe again (the first subscribes too, on a first connection); once a resume is
        confirmed: connected, then catch the patterns up."""
        await asyncio.gather(*resumes, return_exceptions=True)
        if resumed and resumes and self._ws is ws and self._welcomed:
            self._set_state("connected", resumed=len(resumes))
            await self._catch_up()

    def _on_subscribed(self, ref: str | None, frame: _Subscribed) -> None:
        pending = self._pending.get(ref) if ref is not None else None
        if pending is None:
            return  # `start` and `recover` subscribe their caller, without a ref
        target = self._targets.get(str(pending.frame["conversation"]))
        if target is not None and target.delivery.exact:
            if frame.recovered is False:
                # The gateway lost this conversation's log: its seqs start again.
                self._last.pop(target.delivery.target, None)
                self._report(
                    GatewayError(
                        f"the log of {target.delivery.target} was lost (epoch {frame.epoch})",
                        code="LOG_RESET",
                        recoverable=True,
                        conversation=target.delivery.target,
                        seq=frame.seq,
                    )
                )
                target.delivery.start(frame.seq)
            elif not target.delivery.ready:
                target.delivery.start(frame.seq)
        assert ref is not None
        self._resolve(ref, msgspec.json.encode(frame))

    def _on_event(self, event: Event) -> None:
        for target in list(self._targets.values()):
            if target.delivery.matches(event.conversation_id):
                target.delivery.offer(event)

    def _emit(self, target: _Target, event: Event) -> None:
        for handle in target.handles:
            handle._put(event)
        if event.seq > self._last.get(event.conversation_id, 0):
            self._last[event.conversation_id] = event.seq
            self.store.set(event.conversation_id, event.seq)

    # -- requests ---------------------------------------------------------------------------

    def _next_ref(self, op: str) -> str:
        self._refs += 1
        return f"{self._ref_base}-{self._refs}-{op}"

    async def _transmit(self, ref: str) -> None:
        """Send the pending request now if connected; else it goes at the next welcome."""
        pending = self._pending.get(ref)
        ws = self._ws
        if pending is None or ws is None or not self._welcomed or ws.closed:
            return
        data = _encoder.encode(pending.frame)
        limit = (self.welcome or {}).get("max_frame_bytes")
        if isinstance(limit, int) and len(data) > limit:
            self._fail_pending(
                ref,
                GatewayError(
                    f"the frame is larger than the gateway takes ({limit} bytes): not sent",
                    code="FRAME_TOO_LARGE",
                    ref=ref,
                ),
            )
            return
        with contextlib.suppress(ConnectionError, RuntimeError):  # closing: resent later
            await ws.send_str(data.decode())

    async def _request(self, frame: dict[str, Any], *, delivery: Delivery | None = None) -> bytes:
        if self._closed:
            raise GatewayError("the client was closed", code="CLOSED")
        if self._fatal is not None:
            raise self._fatal
        self.start()
        ref = frame.setdefault("ref", self._next_ref(str(frame["op"])))
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[ref] = _Pending(frame, future, delivery)
        await self._transmit(ref)
        try:
            async with asyncio.timeout(self._request_timeout or None):
                return await asyncio.shield(future)
        except TimeoutError:
            if delivery is not None:
                self._drop_target(delivery)
            raise GatewayError(
                f"no answer to {frame['op']} within {self._request_timeout} s",
                code="TIMEOUT",
                recoverable=True,
                ref=ref,
            ) from None
        finally:
            if self._pending.get(ref) is not None and self._pending[ref].future is future:
                del self._pending[ref]

    # -- subscriptions ----------------------------------------------------------------------

    async def subscribe(self, target: str, since: int | None = None) -> Subscription:
        """Follow a conversation (or every conversation a pattern matches): `async for` the
        returned subscription yields each event once, in seq order per conversation, across
        reconnects. `since`: the last seq already seen (0: the whole log; default: the store's
        seq, else from now on). Patterns deliver live events only."""
        handle = Subscription(target, self._unsubscribe)
        existing = self._targets.get(target)
        if existing is not None:
            existing.handles.append(handle)
            handle.seq = existing.delivery.cursors.get(target, 0)
            return handle
        delivery = Delivery(
            target,
            lambda event: self._emit(entry, event),
            lambda conversation: self._spawn(self._check_gap(delivery, conversation)),
        )
        entry = _Target(delivery, [handle])
        self._targets[target] = entry
        frame: dict[str, Any] = {"op": "subscribe", "conversation": target}
        if not is_pattern(target):
            if since is None:
                since = self._last.get(target, self.store.get(target))
            if since is not None:
                frame["since"] = since
        answer = msgspec.json.decode(
            await self._request(frame, delivery=entry.delivery), type=_Subscribed
        )
        handle.seq = answer.seq
        return handle

    async def _unsubscribe(self, handle: Subscription) -> None:
        handle._put(None)
        target = self._targets.get(handle.target)
        if target is None or handle not in target.handles:
            return
        target.handles.remove(handle)
        if target.handles:
            return
        del self._targets[handle.target]
        if self._welcomed:
            with contextlib.suppress(GatewayError):
                await self._request({"op": "unsubscribe", "conversation": handle.target})

    def _drop_target(self, delivery: Delivery) -> None:
        target = self._targets.get(delivery.target)
        if target is not None and target.delivery is delivery:
            del self._targets[delivery.target]
            for handle in target.handles:
                handle._put(None)

    async def _resume(self, target: _Target) -> None:
        """After a reconnect: subscribe again from where the subscription stopped."""
        delivery = target.delivery
        for ref, pending in list(self._pending.items()):
            if pending.delivery is delivery:  # never confirmed: the first subscribe, again
                await self._transmit(ref)
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending.future)
                return
        frame: dict[str, Any] = {"op": "subscribe", "conversation": delivery.target}
        if delivery.exact:
            frame["since"] = delivery.cursors.get(delivery.target, 0)
        ref = self._next_ref("subscribe")
        frame["ref"] = ref
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[ref] = _Pending(frame, future, resume=True)
        await self._transmit(ref)
        try:
            await future
        except asyncio.CancelledError:
            if not future.cancelled():
                raise
        except GatewayError as exc:
            self._drop_target(delivery)
            self._report(exc)

    async def _check_gap(self, delivery: Delivery, conversation: str) -> None:
        """A subscription holds events beyond a gap. Usually the rest is on its way (a replay
        behind a pattern's live copy, a catch-up); events trimmed from the log (retention) never
        come. If the log has nothing between the cursor and the first held seq, the gap is
        permanent: report it and go on."""
        await asyncio.sleep(0)  # let the frame that made the gap be handled first
        first = delivery.first_held(conversation)
        target = self._targets.get(delivery.target)
        if first is None or target is None or target.delivery is not delivery:
            return
        try:
            page = await self.history(conversation, before=first, limit=1)
        except GatewayError as exc:
            self._report(exc)
            return
        cursor = delivery.cursors.get(conversation, 0)
        before = page.events[-1].seq if page.events else 0
        if before <= cursor and delivery.first_held(conversation) == first:
            self._gap(Gap(conversation, cursor, first))
            delivery.skip_to(conversation, first)

    def _gap(self, gap: Gap) -> None:
        for listener in list(self._gap_listeners):
            listener(gap)
        if not self._gap_listeners:
            log.warning("client.gap", conversation=gap.conversation, after=gap.after, next=gap.next)

    async def _catch_up(self) -> None:
        """A pattern delivers live events only: after a reconnect, read what its conversations
        missed from the log (those no exact subscription replays)."""
        patterns = [t.delivery for t in self._targets.values() if not t.delivery.exact]
        wanted: dict[str, int] = {}
        for pattern in patterns:
            for conversation, cursor in pattern.cursors.items():
                if conversation not in self._targets:
                    wanted[conversation] = min(cursor, wanted.get(conversation, cursor))
        for conversation, since in wanted.items():
            try:
                events = await self._events_after(conversation, since)
            except GatewayError as exc:
                self._report(exc)
                continue
            first = events[0].seq if events else 0
            if first > since + 1:  # the log no longer has what came between (retention)
                self._gap(Gap(conversation, since, first))
                for pattern in patterns:
                    if pattern.matches(conversation):
                        pattern.skip_to(conversation, first)
            for event in events:
                for pattern in patterns:
                    if pattern.matches(conversation):
                        pattern.offer(event)

    async def _events_after(self, conversation: str, since: int) -> list[Event]:
        events: list[Event] = []
        before: int | None = None
        while True:
            page = await self.history(conversation, before=before, limit=HISTORY_PAGE)
            events = page.events + events
            if not page.has_more or not page.events or page.events[0].seq <= since + 1:
                break
            before = page.events[0].seq
        return [e for e in events if e.seq > since]


def _error_of(body: dict[str, Any]) -> GatewayError:
    details = {k: v for k, v in body.items() if k not in ("op", "code", "message", "recoverable")}
    return GatewayError(
        str(body.get("message", "")),
        code=str(body.get("code", "INTERNAL")),
        recoverable=bool(body.get("recoverable", False)),
        **details,
    )
