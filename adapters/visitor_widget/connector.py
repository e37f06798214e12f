"""The visitor widget connector: one visitor's Socket.IO v2 session with the platform.

Settings: `GATEWAY_VISITOR_WIDGET_URL` (default `https://websocket-visitors.smartsupp.com`) and
options `key` (the account key, required), `group`, `path` (`/socket`), and the common link
options of `gateway.reconnect` with the vendor SDK's socket.io-client 2 defaults: `timeout_s`
(connect, and the wait for an ack: 20), `backoff_s` (1), `backoff_max_s` (5), `max_attempts`
(0: never give up). The server sets the ping interval (Engine.IO v3): `heartbeat_s` is unused.

Lazy chats: when the `visitor.connect` ack carries no chat (the platform creates it with the
first message), `open` sends nothing more and the conversation is `visitor_widget:<visitor id>`;
the chat id, learnt from the first `chat.message` ack (or any frame naming it), goes into the
snapshot, but the conversation id never changes: every event of the session is pinned to it.
An `end` before any chat exists ends the session without a call.

Every (re)connect emits `visitor.connect` (the first with `id: null`, every later one with the
identity the platform returned, as the SDK does: `encode.reconnect_frame`) and turns its ack
into the `initialized` state, from which only what was not published yet is emitted (rows
after the persisted cursor and not seen, status and availability only when they changed).
Commands wait until the link is initialized. `chat.typing` and `chat.read` are emitted without
an ack (`encode.NO_ACK`); every other command waits for its ack. A sent message's ack is the
Message its echo will carry; the echo is dropped by message id.

    snapshot() = {"visitor_id", "chat_id", "conversation_id", "last_id", "status", "online",
                  "connect", "identity"}

(`connect`: the first `visitor.connect` values without the key; `identity`: the visitor the
last ack returned, without its read-only fields.)

The snapshot describes what `open`/`resume` returned and `inbound()` has handed out, nothing
the reader has merely queued: the sessions layer persists it after publishing each batch, so a
takeover re-fetches (the hub dedups) rather than skips. The account key is not in the snapshot:
the resuming replica has it in its own settings.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import aiohttp
import msgspec
import structlog

from adapters.visitor_widget import encode, errors, sio
from adapters.visitor_widget import native as n
from adapters.visitor_widget.decode import PIN, SPEC, STATUSES
from gateway.adapter import Connector, DialectSettings, NativeRequest
from gateway.codec import conversation_id, derived_id
from gateway.errors import GatewayError, RequestError, SessionNotFound, VendorError
from gateway.mailbox import Mailbox
from gateway.model import (
    Availability,
    Command,
    Ended,
    Error,
    Event,
    Link,
    LinkState,
    Start,
    Status,
    now_at,
)
from gateway.reconnect import LinkOptions
from gateway.vendor_http import VendorHttp

log = structlog.get_logger(__name__)

DEFAULT_URL = "https://websocket-visitors.smartsupp.com"
_NATIVE_STATUS = {v: k for k, v in STATUSES.items()}

Mark = tuple[str | None, str | None, str | None]  # last row id, chat status, account status
Batch = tuple[list[Event], Mark | None]  # events, and the state once they are handed out


class VisitorWidgetConnector(Connector):
    def __init__(self, settings: DialectSettings, http: VendorHttp) -> None:
        opts = settings.options
        self._http = http
        self._url = settings.url or DEFAULT_URL
        self._key = opts.get("key")
        self._group = opts.get("group")
        self._path = opts.get("path", "/socket")
        # socket.io-client 2's defaults, which the vendor SDK keeps: `timeout` 20 s,
        # `reconnectionDelay` 1 s, `reconnectionDelayMax` 5 s, `reconnectionAttempts` Infinity.
        self._options = LinkOptions.read(
            opts, timeout_s=20.0, backoff_s=1.0, backoff_max_s=5.0, max_attempts=0
        )
        self._timeout = self._options.timeout_s
        self.conversation_id = ""
        self._visitor_id: str | None = None
        self._connect: dict[str, Any] = {}  # the first `visitor.connect`, without the key
        self._identity: dict[str, Any] = {}  # what the last ack said the visitor is
        self._chat_id: str | None = None
        # What the reader has processed (filters what a reconnect re-emits) …
        self._cursor: str | None = None  # last chat row
        self._status: str | None = None  # native chat status
        self._online: str | None = None  # account status
        # … and what `inbound()` has handed out (the snapshot).
        self._handed: Mark = (None, None, None)
        self._seen: set[str] = set()
        self._client: sio.Client | None = None
        self._ready = asyncio.Event()
        self._out: Mailbox[Batch | None] = Mailbox()
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._closing = False
        self._links = itertools.count()
        self._typing = itertools.count()

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, command: Start) -> Sequence[Event]:
        request = encode.encode(command, self._session())
        self._connect = {k: v for k, v in request.frame.items() if k != "key"}
        client, events = await self._handshake(request.frame)
        self._start(client)
        log.info("connector.opened", conversation_id=self.conversation_id)
        return events

    async def resume(self, state: Mapping[str, Any]) -> Sequence[Event]:
        try:
            self._visitor_id = str(state["visitor_id"])
        except KeyError:
            raise RequestError("visitor_widget snapshot without visitor_id") from None
        self._chat_id = state.get("chat_id")
        native = self._chat_id or self._visitor_id
        self.conversation_id = state.get("conversation_id") or conversation_id(n.DIALECT, native)
        self._cursor = state.get("last_id")
        self._status, self._online = state.get("status"), state.get("online")
        self._connect = dict(state.get("connect") or {})
        self._identity = dict(state.get("identity") or {"id": self._visitor_id})
        client, events = await self._handshake(encode.reconnect_frame(self._session()))
        if self._status == "closed":
            self._ended = True  # its `ended` was published before the takeover
        self._start(client)
        log.info("connector.resumed", conversation_id=self.conversation_id, fetched=len(events))
        return events

    def snapshot(self) -> dict[str, Any]:
        last_id, status, online = self._handed
        return {
            "visitor_id": self._visitor_id,
            "chat_id": self._chat_id,
            "conversation_id": self.conversation_id,
            "last_id": last_id,
            "status": status,
            "online": online,
            "connect": self._connect,
            "identity": self._identity,
        }

    async def inbound(self) -> AsyncIterator[Sequence[Event]]:
        while True:
            item = await self._out.get()
            if item is None:
                self._out.put_nowait(None)
                return
            events, mark = item
            if mark is not None:
                self._handed = mark
            yield events

    async def send(self, command: Command) -> Sequence[Event]:
        if self._ended:
            raise SessionNotFound(f"{self.conversation_id} has ended")
        request = encode.encode(
            command, {**self._session(), "conversation_id": self.conversation_id}
        )
        if request.event == "chat.close" and self._chat_id is None:
            # No chat was created (nothing was said): there is nothing to close on the
            # platform, and no `chat.closed` will come. The session ends here.
            ended = self._ended_locally()
            self._out.put_nowait(([ended], self._mark()))
            self._out.put_nowait(None)
            return []
        if request.event == "chat.upload_init":
            return await self._send_file(request)
        if request.event in encode.NO_ACK:
            await self._emit(await self._link(), request)
            return []
        result = await self._call(await self._link(), request)
        if request.event == "chat.message":
            return await self._sent(result)
        return []

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.close()
        self._out.put_nowait(None)
        log.info("connector.closed", conversation_id=self.conversation_id)

    # -- the link ------------------------------------------------------------------------------

    def _session(self) -> dict[str, Any]:
        return {
            "key": self._key,
            "group": self._group,
            "visitor_id": self._visitor_id,
            "connect": self._connect,
            "identity": self._identity,
        }

    async def _handshake(self, frame: Any) -> tuple[sio.Client, list[Event]]:
        """Connect, emit `visitor.connect` and take in its state: the initialized client and
        the events that state adds to what was already published."""
        try:
            client = await sio.Client.connect(
                self._http.held, self._url, path=self._path, wait=self._timeout
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise VendorError(f"socket refused: HTTP {exc.status}", vendor_code=exc.status) from exc
        except (aiohttp.ClientError, OSError, TimeoutError, sio.SioError) as exc:
            raise VendorError(f"platform unreachable: {type(exc).__name__}") from exc
        try:
            result = await self._call(client, NativeRequest(event="visitor.connect", frame=frame))
            return client, await self._initialized(result)
        except BaseException:
            await client.close()
            raise

    async def _call(self, client: sio.Client, request: NativeRequest) -> Any:
        """Emit with an ack; the result, or the ack's error as a `GatewayError`."""
        assert request.event is not None
        try:
            args = await client.call(request.event, request.frame, wait=self._timeout)
        except sio.Disconnected as exc:
            raise VendorError(f"link lost during {request.event}") from exc
        except TimeoutError:
            raise VendorError(f"no ack for {request.event} within {self._timeout}s") from None
        err = args[0] if args else None
        if err:
            log.info(
                "connector.refused",
                native_event=request.event,
                conversation_id=self.conversation_id,
            )
            if isinstance(err, dict):
                with contextlib.suppress(msgspec.ValidationError):
                    raise errors.error_of(msgspec.convert(err, n.ServerErrorData))
            raise VendorError(f"{request.event} failed: {err!r}")
        return args[1] if len(args) > 1 else None

    async def _emit(self, client: sio.Client, request: NativeRequest) -> None:
        """Emit without an ack, as the SDK's `send(name, data)` does: socket.io-client 2 keeps
        its undefined callback argument, which goes on the wire as a trailing null
        (`42["chat.read",null,null]`); no ack id, so nothing answers."""
        assert request.event is not None
        try:
            await client.emit(request.event, request.frame, None)
        except sio.Disconnected as exc:
            raise VendorError(f"link lost during {request.event}") from exc

    async def _link(self) -> sio.Client:
        """The initialized client; commands wait here while the link is (re)connecting."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._ready.wait()
        except TimeoutError:
            raise VendorError("the platform link is not initialized") from None
        assert self._client is not None
        return self._client

    def _mark(self) -> Mark:
        return (self._cursor, self._status, self._online)

    def _start(self, client: sio.Client) -> None:
        """Run the link; the events `open`/`resume` return count as handed out."""
        self._handed = self._mark()
        self._client = client
        self._ready.set()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        """Read the link; on loss reconnect with capped exponential backoff."""
        while not self._ended:
            client = self._client
            assert client is not None
            try:
                while not self._ended:
                    name, data = await client.receive()
                    events = await self._live(name, data)
                    if events:
                        self._out.put_nowait((events, self._mark()))
            except sio.Disconnected:
                if self._closing:
                    return
                self._ready.clear()
                await client.close()
                log.info("connector.link_lost", conversation_id=self.conversation_id)
                self._publish(self._link_event("down", reason="link lost", will_retry=True))
                if not await self._reconnect():
                    break
        self._out.put_nowait(None)

    async def _reconnect(self) -> bool:
        options = self._options
        attempts = options.max_attempts or None  # 0: no limit
        attempt = 0
        while not options.gives_up(attempt := attempt + 1):
            self._publish(
                self._link_event(
                    "retrying", attempt=attempt, max_attempts=attempts, will_retry=True
                )
            )
            await asyncio.sleep(options.delay(attempt))
            try:
                client, events = await self._handshake(encode.reconnect_frame(self._session()))
            except SessionNotFound as exc:
                return self._give_up(exc)
            except GatewayError as exc:
                log.info("connector.retry_failed", attempt=attempt, error=exc.message)
                continue
            self._client = client
            self._ready.set()
            restored = self._link_event("restored", attempt=attempt, missed=len(events))
            self._out.put_nowait(([restored, *events], self._mark()))
            log.info("connector.reconnected", conversation_id=self.conversation_id, attempt=attempt)
            return not self._ended
        return self._give_up(VendorError(f"gave up after {options.max_attempts} attempts"))

    def _give_up(self, exc: GatewayError) -> bool:
        log.warning("connector.gave_up", conversation_id=self.conversation_id, error=exc.message)
        at = now_at()
        common: dict[str, Any] = {
            "conversation_id": self.conversation_id,
            "dialect": n.DIALECT,
            "at": at,
        }
        error = Error(
            id=derived_id(self.conversation_id, "error", at, exc.code),
            code=exc.code,
            message=exc.message,
            recoverable=False,
            **common,
        )
        ended = Ended(
            id=derived_id(self.conversation_id, "gave_up", at),
            reason="error",
            by="system",
            **common,
        )
        down = self._link_event("down", reason=exc.message, will_retry=False)
        self._out.put_nowait(([down, error, ended], self._mark()))
        self._ended = True
        return False

    def _ended_locally(self) -> Ended:
        self._ended = True
        self._status = "closed"
        return Ended(
            id=derived_id(self.conversation_id, "ended", "before-chat"),
            conversation_id=self.conversation_id,
            dialect=n.DIALECT,
            at=now_at(),
            reason="user",
            by="user",
        )

    # -- events --------------------------------------------------------------------------------

    async def _initialized(self, ack: Any) -> list[Event]:
        """What a (re)connect's state adds to what was published. The ack is decoded as the
        frames it stands for: the `initialized` state (status, availability) and one
        `chat.message_received` for each row not handed out yet, so one bad row is one `error`
        event, not the loss of the whole state."""
        data = _convert(ack, n.InitializedData, "visitor.connect")
        self._visitor_id = data.visitor.id
        self._identity = encode.identity_of(ack["visitor"])
        chat = data.chat
        chat_id = chat.id if chat is not None else data.visitor.chatId
        if chat_id:
            self._chat_id = chat_id
        if not self.conversation_id:
            # The platform may create the chat only with the first message: until then the
            # visitor id names the conversation, and it keeps naming it (see the module doc).
            self.conversation_id = conversation_id(n.DIALECT, chat_id or data.visitor.id)
        at = now_at()
        state = {**ack, "chat": None if chat is None else {**ack["chat"], "messages": []}}
        frames: list[dict[str, Any]] = [{"event": "initialized", "at": at, "data": state}]
        if chat is not None:
            ids = [row.id for row in chat.messages]
            start = ids.index(self._cursor) + 1 if self._cursor in ids else 0
            for i in range(start, len(ids)):
                if ids[i] not in self._seen:
                    self._seen.add(ids[i])
                    message = {"chatId": chat.id, "message": ack["chat"]["messages"][i]}
                    frames.append({"event": "chat.message_received", "at": at, "data": message})
            if ids:
                self._cursor = ids[-1]
        return self._changes(await self._decode(frames))

    async def _live(self, name: str, data: Any) -> list[Event]:
        if name not in SPEC.known:
            log.debug("connector.ignored", native_event=name)
            return []
        # A row seen already (the echo of a sent message) is dropped by its id, read before
        # decoding; a bad frame is still marked seen: it would fail the same way again.
        row = data.get("message") if isinstance(data, dict) else None
        row_id = row.get("id") if isinstance(row, dict) else None
        if isinstance(row_id, str):
            if row_id in self._seen:
                log.debug("connector.echo_dropped", message_id=row_id)
                return []
            self._seen.add(row_id)
            self._cursor = row_id
        chat_id = data.get("chatId") if isinstance(data, dict) else None
        if isinstance(chat_id, str) and chat_id and self._chat_id is None:
            self._chat_id = chat_id
        events = await self._decode([{"event": name, "at": now_at(), "data": data}])
        if name == "chat.agent_typing":
            # Typing carries neither id nor time: two identical ones in one millisecond would
            # share the derived id, and on-off-on must not collapse to on-off.
            events = [msgspec.structs.replace(e, id=f"{e.id}.{next(self._typing)}") for e in events]
        return self._changes(events)

    async def _decode(self, frames: list[dict[str, Any]]) -> list[Event]:
        """Frames of this session through the shared pipeline (`Connector.decode_batch`): each
        in the session's conversation (`PIN`), a bad one an `error` event."""
        native = self.conversation_id.split(":", 1)[1]
        return await self.decode_batch(SPEC, msgspec.json.encode(frames), native, PIN)

    def _changes(self, events: list[Event]) -> list[Event]:
        """Drop status and availability that repeat what was published; note the end."""
        out: list[Event] = []
        for event in events:
            if isinstance(event, Status):
                native = _NATIVE_STATUS[event.status]
                if native == self._status:
                    continue
                self._status = native
            elif isinstance(event, Availability):
                online = "online" if event.online else "offline"
                if online == self._online:
                    continue
                self._online = online
            elif isinstance(event, Ended):
                self._ended = True
                self._status = "closed"
            out.append(event)
        return out

    async def _sent(self, result: Any) -> list[Event]:
        """The events of a sent message: its ack is the Message its echo will carry."""
        row = _convert(result, n.MessageRow, "chat.message")
        if self._chat_id is None and row.chatId:
            self._chat_id = row.chatId  # the chat the platform created for this message
        self._seen.add(row.id)  # its echo is dropped by id
        frame = {"event": "chat.message_received", "at": now_at(), "data": {"message": result}}
        return await self._decode([frame])

    def _publish(self, event: Event) -> None:
        self._out.put_nowait(([event], None))

    def _link_event(self, state: LinkState, **fields: Any) -> Link:
        at = now_at()
        return Link(
            id=derived_id(self.conversation_id, "link", state, at, next(self._links)),
            conversation_id=self.conversation_id,
            dialect=n.DIALECT,
            at=at,
            state=state,
            **fields,
        )

    # -- files ---------------------------------------------------------------------------------

    async def _send_file(self, request: NativeRequest) -> list[Event]:
        source = request.json
        body, mime = await self._fetch(source["url"])
        mime = source.get("fileType") or mime
        name = source.get("fileName") or source["url"].rsplit("/", 1)[-1][:100] or "file"
        client = await self._link()
        info = _convert(await self._call(client, request), n.UploadInfo, "chat.upload_init")
        form = aiohttp.FormData()
        form.add_field("file", body, filename=name, content_type=mime)
        try:
            async with self._http.requests.post(info.url, data=form) as response:
                if response.status >= 300:
                    raise VendorError(
                        f"upload refused: HTTP {response.status}", vendor_code=response.status
                    )
        except aiohttp.ClientError as exc:
            raise VendorError(f"upload failed: {type(exc).__name__}") from exc
        result = await self._call(client, encode.upload_finish(info.token))
        return await self._sent(result)

    async def _fetch(self, url: str) -> tuple[bytes, str]:
        """The file to upload: a `data:` URL is decoded here, anything else is fetched."""
        if url.startswith("data:"):
            head, _, payload = url[5:].partition(",")
            mime = head.split(";")[0] or "application/octet-stream"
            try:
                body = (
                    base64.b64decode(payload, validate=True)
                    if head.endswith(";base64")
                    else unquote_to_bytes(payload)
                )
            except binascii.Error:
                raise RequestError("bad base64 in data: URL") from None
            return body, mime
        try:
            async with self._http.requests.get(url) as response:
                if response.status >= 300:
                    raise RequestError(f"could not fetch the file: HTTP {response.status}")
                return await response.read(), response.content_type
        except aiohttp.ClientError as exc:
            raise RequestError(f"could not fetch the file: {type(exc).__name__}") from exc


def _convert(value: Any, kind: type[Any], what: str) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise VendorError(f"unexpected {what} ack: {exc}") from None
