"""The SignalWire connector: one Call Fabric chat conversation, held for the gateway.

Wire (see `docs/dialects/signalwire.md`):

- REST on `settings.url` with `Authorization: Bearer <token>`: join, send, history pages (the
  backfill after a reconnect, and `history` pages for frontends, see `history.py`).
- A JSON-RPC 2.0 WebSocket at `<url with ws scheme>` + `ws_path` (default `/api/relay/ws`, our
  choice). The first request is `signalwire.connect` with `params.authentication.jwt_token` —
  the Relay shape — and, after a reconnect, the `protocol` the last connect returned, so the
  platform redelivers what we did not acknowledge. Every `signalwire.event` is acknowledged
  by its id with `{"jsonrpc": "2.0", "id": <id>, "result": {}}`; other requests get `{}` too.

A background reader owns the socket. When it drops, the reader reports `Link` down/retrying,
reconnects with capped exponential backoff, backfills the REST history from the last message
it saw (following `links.next`), then reports `Link` restored with `missed` = the fetched
events it had not seen. `send` registers the text before posting and returns the canonical
Message its echo (`is_author: true`) decodes to, so the hub publishes it once.

Joining: with the option `address_id` (our own fabric address) the connector uses the newer
join (`from_fabric_address_id` + `fabric_address_ids`, answered with a `group_id` that names
the conversation in sends, history and rows); without it, the older `{"conversation_id": addr}`.

Settings: `url` (`GATEWAY_SIGNALWIRE_URL`), options `token` (required), `address_id` (our own
fabric address: the newer join), `agent_id` (the address to chat with when `start` names
none), `ws_path`, `page_size`, `max_attempts`, `backoff_s`, `backoff_max_s`, `echo_timeout_s`,
`timeout_s`, `heartbeat_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
import structlog
from yarl import URL

from adapters.signalwire import codec
from adapters.signalwire.codec import DIALECT
from adapters.signalwire.history import Cursor, collect_chat, decode_cursor, encode_cursor
from adapters.signalwire.native import Page, Row, RpcResponse
from gateway.adapter import Connector, DialectSettings, HistoryPage, NativeRequest
from gateway.codec import conversation_id, derived_id, to_at
from gateway.errors import (
    DecodeError,
    GatewayError,
    RequestError,
    SessionNotFound,
    Unsupported,
    VendorError,
)
from gateway.model import (
    Command,
    Ended,
    Error,
    Event,
    Link,
    Message,
    Party,
    Send,
    Start,
    Status,
    Text,
    now_at,
)

log = structlog.get_logger(__name__)

UNAUTHORIZED = "VENDOR_UNAUTHORIZED"
UNREACHABLE = "VENDOR_UNREACHABLE"
_json = msgspec.json.Encoder()
_response = msgspec.json.Decoder(RpcResponse)


class _LinkLost(Exception):
    """The WebSocket closed or failed; the reader reconnects."""


class SignalWireConnector(Connector):
    def __init__(self, settings: DialectSettings, http: aiohttp.ClientSession) -> None:
        options = settings.options
        if not settings.url or not options.get("token"):
            raise RequestError(
                "signalwire needs GATEWAY_SIGNALWIRE_URL and GATEWAY_SIGNALWIRE_TOKEN",
                code="NOT_CONFIGURED",
            )
        self._http = http
        self._base = settings.url.rstrip("/")
        self._token = options["token"]
        self._ws_url = "ws" + self._base[4:] if self._base.startswith("http") else self._base
        self._ws_url += options.get("ws_path", "/api/relay/ws")
        self._from: str | None = options.get("address_id") or None  # our own fabric address
        self._default_agent = options.get("agent_id")
        try:
            self._page_size = int(options.get("page_size", "50"))
            self._max_attempts = int(options.get("max_attempts", "8"))
            self._backoff = float(options.get("backoff_s", "0.5"))
            self._backoff_max = float(options.get("backoff_max_s", "15"))
            self._echo_timeout = float(options.get("echo_timeout_s", "5"))
            self._timeout = aiohttp.ClientTimeout(total=float(options.get("timeout_s", "15")))
            self._heartbeat = float(options.get("heartbeat_s", "30"))  # finds half-open links
        except ValueError as exc:
            raise RequestError(f"bad signalwire option: {exc}", code="NOT_CONFIGURED") from None

        self.conversation_id = ""
        self._address = ""  # the address joined
        self._group: str | None = None  # the newer join's group: then the REST conversation id
        self._native = ""  # the conversation id rows carry (address, or group_id)
        self._self_id: str | None = None  # our subscriber address: its rows are the user's
        self._protocol: str | None = None  # Relay session to resume on reconnect
        self._since: str | None = None  # `at` of the newest message seen: backfill cursor
        self._seen: set[str] = set()
        self._echoes: dict[str, deque[asyncio.Future[Message]]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._queue: asyncio.Queue[Sequence[Event] | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._ended = False
        self._backlog: list[str] = []  # frames that came before the connect response
        self._rpc_ids = itertools.count(1)
        self._link_ids = itertools.count(1)

    # -- the Connector contract -----------------------------------------------------------------

    async def open(self, command: Start) -> Sequence[Event]:
        request = codec.encode(
            command, {"agent_id": self._default_agent, "from_address_id": self._from}
        )
        join = request.json
        address = join["fabric_address_ids"][0] if self._from else join["conversation_id"]
        await self._connect()
        try:
            body = await self._request(request)
        except BaseException:
            await self._drop()
            raise
        group = body.get("group_id") if isinstance(body, dict) else None
        if self._from:
            if not isinstance(group, str) or not group:
                await self._drop()
                raise VendorError("signalwire join answered without a group_id")
            self._group = group
            self._bind(address, group)
        else:
            table = body.get("table") if isinstance(body, dict) else None
            native = group or (isinstance(table, dict) and table.get("conversation_id"))
            self._bind(address, native if isinstance(native, str) and native else address)
        self._start()
        log.info("connector.opened", dialect=DIALECT, conversation_id=self.conversation_id)
        at = now_at()
        status = Status(
            id=derived_id(self.conversation_id, "status", "active", at),
            conversation_id=self.conversation_id,
            dialect=DIALECT,
            at=at,
            status="active",
        )
        return [status]

    async def resume(self, state: Mapping[str, Any]) -> Sequence[Event]:
        try:
            self._bind(state["address_id"], state["conversation"])
            self._group = state.get("group_id")
            self._from = state.get("from_address_id", self._from)
            self._self_id = state.get("self_id")
            self._protocol = state.get("protocol")
            self._since = state.get("since")
        except (KeyError, TypeError) as exc:
            raise RequestError(f"not a signalwire snapshot: {exc}") from None
        await self._connect()
        try:
            events = self._fresh(await self._backfill())
        except BaseException:
            await self._drop()
            raise
        self._start()
        log.info("connector.resumed", dialect=DIALECT, conversation_id=self.conversation_id)
        return events

    def snapshot(self) -> dict[str, Any]:
        return {
            "conversation": self._native,
            "address_id": self._address,
            "group_id": self._group,
            "from_address_id": self._from,
            "self_id": self._self_id,
            "protocol": self._protocol,
            "since": self._since,
        }

    async def inbound(self) -> AsyncIterator[Sequence[Event]]:
        while (batch := await self._queue.get()) is not None:
            yield batch

    async def send(self, command: Command) -> Sequence[Event]:
        if not isinstance(command, Send):
            codec.encode(command, self.snapshot())  # raises Unsupported for what cannot travel
            raise Unsupported(f"signalwire cannot {command.__struct_config__.tag!r} in a session")
        request = codec.encode(command, self.snapshot())
        text = request.json["text"]
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        waiters = self._echoes.setdefault(text, deque())
        waiters.append(waiter)
        try:
            await self._request(request)
            try:
                return [await asyncio.wait_for(asyncio.shield(waiter), self._echo_timeout)]
            except TimeoutError:
                # No echo: a message with an id of our own. Its late echo would show twice.
                log.warning("connector.echo_missing", conversation_id=self.conversation_id)
                at = now_at()
                return [
                    Message(
                        id=derived_id(self.conversation_id, "sent", at, text),
                        conversation_id=self.conversation_id,
                        dialect=DIALECT,
                        at=at,
                        sender=Party(role="user", id=self._self_id),
                        content=Text(text),
                    )
                ]
        finally:
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            if not waiters:
                self._echoes.pop(text, None)

    async def history(self, cursor: str | None, limit: int) -> HistoryPage:
        """A page of the platform's chat history, as the SDK's getMessages collects it (see
        `history.py`): `limit` chat rows, oldest first in the answer; `next` pages back in time,
        `prev` forward. A cursor must name a page of this conversation on the platform's own
        origin: it is client input, and we fetch it with our token."""
        start = self._cursor(cursor) if cursor is not None else None
        if start is None:
            request = codec.history_request(self._group or self._address, limit)
            url = str(URL(self._base + request.path).with_query(request.query))
        else:
            url = start.url
        pages: list[tuple[str, Page]] = []
        while True:
            body = await self._request(NativeRequest(method="GET"), url=url)
            try:
                pages.append((url, msgspec.convert(body, Page)))
            except msgspec.ValidationError as exc:
                raise VendorError(f"signalwire history page unreadable: {exc}") from None
            chat = collect_chat(pages, self._native, limit, start)
            if chat.complete or chat.fetch is None:
                break
            url = chat.fetch
        events: list[Event] = []
        for row in reversed(chat.rows):  # the platform's rows are newest first
            try:
                events.append(codec.row_event(row, self._native, self._self_ids()))
            except DecodeError:
                log.warning("connector.undecodable_row", conversation_id=self.conversation_id)
        return HistoryPage(
            events=events,
            next=encode_cursor(chat.next) if chat.next else None,
            prev=encode_cursor(chat.prev) if chat.prev else None,
        )

    def _cursor(self, token: str) -> Cursor:
        """The cursor `token` names, if it is one of ours for this conversation."""
        try:
            cursor = decode_cursor(token)
        except ValueError as exc:
            raise RequestError(str(exc), path="$.cursor") from None
        url, base = URL(cursor.url), URL(self._base)
        key = self._group or self._address
        if url.origin() != base.origin() or url.path != (
            f"{base.path.rstrip('/')}/api/fabric/conversations/{key}/messages"
        ):
            raise RequestError("the cursor names another conversation or host", path="$.cursor")
        return cursor

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._drop()
        self._queue.put_nowait(None)

    # -- the vendor link ------------------------------------------------------------------------

    def _bind(self, address: str, native: str) -> None:
        self._address, self._native = address, native
        self.conversation_id = conversation_id(DIALECT, native)

    def _start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._run())

    async def _connect(self) -> None:
        """Open the WebSocket and authenticate with `signalwire.connect`."""
        self._backlog.clear()  # frames of a socket that is gone: the platform redelivers them
        try:
            ws = await self._http.ws_connect(
                self._ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=2), heartbeat=self._heartbeat
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise VendorError(f"signalwire WebSocket unreachable: {exc}", code=UNREACHABLE) from exc
        try:
            params: dict[str, Any] = {
                "version": {"major": 4, "minor": 0, "revision": 0},
                "authentication": {"jwt_token": self._token},
                "event_acks": True,
            }
            if self._protocol:
                params["protocol"] = self._protocol
            rid = f"c{next(self._rpc_ids)}"
            call = {"jsonrpc": "2.0", "id": rid, "method": "signalwire.connect", "params": params}
            await ws.send_str(_json.encode(call).decode())
            reply = await self._reply_to(ws, rid)
            if reply.error is not None:
                code = UNAUTHORIZED if reply.error.code == -32002 else "VENDOR_ERROR"
                raise VendorError(
                    f"signalwire.connect refused: {reply.error.message}",
                    code=code,
                    vendor_code=reply.error.code,
                    recoverable=code != UNAUTHORIZED,  # the same token is refused again
                )
            result = reply.result if isinstance(reply.result, dict) else {}
            self._protocol = result.get("protocol") or self._protocol
            self._self_id = result.get("identity") or self._self_id
        except BaseException:
            await ws.close()
            raise
        self._ws = ws
        log.debug("connector.connected", conversation_id=self.conversation_id)

    async def _reply_to(self, ws: aiohttp.ClientWebSocketResponse, rid: str) -> RpcResponse:
        """Wait for the response to request `rid`; frames before it are kept for the reader.
        A platform that does not answer within `timeout_s` is unreachable (`VendorError`)."""
        try:
            async with asyncio.timeout(self._timeout.total):
                while True:
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise VendorError(
                            "signalwire closed the socket on connect", code=UNREACHABLE
                        )
                    try:
                        reply = _response.decode(msg.data)
                    except msgspec.DecodeError:
                        reply = None
                    if reply is not None and reply.method is None and reply.id == rid:
                        return reply
                    self._backlog.append(msg.data)
        except TimeoutError:
            raise VendorError(
                f"signalwire did not answer signalwire.connect within {self._timeout.total}s",
                code=UNREACHABLE,
            ) from None

    async def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def _run(self) -> None:
        """Read the socket until the conversation ends or the link is lost for good."""
        try:
            while not self._ended:
                try:
                    await self._pump()
                except _LinkLost as exc:
                    await self._drop()
                    if not await self._recover(str(exc)):
                        break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must end the stream loudly, not hang it
            log.exception("connector.failed", conversation_id=self.conversation_id)
            self._emit([self._error("ADAPTER_ERROR", f"signalwire link failed: {exc}")])
        finally:
            await self._drop()
            self._queue.put_nowait(None)

    async def _pump(self) -> None:
        ws = self._ws
        if ws is None:
            raise _LinkLost("no socket")
        while self._backlog and not self._ended:
            await self._on_frame(ws, self._backlog.pop(0))
        while not self._ended:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self._on_frame(ws, msg.data)
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                raise _LinkLost("socket closed")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise _LinkLost(f"socket error: {ws.exception()}")

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, data: str) -> None:
        try:
            head = msgspec.json.decode(data)
        except msgspec.DecodeError:
            log.warning("connector.bad_frame", conversation_id=self.conversation_id)
            return
        if not isinstance(head, dict) or "method" not in head:
            return  # a response to one of ours
        try:  # every request is answered, events included, before we look inside
            await ws.send_str(
                _json.encode({"jsonrpc": "2.0", "id": head.get("id"), "result": {}}).decode()
            )
        except ConnectionError as exc:
            raise _LinkLost(f"ack failed: {exc}") from None
        if head["method"] != "signalwire.event":
            log.debug("connector.request", method=head["method"])
            return
        try:
            decoded = codec.decode(data, self._native, self._self_ids())
        except DecodeError as exc:
            log.warning(
                "connector.undecodable",
                conversation_id=self.conversation_id,
                path=exc.details.get("path"),
            )
            return
        self._emit(self._fresh(decoded.events))

    async def _recover(self, reason: str) -> bool:
        """Reconnect with capped backoff, backfill, report it; False when giving up."""
        log.info("connector.link_lost", conversation_id=self.conversation_id, reason=reason)
        self._emit([self._link("down", reason=reason, will_retry=True)])
        for attempt in range(1, self._max_attempts + 1):
            self._emit([self._link("retrying", attempt=attempt, max_attempts=self._max_attempts)])
            await asyncio.sleep(min(self._backoff_max, self._backoff * 2 ** (attempt - 1)))
            try:
                await self._connect()
                missed = self._fresh(await self._backfill())
            except VendorError as exc:
                await self._drop()
                if not exc.recoverable:  # refused auth: the same token is refused again
                    return self._give_up(exc.message)
                log.debug("connector.retry_failed", attempt=attempt, error=exc.message)
                continue
            except GatewayError as exc:  # the conversation is gone or refused: no retry helps
                await self._drop()
                return self._give_up(exc.message)
            log.info(
                "connector.reconnected", conversation_id=self.conversation_id, missed=len(missed)
            )
            self._emit([self._link("restored", missed=len(missed)), *missed])
            return True
        return self._give_up(f"no link after {self._max_attempts} attempts")

    def _give_up(self, reason: str) -> bool:
        log.warning("connector.gave_up", conversation_id=self.conversation_id, reason=reason)
        self._emit([self._link("down", reason=reason, will_retry=False)])
        return False

    async def _backfill(self) -> list[Event]:
        """History rows of our conversation since the cursor (all when none), oldest first."""
        request = codec.history_request(self._group or self._address, self._page_size)
        url: str | None = self._base + request.path
        query: dict[str, str] | None = request.query
        rows: list[Row] = []
        pages = 0
        while url is not None and pages < 100:
            body = await self._request(NativeRequest(method="GET"), url=url, query=query)
            try:
                page = msgspec.convert(body, Page)
            except msgspec.ValidationError as exc:
                raise VendorError(f"signalwire history page unreadable: {exc}") from None
            rows += page.data
            pages += 1
            url, query = page.links.next, None
            if self._since is not None and any(_before(r.ts, self._since) for r in page.data):
                break
        found: list[tuple[str, float, Event]] = []
        for row in reversed(rows):  # pages are newest first: ties keep the platform's order
            if row.conversation != self._native:
                continue
            try:
                event = codec.row_event(row, self._native, self._self_ids())
            except DecodeError:
                log.warning("connector.undecodable_row", conversation_id=self.conversation_id)
                continue
            if self._since is None or event.at >= self._since:
                # `at` has ms; a float `ts` orders rows within the same millisecond
                found.append((event.at, row.ts if isinstance(row.ts, float) else 0.0, event))
        found.sort(key=lambda item: item[:2])
        return [event for _, _, event in found]

    async def _request(
        self, request: NativeRequest, *, url: str | None = None, query: dict[str, str] | None = None
    ) -> Any:
        """One REST call; platform refusals become gateway errors."""
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self._http.request(
                request.method,
                url or self._base + request.path,
                params=query if url else (request.query or None),
                json=request.json,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _refusal(resp.status, raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise VendorError(f"signalwire unreachable: {exc!r}", code=UNREACHABLE) from exc
        try:
            return msgspec.json.decode(raw) if raw else {}
        except msgspec.DecodeError:
            raise VendorError("signalwire answered with a body that is not JSON") from None

    # -- events ---------------------------------------------------------------------------------

    def _self_ids(self) -> frozenset[str]:
        """The senders whose rows are the user's: our subscriber and our own fabric address."""
        return frozenset(a for a in (self._self_id, self._from) if a)

    def _fresh(self, events: Sequence[Event]) -> list[Event]:
        """Our conversation's events not yet seen; advances the cursor and resolves echoes."""
        out: list[Event] = []
        for event in events:
            if event.conversation_id != self.conversation_id or event.id in self._seen:
                continue
            self._seen.add(event.id)
            out.append(event)
            if isinstance(event, Message):
                if self._since is None or event.at > self._since:
                    self._since = event.at
                if event.sender.role == "user" and isinstance(event.content, Text):
                    waiters = self._echoes.get(event.content.text)
                    while waiters:
                        waiter = waiters.popleft()
                        if not waiter.done():
                            waiter.set_result(event)
                            break
            elif isinstance(event, Ended):
                self._ended = True
        return out

    def _emit(self, events: Sequence[Event]) -> None:
        if events:
            self._queue.put_nowait(events)

    def _link(self, state: Any, **fields: Any) -> Link:
        at = now_at()
        return Link(
            id=derived_id(self.conversation_id, "link", state, at, next(self._link_ids)),
            conversation_id=self.conversation_id,
            dialect=DIALECT,
            at=at,
            state=state,
            **fields,
        )

    def _error(self, code: str, message: str) -> Error:
        at = now_at()
        return Error(
            id=derived_id(self.conversation_id, "error", at, code),
            conversation_id=self.conversation_id,
            dialect=DIALECT,
            at=at,
            code=code,
            message=message,
        )


def _before(ts: float | str | None, cursor: str) -> bool:
    """Whether a row's `ts` is older than the cursor (a row without a readable one is not)."""
    if ts is None:
        return False
    try:
        return to_at(ts) < cursor
    except ValueError:
        return False


def _refusal(status: int, raw: bytes) -> GatewayError:
    """A REST error (`{"errors": [{"code", "message"}]}`) as a gateway error."""
    vendor_code: Any = status
    message = f"signalwire answered {status}"
    with contextlib.suppress(msgspec.DecodeError, TypeError, KeyError, IndexError, AttributeError):
        first = msgspec.json.decode(raw)["errors"][0]
        vendor_code = first.get("code", status)
        message = f"signalwire answered {status}: {first.get('message', '')}"
    if status in (401, 403):  # the same token is refused again: not worth a retry
        return VendorError(message, code=UNAUTHORIZED, vendor_code=vendor_code, recoverable=False)
    if status == 404:
        return SessionNotFound(message, vendor_code=vendor_code)
    if status in (400, 422):
        return RequestError(message, vendor_code=vendor_code)
    return VendorError(message, vendor_code=vendor_code)
