"""The SignalWire connector: one Call Fabric chat conversation, held for the gateway.

Wire (see `docs/dialects/signalwire.md`):

- REST on the REST host (`https://fabric.<space domain>`, or `GATEWAY_SIGNALWIRE_URL`) with
  `Authorization: Bearer <token>`: join, send, history pages (the backfill after a reconnect,
  and `history` pages for frontends, see `native.collect_chat`).
- The Relay JSON-RPC 2.0 WebSocket, a host of its own (`relay.py`: where it is, joining with
  `signalwire.connect`, resuming with the saved `authorization_state` and `protocol`), which
  carries all the subscriber's conversations: one socket per subscriber on the replica, shared
  by its sessions (`link.py`: it acknowledges every request, routes each event to the session
  of its conversation and reconnects once for all of them).

Each session reads what the link routes to it in a task of its own (decoding, then the
inbound stream). When the link drops, the session reports `Link` down/retrying as the link
reconnects on the shared policy (`gateway.reconnect.LinkOptions`: jittered, capped backoff);
once it is back, the session backfills its REST history from the last message it saw
(following `links.next`), then reports `Link` restored with `missed` = the fetched events it
had not seen. `send` registers the text before posting and returns the canonical Message its
echo (`is_author: true`) decodes to, so the hub publishes it once.

Joining: with the option `address_id` (our own fabric address) the connector uses the newer
join (`from_fabric_address_id` + `fabric_address_ids`, answered with a `group_id` that names
the conversation in sends, history and rows); without it, the older `{"conversation_id": addr}`.
Our own address in the conversation (rows from it are the user's, history included) is that
fabric address, else the subscriber `identity` the Relay connect answered.

Settings: `url` (`GATEWAY_SIGNALWIRE_URL`, the REST base; default from the token, see
`relay.py`), options `token` (required), `relay_url` (the Relay socket; default from the
token), `address_id`, `agent_id` (the address to chat with when `start` names none),
`page_size`, `echo_timeout_s`, and the common link options `timeout_s`, `backoff_s`,
`backoff_max_s`, `max_attempts`, `heartbeat_s`.
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

from adapters.signalwire.decode import SPEC, row_event
from adapters.signalwire.encode import encode, history_request
from adapters.signalwire.errors import UNREACHABLE, rest_refusal
from adapters.signalwire.link import Change, RelayLink, RelayLinks
from adapters.signalwire.native import (
    DIALECT,
    Cursor,
    Page,
    Row,
    collect_chat,
    decode_cursor,
    encode_cursor,
)
from adapters.signalwire.relay import hosts
from gateway.adapter import Connector, DialectSettings, HistoryPage, NativeRequest
from gateway.codec import conversation_id, derived_id, to_at
from gateway.context import ConversationContext
from gateway.decoding import Refused
from gateway.errors import (
    GatewayError,
    RequestError,
    Unsupported,
    VendorError,
)
from gateway.mailbox import Mailbox
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
from gateway.reconnect import LinkOptions
from gateway.vendor_http import VendorHttp

log = structlog.get_logger(__name__)

# The SDK's own numbers where it has them: v3 `BaseSession` answers a request (connect
# included) within 10 s and reconnects after 1-4 s; v3 `BaseSession._checkPingDelay` is 15 s.
# It retries for ever; we give a session up after `max_attempts`.
LINK_DEFAULTS = {
    "timeout_s": 10.0,
    "backoff_s": 1.0,
    "backoff_max_s": 4.0,
    "max_attempts": 8,
    "heartbeat_s": 15.0,
}


class SignalWireConnector(Connector):
    def __init__(self, settings: DialectSettings, http: VendorHttp) -> None:
        options = settings.options
        token = options.get("token")
        if not token:
            raise RequestError("signalwire needs GATEWAY_SIGNALWIRE_TOKEN", code="NOT_CONFIGURED")
        self._http = http
        self._token = token
        self._policy = LinkOptions.read(options, **LINK_DEFAULTS)
        where = hosts(token, settings.url, options.get("relay_url"))
        self._base = where.rest
        self._relay_url = where.relay
        self._shared: RelayLink | None = None  # the subscriber's shared socket, while we use it
        self._identity: str | None = None  # the subscriber, as the last link said (snapshot)
        self._from: str | None = options.get("address_id") or None  # our own fabric address
        self._default_agent = options.get("agent_id")
        try:
            self._page_size = int(options.get("page_size", "50"))
            self._echo_timeout = float(options.get("echo_timeout_s", "5"))
        except ValueError as exc:
            raise RequestError(f"bad signalwire option: {exc}", code="NOT_CONFIGURED") from None
        self._timeout = aiohttp.ClientTimeout(total=self._policy.timeout_s)

        self.conversation_id = ""
        self._address = ""  # the address joined
        self._group: str | None = None  # the newer join's group: then the REST conversation id
        self._native = ""  # the conversation id rows carry (address, or group_id)
        self._since: str | None = None  # `at` of the newest message seen: backfill cursor
        self._seen: set[str] = set()
        self._echoes: dict[str, deque[asyncio.Future[Message]]] = {}
        self._queue: Mailbox[Sequence[Event] | None] = Mailbox()
        self._inbox: Mailbox[str | Change] = Mailbox()  # what the link routes here
        self._reader: asyncio.Task[None] | None = None
        self._ended = False
        self._link_ids = itertools.count(1)

    # -- the Connector contract -----------------------------------------------------------------

    async def open(self, command: Start) -> Sequence[Event]:
        request = encode(command, {"agent_id": self._default_agent, "from_address_id": self._from})
        join = request.json
        address = join["fabric_address_ids"][0] if self._from else join["conversation_id"]
        link = await self._join_link()
        try:
            body = await self._request(request)
            group = body.get("group_id") if isinstance(body, dict) else None
            if self._from:
                if not isinstance(group, str) or not group:
                    raise VendorError("signalwire join answered without a group_id")
                self._group = group
                self._bind(address, group)
            else:
                table = body.get("table") if isinstance(body, dict) else None
                native = group or (isinstance(table, dict) and table.get("conversation_id"))
                self._bind(address, native if isinstance(native, str) and native else address)
            link.attach(self._native, self)
            await self._keep_own_address()
        except BaseException:
            self._leave_link()
            raise
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
            # The old owner's `protocol` and `authorization_state` (older snapshots) are its
            # replica's shared link's: not ours to resume (`link.py`). The backfill covers.
            self._identity = state.get("self_id")
            self._since = state.get("since")
        except (KeyError, TypeError, AttributeError) as exc:
            raise RequestError(f"not a signalwire snapshot: {exc}") from None
        link = await self._join_link()
        try:
            link.attach(self._native, self)  # live events wait in the inbox meanwhile
            await self._keep_own_address()
            events = self._fresh(await self._backfill())
        except BaseException:
            self._leave_link()
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
            "self_id": self._subscriber(),
            "since": self._since,
        }

    async def inbound(self) -> AsyncIterator[Sequence[Event]]:
        while (batch := await self._queue.get()) is not None:
            yield batch

    async def send(self, command: Command) -> Sequence[Event]:
        if not isinstance(command, Send):
            encode(command, self.snapshot())  # raises Unsupported for what cannot travel
            raise Unsupported(f"signalwire cannot {command.__struct_config__.tag!r} in a session")
        request = encode(command, self.snapshot())
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
                        sender=Party(role="user", id=self._own_address()),
                        content=Text(text),
                        metadata=_sent_metadata(request.json),
                    )
                ]
        finally:
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            if not waiters:
                self._echoes.pop(text, None)

    async def history(self, cursor: str | None, limit: int) -> HistoryPage:
        """A page of the platform's chat history, as the SDK's getMessages collects it
        (`native.collect_chat`): `limit` chat rows, oldest first in the answer; `next` pages
        back in time, `prev` forward. A cursor must name a page of this conversation on the
        platform's own origin: it is client input, and we fetch it with our token."""
        start = self._cursor(cursor) if cursor is not None else None
        if start is None:
            request = history_request(self._group or self._address, limit)
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
                events.append(row_event(row, self.conversation_id, self._own_address()))
            except Refused:
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
        self._leave_link()
        self._queue.put_nowait(None)

    def deliver(self, item: str | Change) -> None:
        """A frame of our conversation, or a change of the link (`link.Member`)."""
        self._inbox.put_nowait(item)

    # -- the vendor link ------------------------------------------------------------------------

    def _bind(self, address: str, native: str) -> None:
        self._address, self._native = address, native
        self.conversation_id = conversation_id(DIALECT, native)

    def _start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._run())

    async def _join_link(self) -> RelayLink:
        """The subscriber's shared link, up (`link.py`); `_leave_link` lets it go."""
        links = RelayLinks.of(self._http)
        link = await links.acquire(self._http, self._relay_url, self._token, self._policy)
        self._shared = link
        if link.identity:
            self._identity = link.identity
        return link

    def _leave_link(self) -> None:
        link, self._shared = self._shared, None
        if link is not None:
            link.detach(self._native, self)
            link.release()

    async def _run(self) -> None:
        """Handle what the link routes here until the conversation ends or the link is lost."""
        try:
            while not self._ended:
                item = await self._inbox.get()
                if isinstance(item, str):
                    # A bad frame becomes an `error` event (`isolate`); the link goes on.
                    batch = await self.decode_batch(SPEC, item.encode(), self._native)
                    self._emit(self._fresh(batch))
                elif not await self._on_change(item):
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must end the stream loudly, not hang it
            log.exception("connector.failed", conversation_id=self.conversation_id)
            self._emit([self._error("ADAPTER_ERROR", f"signalwire link failed: {exc}")])
        finally:
            self._leave_link()
            self._queue.put_nowait(None)

    async def _on_change(self, change: Change) -> bool:
        """Report a change of the shared link; once it is back, backfill. False: the
        session is over (the link was given up, or the backfill cannot be had)."""
        if change.state == "down":
            log.info("connector.link_lost", conversation_id=self.conversation_id)
            self._emit([self._link("down", reason=change.reason, will_retry=True)])
        elif change.state == "retrying":
            limit = self._policy.max_attempts or None  # 0: never given up
            self._emit([self._link("retrying", attempt=change.attempt, max_attempts=limit)])
        elif change.state == "restored":
            if self._shared is not None and self._shared.identity:
                self._identity = self._shared.identity
            return await self._restored()
        else:
            return self._give_up(change.reason or "signalwire link lost")
        return True

    async def _restored(self) -> bool:
        """Backfill after the link came back (REST, retried on the link policy), then report
        it restored with what it missed."""
        attempt = 0
        while True:
            try:
                missed = self._fresh(await self._backfill())
                break
            except VendorError as exc:
                if not exc.recoverable or self._policy.gives_up(attempt := attempt + 1):
                    return self._give_up(exc.message)
                log.debug("connector.backfill_failed", attempt=attempt, error=exc.message)
                await asyncio.sleep(self._policy.delay(attempt))
            except GatewayError as exc:  # the conversation is gone or refused: no retry helps
                return self._give_up(exc.message)
        log.info("connector.reconnected", conversation_id=self.conversation_id, missed=len(missed))
        self._emit([self._link("restored", missed=len(missed)), *missed])
        return True

    def _give_up(self, reason: str) -> bool:
        log.warning("connector.gave_up", conversation_id=self.conversation_id, reason=reason)
        self._emit([self._link("down", reason=reason, will_retry=False)])
        return False

    async def _backfill(self) -> list[Event]:
        """History rows of our conversation since the cursor (all when none), oldest first."""
        request = history_request(self._group or self._address, self._page_size)
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
                event = row_event(row, self.conversation_id, self._own_address())
            except Refused:
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
            async with self._http.requests.request(
                request.method,
                url or self._base + request.path,
                params=query if url else (request.query or None),
                json=request.json,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise rest_refusal(resp.status, raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise VendorError(f"signalwire unreachable: {exc!r}", code=UNREACHABLE) from exc
        try:
            return msgspec.json.decode(raw) if raw else {}
        except msgspec.DecodeError:
            raise VendorError("signalwire answered with a body that is not JSON") from None

    # -- events ---------------------------------------------------------------------------------

    def _subscriber(self) -> str | None:
        """The subscriber the platform says we are (the link's connect answer)."""
        return (self._shared.identity if self._shared is not None else None) or self._identity

    def _own_address(self) -> str | None:
        """The gateway's own address in the conversation: its rows are the user's."""
        return self._from or self._subscriber()

    async def _keep_own_address(self) -> None:
        """Make the own address the conversation's context (the hub's, when the sessions
        layer gave us it): the frames decoded here, and on webhooks, map to it."""
        own = self._own_address()
        if own is None:
            return
        learned = ConversationContext(own_address=own)
        self._context = self._context.merge(learned)
        if self.contexts is not None:
            await self.contexts.remember({self.conversation_id: learned})

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


def _sent_metadata(body: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical metadata of a message we posted, as its echo decodes it."""
    metadata = dict(body.get("metadata") or {})
    if body.get("details"):
        metadata["details"] = body["details"]
    return metadata
