"""The Wonderful connector: one live chat session over REST + WebSocket, as the SDK runs it.

Settings (`GATEWAY_WONDERFUL_*`): `URL` (default `https://api.wonderful.ai`), `API_KEY` or `TOKEN`
(sent as `Authorization: Bearer`), `AGENT_ID` (the default agent), `PING_INTERVAL` (30 s),
`MAX_ATTEMPTS` (5 reconnects), `BACKOFF` (1 s, doubled per attempt up to `BACKOFF_MAX`, 30 s),
`TIMEOUT` (30 s per HTTP request) and `HTTP_RETRIES` (3, for connection failures and 5xx).
Every POST carries an `Idempotency-Key` (from the command's `ref`, else fresh per command) so a
retried POST whose first answer was lost is delivered once.

Position: the session's message history is an append-only list, and the WebSocket pushes the
same messages in the same order. `position` counts the history messages already delivered; on
every (re)connect the socket is opened FIRST and the history fetched SECOND, so a message lands
in the history, or on the socket after the fetch, or both (then its id is already seen): nothing
falls between. `snapshot()` = `{session_id, position, agent_id, locale}`; `resume` fetches
from there.
An inbound batch counts in `position` only once the caller asks for the next one (it has
published it by then), so a snapshot persisted meanwhile never skips it; the events `open` and
`resume` return count at once (the caller must publish them before persisting the snapshot).

Link: a lost socket gives `link down` (will_retry), then per attempt `link retrying` (attempt,
max_attempts) and a backoff, then `link restored` with `missed` = messages fetched on recovery.
After `max_attempts` failures, `link down` (will_retry false) ends `inbound()`; so does `ended`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
import structlog

from adapters.wonderful import decode, encode
from adapters.wonderful.encode import IDEMPOTENCY_HEADER
from adapters.wonderful.frames import (
    Disconnected,
    DisconnectedFrame,
    EndedData,
    EndedFrame,
    Reconnected,
    ReconnectedFrame,
    Reconnecting,
    ReconnectingFrame,
)
from adapters.wonderful.native import ChatSession, SendResponse
from adapters.wonderful.refusals import handshake_error, platform_error
from gateway.adapter import Connector, DialectSettings, NativeRequest
from gateway.errors import GatewayError, RequestError, SessionNotFound, VendorError
from gateway.model import Command, Ended, Event, Link, Message, Recover, Send, Start, now_at

log = structlog.get_logger(__name__)

DEFAULT_URL = "https://api.wonderful.ai"
_session_decoder = msgspec.json.Decoder(ChatSession)
_send_decoder = msgspec.json.Decoder(SendResponse)


class WonderfulConnector(Connector):
    def __init__(self, settings: DialectSettings, http: aiohttp.ClientSession) -> None:
        options = settings.options
        self._http = http
        self._base = (settings.url or DEFAULT_URL).rstrip("/")
        credential = options.get("api_key") or options.get("token")
        self._headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._agent_id = options.get("agent_id")
        self._locale: str | None = None  # the session's, as its messages carry it
        self._ping = float(options.get("ping_interval", 30))
        self._max_attempts = int(options.get("max_attempts", 5))
        self._backoff = float(options.get("backoff", 1))
        self._backoff_max = float(options.get("backoff_max", 30))
        self._timeout = aiohttp.ClientTimeout(total=float(options.get("timeout", 30)))
        self._http_retries = int(options.get("http_retries", 3))
        self._session_id = ""
        self._position = 0  # history messages delivered AND taken by the caller (persisted)
        self._pending = 0  # delivered in the batch the caller holds, not yet taken
        self._seen: set[str] = set()  # eventIds delivered
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ended = False
        self._closing = False

    # -- the contract ----------------------------------------------------------------------

    async def open(self, command: Start) -> Sequence[Event]:
        request = encode.encode(command, {"agent_id": self._agent_id})
        session = _session_decoder.decode(await self._call(request, _key(command)))
        self._locale = request.json["locale"]
        self._session_id = session.session_id
        self.conversation_id = f"{decode.DIALECT}:{session.session_id}"
        log.info("connector.opened", conversation_id=self.conversation_id)
        return await self._attach()

    async def resume(self, state: Mapping[str, Any]) -> Sequence[Event]:
        self._session_id = str(state["session_id"])
        self._position = int(state.get("position", 0))
        self._agent_id = state.get("agent_id") or self._agent_id
        self._locale = state.get("locale")
        self.conversation_id = f"{decode.DIALECT}:{self._session_id}"
        log.info("connector.resuming", conversation_id=self.conversation_id)
        return await self._attach()

    def snapshot(self) -> dict[str, Any]:
        return {
            "session_id": self._session_id,
            "position": self._position,
            "agent_id": self._agent_id,
            "locale": self._locale,
        }

    async def inbound(self) -> AsyncIterator[Sequence[Event]]:
        while not self._ended and not self._closing:
            ws = self._ws
            if ws is not None:
                async for batch in self._read(ws):
                    yield batch
                    self._commit()  # asked for more: the caller has published that batch
            if self._ended or self._closing:
                return
            async for batch in self._reconnect():
                yield batch
                self._commit()

    async def send(self, command: Command) -> Sequence[Event]:
        if isinstance(command, Start | Recover):
            raise RequestError("start and recover are `open` and `resume`, not `send`")
        request = encode.encode(command, self.snapshot())
        answer = await self._call(request, _key(command))
        if isinstance(command, Send):
            try:
                return [encode.sent_message(command, _send_decoder.decode(answer), self._locale)]
            except msgspec.ValidationError as exc:
                raise VendorError(f"unexpected send answer: {exc}") from None
        return []  # end and forward: the platform reports them as an `ended` event

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    # -- the link --------------------------------------------------------------------------

    async def _attach(self) -> list[Event]:
        """Connect the socket, then fetch what the history holds past `position`: the session's
        status (its id dedups a repeat), `link up`, the messages, and `ended` if it is over."""
        up = await self._connect()
        try:
            history = await self._history()
        except BaseException:
            await self.close()
            raise
        events = [decode.status_event(history), up, *self._fresh(history)]
        self._commit()  # returned events count at once: the caller publishes before persisting
        return [*events, *self._end_if_over(history)]

    async def _connect(self) -> Link:
        """Open the socket and take its `connected` frame; returns it as `link up`."""
        url = f"{self._base}{encode.SESSIONS_PATH}/{self._session_id}/ws"
        try:
            ws = await self._http.ws_connect(url, headers=self._headers, heartbeat=self._ping)
        except aiohttp.WSServerHandshakeError as exc:
            raise handshake_error(exc) from None
        try:
            first = await ws.receive(timeout=self._timeout.total)
            events = (
                decode.decode(first.data.encode(), self._session_id).events
                if first.type is aiohttp.WSMsgType.TEXT
                else []
            )
            if len(events) != 1 or not isinstance(event := events[0], Link):
                raise VendorError("the socket did not open with `connected`")
        except BaseException:
            await ws.close()
            raise
        self._ws = ws
        return event

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[list[Event]]:
        """Yield the socket's events until it closes or the session ends."""
        try:
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    decoded = decode.decode(frame.data.encode(), self._session_id)
                except GatewayError as exc:  # one bad frame must not cost the session
                    log.warning("connector.bad_frame", error=exc.message)
                    continue
                batch = self._fresh_events(decoded.events)
                if batch:
                    yield batch
                if self._ended:
                    await ws.close()
                    return
        except (aiohttp.ClientError, ConnectionError) as exc:  # lost like a close: reconnect
            log.debug("connector.read_failed", error=type(exc).__name__)
        if not self._closing:
            log.info(
                "connector.link_lost", conversation_id=self.conversation_id, code=ws.close_code
            )

    async def _reconnect(self) -> AsyncIterator[list[Event]]:
        """The SDK's policy: `max_attempts` tries, exponential backoff, then give up."""
        self._ws = None
        down = Disconnected(reason="network", will_retry=True)
        yield [self._now(DisconnectedFrame(data=down, timestamp=now_at()))]
        for attempt in range(1, self._max_attempts + 1):
            retrying = Reconnecting(attempt, self._max_attempts)
            yield [self._now(ReconnectingFrame(data=retrying, timestamp=now_at()))]
            await asyncio.sleep(min(self._backoff * 2 ** (attempt - 1), self._backoff_max))
            try:
                await self._connect()
                history = await self._history()
            except SessionNotFound:
                yield [self._ended_event("error", "system")]
                return
            except (GatewayError, aiohttp.ClientError, TimeoutError) as exc:
                log.info("connector.retry_failed", attempt=attempt, error=type(exc).__name__)
                if self._ws is not None:
                    await self._ws.close()
                    self._ws = None
                continue
            missed = self._fresh(history)
            restored = Reconnected(reconnected_at=now_at(), missed_messages=len(missed))
            batch = [
                self._now(ReconnectedFrame(data=restored)),
                *missed,
                *self._end_if_over(history),
            ]
            log.info("connector.reconnected", attempt=attempt, missed=len(missed))
            yield batch
            return
        self._ended = True  # the SDK gives up here too; the session layer decides what next
        gone = Disconnected(reason="network", will_retry=False)
        yield [self._now(DisconnectedFrame(data=gone, timestamp=now_at()))]

    def _fresh(self, history: ChatSession) -> list[Event]:
        """The history's messages past `position` that this connector has not delivered."""
        fresh = [m for m in history.messages[self._position :] if m.event_id not in self._seen]
        events = decode.message_events(fresh)  # first: a bad message must not move the position
        self._seen.update(m.event_id for m in fresh)
        self._pending += len(fresh)
        return events

    def _fresh_events(self, events: Sequence[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if isinstance(event, Message):
                native_id = event.id.rpartition("/")[2]
                if native_id in self._seen:
                    continue  # fetched with the history already
                self._seen.add(native_id)
                self._pending += 1
            elif isinstance(event, Ended):
                self._ended = True
            elif isinstance(event, Link) and event.state == "up":
                continue  # a second `connected` on the same socket says nothing new
            out.append(event)
        return out

    def _commit(self) -> None:
        self._position += self._pending
        self._pending = 0

    def _now(self, frame: Any) -> Event:
        """`frame`, one of the SDK's own session events, stamped now and decoded."""
        return decode.to_event(frame, self._session_id)

    def _end_if_over(self, history: ChatSession) -> list[Event]:
        """`ended` when the history says the session is over (it ended while nobody listened)."""
        status = decode.session_status(history)
        if status == "active":
            return []
        return [self._ended_event("completed" if status == "completed" else "error")]

    def _ended_event(self, reason: Any = "completed", by: Any = None) -> Event:
        self._ended = True
        return self._now(EndedFrame(data=EndedData(reason, by), timestamp=now_at()))

    # -- REST ------------------------------------------------------------------------------

    async def _history(self) -> ChatSession:
        request = NativeRequest(method="GET", path=f"{encode.SESSIONS_PATH}/{self._session_id}")
        try:
            return _session_decoder.decode(await self._call(request))
        except msgspec.ValidationError as exc:
            raise VendorError(f"unexpected session answer: {exc}") from None

    async def _call(self, request: NativeRequest, key: str | None = None) -> bytes:
        """Do `request`; retries connection failures and 5xx (every try with the same
        `Idempotency-Key` `key`, when given); maps the platform's errors."""
        url = self._base + request.path
        headers = self._headers if key is None else {**self._headers, IDEMPOTENCY_HEADER: key}
        for attempt in range(self._http_retries + 1):
            log.debug("connector.request", method=request.method, path=request.path)
            try:
                async with self._http.request(
                    request.method,
                    url,
                    json=request.json,
                    headers=headers,
                    timeout=self._timeout,
                ) as response:
                    body = await response.read()
                    if response.status < 400:
                        return body
                    if response.status < 500 or attempt == self._http_retries:
                        raise platform_error(response.status, body)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt == self._http_retries:
                    raise VendorError(f"platform unreachable: {type(exc).__name__}") from exc
            await asyncio.sleep(min(self._backoff * 2**attempt, self._backoff_max))
        raise AssertionError("unreachable")  # pragma: no cover


def _key(command: Command) -> str:
    """The `Idempotency-Key` of the POST carrying `command`: its ref's, else a fresh one (which
    still makes the retries of this one call safe)."""
    return encode.idempotency_key(command) or uuid.uuid4().hex
