"""The Wonderful connector: one live chat session over the platform's chat WebSocket.

The socket: `wss://<host>/api/v1/agents/{agentId}/chat?commType=chat`. The server opens with
`{"type": "start", "communication_id"}`: the session's birth, its id the session id (`open`
returns once it has it). The client then sends `{"type": "init", "metadata"}` and, for each
user text, `{"type": "message", "text"}`; the server streams every line of the conversation
as a `transcript` (the customer's own lines included), `turn_ended` and `communication_ended`.

Settings (`GATEWAY_WONDERFUL_*`): `URL` (default `https://api.wonderful.ai`; `ws`/`wss` for the
socket is derived from it), `API_KEY` and/or `TOKEN`, `AGENT_ID` (the default agent),
`WS_AUTH`, `SESSIONS_PATH`, `REJOIN_PARAM`, `HTTP_RETRIES`, and the common link options of
`gateway.reconnect` with the SDK's defaults: `timeout_s` 30, `backoff_s` 1, `backoff_max_s` 30,
`max_attempts` 5, `heartbeat_s` 30.

Auth: `WS_AUTH=header` (the default when an API key is configured: a server-side client)
sends `X-API-Key: <key>` or, with a token alone, `Authorization: Bearer <jwt>`; `subprotocol`
(the default with a token alone, as a browser does) offers the WebSocket subprotocol pair
`apikey, <key>` or `token, <token>`. REST requests carry the header form.

Send: a text goes on the socket and is acknowledged by its echo, the `transcript` with speaker
`customer` that comes back: `send` returns that line's message (the id the echo has, so the hub
stores it once). What the socket has no frame for goes to REST paths that are NOT public (ours,
under `SESSIONS_PATH`, see `encode`): image and document messages (answered with the message's
`eventId`), end, forward, and the session's history (recover). Every POST carries an
`Idempotency-Key` (from the command's `ref`, else fresh per command) and is retried
`HTTP_RETRIES` times (3) on connection failures and 5xx.

Position: the history is an append-only list and the socket streams the same lines in the
same order. `position` counts history lines delivered; a (re)connect opens the socket FIRST and
fetches the history SECOND, so a line lands in the history, or on the socket after the fetch,
or both (then its id is already seen): nothing falls between. An inbound batch counts in
`position` only once the caller asks for the next one (it has published it by then); the events
`open`/`resume` return count at once (the caller publishes them before persisting the snapshot).
`snapshot()` = `{session_id, position, agent_id, locale}`.

End: `communication_ended`, or a close with code 1000 (the notes: the session ended normally,
do not reconnect). Link: the raw wire has no way back into a running session that the notes
document; ours is the chat URL with `REJOIN_PARAM=<session id>` (default `communicationId`),
answered with the same `start`. Any other close is a lost socket: it gives `link down`
(will_retry), then per attempt `link retrying` (attempt, max_attempts) and a jittered backoff,
then `link restored` with `missed` = lines fetched on recovery. After `max_attempts` failures,
`link down` (will_retry false) ends `inbound()`; so does `ended`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
import structlog
from aiohttp import WSCloseCode

from adapters.wonderful import decode, encode
from adapters.wonderful.decode import SPEC
from adapters.wonderful.encode import IDEMPOTENCY_HEADER
from adapters.wonderful.errors import handshake_error, platform_error
from adapters.wonderful.native import (
    DIALECT,
    STATUSES,
    ChatSession,
    Connected,
    ConnectedFrame,
    Disconnected,
    DisconnectedFrame,
    Reconnected,
    ReconnectedFrame,
    Reconnecting,
    ReconnectingFrame,
    SendResponse,
    StartFrame,
)
from gateway.adapter import Connector, DialectSettings, NativeRequest
from gateway.codec import derived_id, tag_reader
from gateway.errors import GatewayError, RequestError, SessionNotFound, VendorError
from gateway.mailbox import Mailbox
from gateway.model import (
    Command,
    End,
    Ended,
    EndReason,
    Error,
    Event,
    Forward,
    Message,
    Recover,
    Send,
    Start,
    Text,
    now_at,
)
from gateway.reconnect import LinkOptions
from gateway.vendor_http import VendorHttp

log = structlog.get_logger(__name__)

DEFAULT_URL = "https://api.wonderful.ai"
SDK_DEFAULTS: dict[str, Any] = {
    "timeout_s": 30,
    "backoff_s": 1,
    "backoff_max_s": 30,
    "max_attempts": 5,
    "heartbeat_s": 30,
}
"""The Wonderful SDK's own policy: HTTP timeout 30 s, backoff from 1 s, at most 5 reconnect
attempts, a ping every 30 s (shared/DIALECTS.md)."""
_session_decoder = msgspec.json.Decoder(ChatSession)
_send_decoder = msgspec.json.Decoder(SendResponse)
_start_decoder = msgspec.json.Decoder(StartFrame)


class WonderfulConnector(Connector):
    def __init__(self, settings: DialectSettings, http: VendorHttp) -> None:
        options = settings.options
        self._http = http
        self._base = (settings.url or DEFAULT_URL).rstrip("/")
        self._link = LinkOptions.read(options, **SDK_DEFAULTS)
        self._timeout = aiohttp.ClientTimeout(total=self._link.timeout_s)
        self._http_retries = _count(options, "http_retries", 3)
        self._sessions_path = options.get("sessions_path") or encode.SESSIONS_PATH
        self._rejoin_param = options.get("rejoin_param") or "communicationId"
        self._headers, self._ws_headers, self._protocols = _auth(options)
        self._agent_id = options.get("agent_id")
        self._locale: str | None = None  # the start's, as the session's history lines carry it
        self._session_id = ""
        self._chat_path = ""
        self._position = 0  # history lines delivered AND taken by the caller (persisted)
        self._upto = 0  # history lines the batches made so far account for
        self._seen: set[str] = set()  # line ids delivered
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        # Batches read, each with the `_upto` it brings `position` to; None: the link is lost.
        self._batches: Mailbox[tuple[list[Event], int] | None] = Mailbox()
        self._echoes: list[tuple[str, asyncio.Future[Message]]] = []  # sent texts, oldest first
        self._ending: Ended | None = None  # the end of an end or forward we asked for
        self._ended = False
        self._closing = False

    # -- the contract ----------------------------------------------------------------------

    async def open(self, command: Start) -> Sequence[Event]:
        request = encode.encode(command, self._session())
        self._agent_id = command.agent_id or self._agent_id
        self._locale = command.locale
        self._chat_path = request.path
        ws, self._session_id, started = await self._connect(request.query)
        self.conversation_id = f"{DIALECT}:{self._session_id}"
        try:
            await ws.send_str(msgspec.json.encode(request.frame).decode())  # init
        except (aiohttp.ClientError, ConnectionError) as exc:
            await ws.close()
            raise VendorError(f"the socket failed: {type(exc).__name__}") from None
        log.info("connector.opened", conversation_id=self.conversation_id)
        self._listen(ws)
        return [*await self._decode(started), await self._link_up()]

    async def resume(self, state: Mapping[str, Any]) -> Sequence[Event]:
        self._session_id = str(state["session_id"])
        self._position = self._upto = int(state.get("position", 0))
        self._agent_id = state.get("agent_id") or self._agent_id
        self._locale = state.get("locale")
        self.conversation_id = f"{DIALECT}:{self._session_id}"
        if not self._agent_id:
            raise RequestError("resume needs the session's agent (`agent_id`)")
        self._chat_path = encode.chat_path(self._agent_id)
        log.info("connector.resuming", conversation_id=self.conversation_id)
        ws = await self._rejoin()
        try:
            history = await self._history()
        except BaseException:
            await ws.close()
            raise
        events = [decode.status_event(history), await self._link_up(), *self._fresh(history)]
        self._position = self._upto  # returned events count at once: published before persisted
        self._listen(ws)
        return [*events, *self._end_if_over(history)]

    def snapshot(self) -> dict[str, Any]:
        return {
            "session_id": self._session_id,
            "position": self._position,
            "agent_id": self._agent_id,
            "locale": self._locale,
        }

    async def inbound(self) -> AsyncIterator[Sequence[Event]]:
        while True:
            item = await self._batches.get()
            if item is None:  # the socket is gone
                if self._ended or self._closing:
                    return
                log.info("connector.link_lost", conversation_id=self.conversation_id)
                async for batch in self._reconnect():
                    yield batch
                    self._position = self._upto
                if self._ended:
                    return
                continue
            batch, upto = item
            yield batch
            self._position = upto  # asked for more: the caller has published that batch
            if any(isinstance(event, Ended) for event in batch):
                return

    async def send(self, command: Command) -> Sequence[Event]:
        if isinstance(command, Start | Recover):
            raise RequestError("start and recover are `open` and `resume`, not `send`")
        if self._ended:
            raise RequestError("the session has ended", code="SESSION_ENDED")
        request = encode.encode(command, self._session())
        if request.frame is not None:
            return [await self._say(request.frame)]
        ending = None
        if isinstance(command, End | Forward):
            reason: EndReason = "user" if isinstance(command, End) else "forwarded"
            ending = self._ending = decode.ended_event(self._session_id, reason, "user")
        try:
            answer = await self._call(request, _key(command))
        except BaseException:
            self._ending = None
            raise
        if isinstance(command, Send):
            try:
                sent = encode.sent_message(command, _send_decoder.decode(answer), self._locale)
            except msgspec.ValidationError as exc:
                raise VendorError(f"unexpected send answer: {exc}") from None
            self._seen.add(sent.id.rpartition("/")[2])
            return [sent]
        return [] if ending is None else [ending]

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self._batches.put_nowait(None)  # an `inbound()` waiting for a batch ends

    # -- the socket ------------------------------------------------------------------------

    def _session(self) -> dict[str, Any]:
        """The snapshot with the settings `encode` reads."""
        return {**self.snapshot(), "sessions_path": self._sessions_path}

    async def _connect(
        self, query: Mapping[str, str]
    ) -> tuple[aiohttp.ClientWebSocketResponse, str, bytes]:
        """Open the chat socket and take its first frame, which must be `start`: returns the
        socket, the communication id and the frame as it came."""
        url = _socket_url(self._base) + self._chat_path
        try:
            async with asyncio.timeout(self._link.timeout_s):
                ws = await self._http.held.ws_connect(
                    url,
                    params=query,
                    headers=self._ws_headers,
                    protocols=self._protocols,
                    heartbeat=self._link.heartbeat_s,
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise handshake_error(exc) from None
        try:
            async with asyncio.timeout(self._link.timeout_s):
                first = await ws.receive()
            if first.type is not aiohttp.WSMsgType.TEXT:
                raise VendorError("the socket closed before `start`")
            started = str(first.data).encode()
            try:
                session = _start_decoder.decode(started).communication_id
            except msgspec.DecodeError:
                raise VendorError("the socket did not open with `start`") from None
        except BaseException:
            await ws.close()
            raise
        return ws, session, started

    async def _rejoin(self) -> aiohttp.ClientWebSocketResponse:
        """Open the socket back into this session (ours: see the module docstring)."""
        query = {**encode.CHAT_QUERY, self._rejoin_param: self._session_id}
        ws, session, _ = await self._connect(query)
        if session != self._session_id:
            await ws.close()
            raise VendorError("the platform opened another session instead of this one")
        return ws

    def _listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._reader = asyncio.get_running_loop().create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read the socket into `_batches` until it closes or the session ends, apart from
        `inbound()`: a `send` waiting for its echo must not wait for the caller to ask."""
        code = None  # the platform's close code, as it said it
        try:
            while not self._ended:
                frame = await ws.receive()
                if frame.type is aiohttp.WSMsgType.TEXT:
                    batch = await self._live(frame.data)
                    if _is_turn_end(frame.data):
                        batch += await self._sync()
                    if batch:
                        self._batches.put_nowait((batch, self._upto))
                elif frame.type in _CLOSED:
                    code = frame.data if frame.type is aiohttp.WSMsgType.CLOSE else None
                    break
        except (aiohttp.ClientError, ConnectionError) as exc:  # lost like a close: reconnect
            log.debug("connector.read_failed", error=type(exc).__name__)
        finally:
            self._fail_echoes("the link was lost before the platform echoed the message")
            if code == WSCloseCode.OK and not self._ended and not self._closing:
                # The notes: an intentional close (1000) is the session's normal end.
                self._batches.put_nowait(([self._end()], self._upto))
            if self._ended:
                await ws.close()
            self._batches.put_nowait(None)

    async def _decode(self, frame: bytes) -> list[Event]:
        """A frame of the socket, or one of the SDK's link reports the connector makes, through
        the shared pipeline; a bad frame is an `error` event (the session goes on)."""
        return await self.decode_batch(SPEC, frame, self._session_id)

    async def _live(self, text: str) -> list[Event]:
        """One socket frame as the events not delivered yet."""
        try:
            decoded = await self._decode(text.encode())
        except GatewayError as exc:  # not JSON at all: no frame to isolate
            log.warning("connector.bad_frame", error=exc.message)
            return [
                Error(
                    id=derived_id(self.conversation_id, "bad-frame", text),
                    conversation_id=self.conversation_id,
                    dialect=DIALECT,
                    at=now_at(),
                    code=exc.code,
                    message=exc.message,
                )
            ]
        out: list[Event] = []
        for event in decoded:
            if isinstance(event, Message):
                line = event.id.rpartition("/")[2]
                if line in self._seen:
                    continue  # fetched with the history already
                self._seen.add(line)
                self._upto += 1
                self._echoed(event)
            elif isinstance(event, Ended):
                self._ended = True
                event = self._ending or event  # the raw wire says no more than "ended"
            out.append(event)
        return out

    async def _say(self, frame: Any) -> Message:
        """Send a text frame; returns its echo (waits `timeout_s` for it)."""
        ws = self._ws
        if ws is None or ws.closed:
            raise VendorError("the platform link is down: try again")
        text = str(frame["text"])
        echo: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._echoes.append((text, echo))
        try:
            await ws.send_str(msgspec.json.encode(frame).decode())
            async with asyncio.timeout(self._link.timeout_s):
                return await echo
        except TimeoutError:
            raise VendorError("the platform did not echo the message in time") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise VendorError(f"the socket failed: {type(exc).__name__}") from None
        finally:
            self._echoes = [e for e in self._echoes if e[1] is not echo]

    def _echoed(self, line: Event) -> None:
        """A line delivered (by the socket or the history): a customer's text is the echo of
        the oldest text sent with the same text, else of the oldest text sent (the platform
        may mask what it echoes, `PII_MASKING_ENABLED`)."""
        waiting = [(text, echo) for text, echo in self._echoes if not echo.done()]
        if not waiting or not isinstance(line, Message) or line.sender.role != "user":
            return
        if not isinstance(line.content, Text):
            return
        said = line.content.text
        echo = next((e for text, e in waiting if text == said), waiting[0][1])
        echo.set_result(line)

    def _fail_echoes(self, reason: str) -> None:
        for _, echo in self._echoes:
            if not echo.done():
                echo.set_exception(VendorError(reason))

    async def _reconnect(self) -> AsyncIterator[list[Event]]:
        """The SDK's policy: `max_attempts` tries, jittered exponential backoff, then give up."""
        self._ws = None
        yield [await self._link_event(DisconnectedFrame(data=Disconnected("network", True)))]
        attempt = 1
        while not self._link.gives_up(attempt):
            retrying = Reconnecting(attempt, self._link.max_attempts)
            yield [await self._link_event(ReconnectingFrame(data=retrying))]
            await asyncio.sleep(self._link.delay(attempt))
            ws = None
            try:
                ws = await self._rejoin()
                history = await self._history()
            except SessionNotFound:
                yield [self._end("error", "system")]
                return
            except (GatewayError, aiohttp.ClientError, TimeoutError) as exc:
                log.info("connector.retry_failed", attempt=attempt, error=type(exc).__name__)
                if ws is not None:
                    await ws.close()
                attempt += 1
                continue
            missed = self._fresh(history)
            restored = Reconnected(reconnected_at=now_at(), missed_messages=len(missed))
            log.info("connector.reconnected", attempt=attempt, missed=len(missed))
            over = self._end_if_over(history)
            if not over:
                self._listen(ws)
            else:
                await ws.close()
            yield [await self._link_event(ReconnectedFrame(data=restored)), *missed, *over]
            return
        self._ended = True  # the SDK gives up here too; the session layer decides what next
        yield [await self._link_event(DisconnectedFrame(data=Disconnected("network", False)))]

    async def _sync(self) -> list[Event]:
        """At the end of a turn, the history's lines the socket did not carry (it streams text
        lines only: a file the agent sent is in the history alone)."""
        try:
            return self._fresh(await self._history())
        except (GatewayError, aiohttp.ClientError) as exc:  # the next turn or reconnect will
            log.warning("connector.sync_failed", error=str(exc))
            return []

    def _fresh(self, history: ChatSession) -> list[Event]:
        """The history's lines past `_upto` that this connector has not delivered; all the
        history is then accounted for (delivered now, or before by the socket or a send)."""
        fresh = [m for m in history.messages[self._upto :] if m.event_id not in self._seen]
        events = decode.message_events(fresh)  # first: a bad line must not move the position
        self._seen.update(m.event_id for m in fresh)
        self._upto = max(self._upto, len(history.messages))
        for event in events:
            self._echoed(event)
        return events

    async def _link_up(self) -> Event:
        return await self._link_event(ConnectedFrame(data=Connected(self._session_id, now_at())))

    async def _link_event(self, frame: Any) -> Event:
        """`frame`, one of the SDK's own link events, stamped now and decoded."""
        stamped = msgspec.structs.replace(frame, timestamp=now_at())
        [event] = await self._decode(msgspec.json.encode(stamped))
        return event

    def _end(self, reason: EndReason = "completed", by: Any = None) -> Ended:
        """The session's end, as the connector learns it (the end it asked for, if it did)."""
        self._ended = True
        return self._ending or decode.ended_event(self._session_id, reason, by)

    def _end_if_over(self, history: ChatSession) -> list[Event]:
        """`ended` when the history says the session is over (it ended while nobody listened)."""
        status = STATUSES[history.status]
        if status == "active":
            return []
        return [self._end("completed" if status == "completed" else "error")]

    # -- REST ------------------------------------------------------------------------------

    async def _history(self) -> ChatSession:
        request = encode.encode(Recover(conversation=self.conversation_id), self._session())
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
                async with self._http.requests.request(
                    request.method, url, json=request.json, headers=headers, timeout=self._timeout
                ) as response:
                    body = await response.read()
                    if response.status < 400:
                        return body
                    if response.status < 500 or attempt == self._http_retries:
                        raise platform_error(response.status, body)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt == self._http_retries:
                    raise VendorError(f"platform unreachable: {type(exc).__name__}") from exc
            await asyncio.sleep(self._link.delay(attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover


def _auth(
    options: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, str], tuple[str, ...]]:
    """`(REST headers, socket headers, socket subprotocols)`, as `WS_AUTH` chooses (see the
    module docstring): REST requests always send the header form of the credential."""
    key, token = options.get("api_key"), options.get("token")
    headers = {"X-API-Key": key} if key else {"Authorization": f"Bearer {token}"} if token else {}
    mode = options.get("ws_auth") or ("header" if key else "subprotocol")
    if mode not in ("header", "subprotocol"):
        raise RequestError(
            f"connector option ws_auth = {mode!r}: `header` or `subprotocol`", parameter="ws_auth"
        )
    if mode == "header" or not (key or token):
        return headers, headers, ()
    return headers, {}, ("apikey", key) if key else ("token", str(token))


def _count(options: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(options.get(name, default))
    except ValueError:
        value = -1
    if value < 0:
        raise RequestError(f"connector option {name}: a count", parameter=name)
    return value


_type_of = tag_reader("type")
_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


def _is_turn_end(text: str) -> bool:
    """Whether a socket frame is `turn_ended` (all of the turn's transcript came before it)."""
    try:
        return bool(_type_of(msgspec.Raw(text.encode())) == "turn_ended")
    except msgspec.DecodeError:  # not a JSON object: `_live` has reported it
        return False


def _socket_url(base: str) -> str:
    """The WebSocket origin of the REST base URL (`https` → `wss`, `http` → `ws`)."""
    scheme, sep, rest = base.partition("://")
    return {"https": "wss", "http": "ws"}.get(scheme, scheme) + sep + rest


def _key(command: Command) -> str:
    """The `Idempotency-Key` of the POST carrying `command`: its ref's, else a fresh one (which
    still makes the retries of this one call safe)."""
    return encode.idempotency_key(command) or uuid.uuid4().hex
