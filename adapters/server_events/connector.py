"""The `server_events` connector: the I/O of one vendor chat session.

Settings: `url` is the platform's address (`https://host`); the API is under
`/clientweb/api/v2/` as the mobile SDKs call it (ServicePattern/MobileAPI_Android
`network/URLProvider.kt`, MobileAPI_IOS `NetworkService/URLProvider.swift`), unless `url`
already names an API base (`https://host/clientweb/api/v1`). Options (all strings, from
`GATEWAY_SERVER_EVENTS_<NAME>`): `app_id` (required), `client_id` (a UUID; generated when
absent and kept in the snapshot), `tenant_url` (sent as `?tenantUrl=`), `cache_buster` (the
query parameter carrying the current epoch milliseconds on every API request, `nonce` as
Android sends it, or `timestamp`; empty for none), `upload_field` (the multipart part name of
`POST files`, default `file-upload-input` as Android names it), `max_upload` (bytes of a file
fetched by URL to upload, default 10 MiB), `auto_delivered` (send
`chat_session_message_delivered` for every agent message, default true), and the common link
options of `gateway.reconnect` (`timeout_s`: one request, a held poll included, default 30;
`backoff_s` / `backoff_max_s` / `max_attempts`: reconnects, default 0.5 s / 15 s / 8).

Inbound is one long-poll loop on `GET chats/{id}/events`, never two polls at once (the
platform refuses a second with 5509). 5511 (no events) just polls again, 5509 backs off,
5005 ends the session. Any other failure reports `Link` down, then retrying attempts with
`gateway.reconnect`'s jittered backoff, each fetching `GET chats/{id}/history` (client and
server events): the first that succeeds reports `Link` restored with `missed` = the events it
found that had not been seen, then those events. Ids are stable across poll and history, so
nothing is lost or doubled. A frame of a poll that cannot be decoded becomes an `error` event;
the batch's other frames are published.

The roles parties announced (`chat_session_party_joined`) are the conversation's context
(`gateway.context`): the connector decodes every body in it (`Connector.decode_batch`: kept in
the hub, shared with webhook ingest) and carries the roles in its snapshot too.

Echo: the client chooses `msg_id`, so `send` returns the Message with the id its echo decodes
to (`server_events:<chat>/<msg_id>`), and the hub publishes it once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
import structlog

from adapters.server_events import encode
from adapters.server_events import native as n
from adapters.server_events.decode import SPEC
from adapters.server_events.errors import NO_EVENTS, TOO_MANY_POLLS, vendor_code, vendor_error
from adapters.server_events.native import DIALECT
from adapters.server_events.untimed import Untimed
from gateway.adapter import Connector, DialectSettings, HistoryPage, NativeRequest
from gateway.codec import conversation_id, derived_id
from gateway.context import ConversationContext
from gateway.errors import (
    GatewayError,
    PayloadTooLarge,
    RequestError,
    SessionNotFound,
    StoreUnavailable,
    VendorError,
)
from gateway.model import (
    Availability,
    Command,
    End,
    Ended,
    Error,
    Event,
    File,
    Image,
    Link,
    MarkRead,
    Message,
    Receipt,
    Send,
    SetTyping,
    Start,
    Status,
    Typing,
    now_at,
)
from gateway.reconnect import LinkOptions
from gateway.vendor_http import Answers, VendorHttp

log = structlog.get_logger(__name__)

_AUTH_SCHEME = "MOBILE-API-140-327-PLAIN"
_SEEN = 4096  # ids remembered to drop what a poll re-delivers after a history recovery
_error_body = msgspec.json.Decoder(n.ErrorBody)
_object = msgspec.json.Decoder(dict[str, Any])
_EMPTY_POLL = Answers(frozenset({400}))
"""A held poll's 400 is the platform's normal answer (5511 no events, 5509 a poll too many): not
counted as a vendor error in `/metrics` (a 5003 on a poll is not either; the connector logs it,
`connector.link_down`). A poll's 404 (5005) and 5xx are counted."""


def _answer(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object the platform answered, or a VendorError saying it did not."""
    try:
        return _object.decode(body)
    except msgspec.MsgspecError:
        raise VendorError(f"the platform's answer to {what} is not a JSON object") from None


def _option(options: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(options.get(name, default))
    except ValueError:
        raise RequestError(
            f"GATEWAY_SERVER_EVENTS_{name.upper()} must be a whole number", parameter=name
        ) from None


def _api_base(url: str) -> tuple[str, str]:
    """The API base and the file base of the platform at `url` (see the module docstring)."""
    url = url.rstrip("/")
    root = url.partition("/clientweb/")[0]
    api = url if "/clientweb/api/" in url else f"{root}/clientweb/api/v2"
    return f"{api}/", f"{root}/clientweb/file/"


class ServerEventsConnector(Connector):
    """One chat session on the platform (see the module docstring for settings)."""

    def __init__(self, settings: DialectSettings, http: VendorHttp) -> None:
        if not settings.url:
            raise RequestError("GATEWAY_SERVER_EVENTS_URL is not set", field="url")
        options = settings.options
        if not options.get("app_id"):
            raise RequestError("GATEWAY_SERVER_EVENTS_APP_ID is not set", field="app_id")
        self._http = http
        self._base, file_base = _api_base(settings.url)
        self._file_url = f"{file_base}{{file_id}}"  # the builders' `file_url` template
        self._app_id = options["app_id"]
        self._query = {"tenantUrl": options["tenant_url"]} if options.get("tenant_url") else {}
        self._cache_buster = options.get("cache_buster", "nonce")
        self._upload_field = options.get("upload_field") or "file-upload-input"
        self._policy = LinkOptions.read(options, timeout_s=30.0, backoff_s=0.5, backoff_max_s=15.0)
        self._timeout = aiohttp.ClientTimeout(total=self._policy.timeout_s)
        self._max_upload = _option(options, "max_upload", 10 * 1024 * 1024)
        self._auto_delivered = options.get("auto_delivered", "true").lower() in ("1", "true")
        self._client_id = options.get("client_id") or str(uuid.uuid4())
        self._headers = self._fixed_headers()
        self._chat_id = ""
        self.conversation_id = ""
        self._last_msg_id: str | None = None
        self._sent_end = False
        self._ended = False
        self._closed = False
        self._polling = False
        self._poller: asyncio.Task[Any] | None = None  # the task waiting in a held poll
        self._cut = False  # close() cancelled that task
        self._seen: deque[str] = deque(maxlen=_SEEN)
        self._seen_set: set[str] = set()
        self._links = 0
        self._untimed = Untimed()  # where the poll stream stands, for untimed frames

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, command: Start) -> Sequence[Event]:
        """Check availability, request a chat; returns the availability and the first status."""
        availability = _answer(await self._call("GET", "availability"), "GET availability")
        request = encode.request_chat(command)
        body = await self._call(request.method, request.path, request.json)
        created = _answer(body, "POST chats")
        chat_id = created.get("chat_id")
        if not isinstance(chat_id, str) or not chat_id:
            raise VendorError("the platform answered `POST chats` without a chat_id")
        self._bind(chat_id)
        log.info("connector.opened", dialect=DIALECT, conversation_id=self.conversation_id)
        at = now_at()
        conv = self.conversation_id
        ewt = _seconds(availability.get("ewt"))
        online = availability.get("chat") == "available"
        events: list[Event] = [
            Availability(
                id=derived_id(conv, "availability", chat_id),
                conversation_id=conv,
                dialect=DIALECT,
                at=at,
                online=online,
                wait_s=ewt,
            ),
        ]
        state = created.get("state")
        if isinstance(state, str) and state in n.STATUSES:
            events.append(
                Status(
                    id=derived_id(conv, "request_chat", chat_id),
                    conversation_id=conv,
                    dialect=DIALECT,
                    at=at,
                    status=n.STATUSES[state],
                    wait_s=_seconds(created.get("ewt")),
                )
            )
        return events

    async def resume(self, state: Mapping[str, Any]) -> Sequence[Event]:
        """Take over from a `snapshot` (at least `{"chat_id": ...}`); returns the history."""
        chat_id = state.get("chat_id")
        if not isinstance(chat_id, str) or not chat_id:
            raise RequestError("a server_events snapshot needs `chat_id`", field="chat_id")
        self._bind(chat_id)
        self._client_id = str(state.get("client_id") or self._client_id)
        self._headers = self._fixed_headers()
        self._last_msg_id = state.get("last_msg_id")
        self._sent_end = bool(state.get("sent_end"))
        self._ended = bool(state.get("ended"))
        self._context = _context_of(state)
        body = await self._call("GET", self._path("history"))
        events = self._fresh(await self._decode(body, history=True))
        log.info(
            "connector.resumed",
            dialect=DIALECT,
            conversation_id=self.conversation_id,
            fetched=len(events),
        )
        return events

    def snapshot(self) -> dict[str, Any]:
        return {
            "chat_id": self._chat_id,
            "client_id": self._client_id,
            "roles": dict(self._context.roles),
            "last_msg_id": self._last_msg_id,
            "sent_end": self._sent_end,
            "ended": self._ended,
        }

    async def history(self, cursor: str | None, limit: int) -> HistoryPage:
        """A page of `GET chats/{id}/history` (client and server events; the platform sends
        it whole). Newest page first; a cursor is `before:<n>` (the `limit` events before index
        n: older) or `after:<n>` (from index n on: newer), indexes into the history's events in
        time order, which only grows at its end, so they stay valid while the chat goes on.
        Typing is left out (stale by the time anyone reads history), and frames that cannot be
        decoded (a poll reports them). Reading leaves the poll's place in the stream as it was."""
        body = await self._call("GET", self._path("history"))
        events: list[Event] = [
            e
            for e in await self._decode(body, history=True, keep_place=False)
            if not isinstance(e, Typing | Error)
        ]
        total = len(events)
        if cursor is None:
            start, end = max(0, total - limit), total
        else:
            direction, _, index = cursor.partition(":")
            if direction not in ("before", "after") or not index.isdigit():
                raise RequestError("not a server_events history cursor", path="$.cursor")
            at = min(int(index), total)
            if direction == "before":
                start, end = max(0, at - limit), at
            else:
                start, end = at, min(total, at + limit)
        return HistoryPage(
            events=events[start:end],
            next=f"before:{start}" if start > 0 else None,
            prev=f"after:{end}" if end < total else None,
        )

    async def close(self) -> None:
        """Stop polling (the held poll is cancelled); the chat stays open on the platform."""
        self._closed = True
        if self._poller is not None and not self._cut:
            self._cut = True
            self._poller.cancel()

    # -- inbound -------------------------------------------------------------------------------

    async def inbound(self) -> AsyncIterator[Sequence[Event]]:
        """Batches from the long poll until the session ends (or `close`)."""
        if self._polling:
            raise RuntimeError("inbound() is already being iterated: one poll at a time")
        self._polling = True
        try:
            while not self._ended and not self._closed:
                try:
                    body = await self._poll()
                except _Closed:
                    return
                except GatewayError as exc:
                    async for batch in self._on_poll_error(exc):
                        yield batch
                    continue
                if body is None:  # held to the end, nothing happened: poll again
                    continue
                try:
                    batch = self._fresh(await self._decode(body))
                except StoreUnavailable as exc:  # the context is not to be had: history later
                    async for batch in self._recover(exc):
                        yield batch
                    continue
                except GatewayError as exc:  # a body that is no JSON must not stop the session
                    log.error(
                        "connector.bad_batch",
                        conversation_id=self.conversation_id,
                        code=exc.code,
                        **exc.details,
                    )
                    batch = [self._error(exc)]
                if batch:
                    yield batch
                    await self._acknowledge(batch)
        finally:
            self._polling = False

    async def _poll(self) -> bytes | None:
        """One held poll: its events' body, or None for the platform's 5511 (no events: the
        normal end of a poll held to the end, so no error is made of it). Raises `_Closed` when
        `close()` cut it short. The poll runs in the iterating task itself (no task of its own
        each poll): `close()` cancels that task while it waits here, and only a cancellation
        of close()'s alone (`uncancel()` leaves none pending) becomes `_Closed`."""
        task = asyncio.current_task()
        self._poller = task
        try:
            status, body = await self._request("GET", self._path("events"), held=True)
        except (asyncio.CancelledError, GatewayError):  # a client that made its own error of it
            if self._cut and task is not None and task.uncancel() == 0:
                raise _Closed from None
            raise
        finally:
            self._poller = None
        if status == 400 and _no_events(body):
            return None
        return _checked(status, body)

    async def _on_poll_error(self, exc: GatewayError) -> AsyncIterator[Sequence[Event]]:
        code = vendor_code(exc)
        if code == NO_EVENTS:
            return
        if code == TOO_MANY_POLLS:
            log.debug("connector.poll_refused", conversation_id=self.conversation_id)
            await asyncio.sleep(self._policy.delay(1))
            return
        if isinstance(exc, SessionNotFound):
            yield [self._end_event("error", "the platform no longer knows this chat")]
            return
        if exc.code == "VENDOR_AUTH":
            log.error("connector.refused", conversation_id=self.conversation_id, code=code)
            yield [
                self._link("down", reason=exc.message, will_retry=False),
                self._end_event("error", "the platform refused our credentials"),
            ]
            return
        async for batch in self._recover(exc):
            yield batch

    async def _recover(self, cause: GatewayError) -> AsyncIterator[Sequence[Event]]:
        log.warning(
            "connector.link_down",
            conversation_id=self.conversation_id,
            code=cause.code,
            vendor_code=vendor_code(cause),
        )
        yield [self._link("down", reason=cause.message, will_retry=True)]
        policy = self._policy
        attempt = 0
        while not policy.gives_up(attempt + 1):  # max_attempts 0: never gives up
            attempt += 1
            yield [
                self._link(
                    "retrying",
                    attempt=attempt,
                    max_attempts=policy.max_attempts or None,
                    will_retry=True,
                )
            ]
            await asyncio.sleep(policy.delay(attempt))
            if self._closed:
                return
            try:
                body = await self._call("GET", self._path("history"))
                missed = self._fresh(await self._decode(body, history=True))
            except SessionNotFound:
                yield [self._end_event("error", "the platform no longer knows this chat")]
                return
            except GatewayError as exc:
                log.debug("connector.retry_failed", attempt=attempt, code=exc.code)
                continue
            log.info(
                "connector.reconnected",
                conversation_id=self.conversation_id,
                attempt=attempt,
                missed=len(missed),
            )
            yield [self._link("restored", missed=len(missed)), *missed]
            await self._acknowledge(missed)
            return
        log.error(
            "connector.gave_up", conversation_id=self.conversation_id, attempts=policy.max_attempts
        )
        yield [
            self._link(
                "down", reason=f"gave up after {policy.max_attempts} attempts", will_retry=False
            ),
            self._end_event("error", "lost the link to the platform"),
        ]

    async def _decode(
        self, body: bytes, *, history: bool = False, keep_place: bool = True
    ) -> list[Event]:
        """Decode a poll's body, or the whole `history` (which restarts the stream's place for
        untimed frames: see `untimed.Untimed`), with the conversation's context
        (`Connector.decode_batch`: read from the hub, and what the body taught kept there). A
        frame that cannot be decoded becomes an `error` event after the others; a body that is
        no JSON at all raises `MalformedJSON`, an unreachable hub `StoreUnavailable`."""
        untimed = Untimed() if history else self._untimed
        options = {"file_url": self._file_url, "untimed": untimed}
        events = await self.decode_batch(SPEC, body, self._chat_id, options)
        if keep_place:
            self._untimed = untimed
        return events

    def _fresh(self, events: list[Event]) -> list[Event]:
        """The events not seen yet, with what they teach us applied (parties, end, reads)."""
        out: list[Event] = []
        for event in events:
            if event.id in self._seen_set:
                continue
            self._see(event.id)
            if isinstance(event, Typing) and event.sender.role == "user":
                continue  # the client's own typing, replayed by history: stale by now
            if isinstance(event, Message) and event.sender.role != "user":
                self._last_msg_id = event.id.rpartition("/")[2]
            elif isinstance(event, Ended) and not self._ended:
                self._ended = True
                if self._sent_end:  # the platform's end of the chat the user ended
                    event = msgspec.structs.replace(event, reason="user", by="user")
            elif isinstance(event, Status) and event.status == "failed" and not self._ended:
                out.append(event)
                event = self._end_event("error", "the chat session failed")
                self._ended = True
            out.append(event)
        return out

    def _see(self, event_id: str) -> None:
        if len(self._seen) == _SEEN:
            self._seen_set.discard(self._seen[0])
        self._seen.append(event_id)
        self._seen_set.add(event_id)

    async def _acknowledge(self, batch: Sequence[Event]) -> None:
        """Tell the platform the agent's messages were delivered (best effort): one request for
        the batch's (`POST events` takes a list), not one each."""
        if not self._auto_delivered or self._ended:
            return
        prefix = f"{self.conversation_id}/"
        receipts = [
            n.ClientDelivered(ref_msg_id=event.id.removeprefix(prefix))
            for event in batch
            if isinstance(event, Message) and event.sender.role != "user"
        ]
        if not receipts:
            return
        try:
            await self._deliver(encode.events_request(self._chat_id, *receipts))
        except GatewayError as exc:
            log.debug("connector.delivered_failed", code=exc.code)
            return
        for receipt in receipts:  # history replays these as the user's: not news to anyone
            tag = receipt.__struct_config__.tag
            self._see(derived_id(self.conversation_id, tag, receipt.ref_msg_id, None))

    # -- outbound ------------------------------------------------------------------------------

    async def send(self, command: Command) -> Sequence[Event]:
        """Deliver a command; a sent message comes back as the Message its echo will match."""
        if isinstance(command, Start):
            raise RequestError("this session is already started")
        if self._ended:  # the platform would answer 5005 (not found): say what happened
            raise RequestError(
                f"conversation {self.conversation_id} has ended", code="SESSION_ENDED"
            )
        if (
            isinstance(command, Send)
            and isinstance(command.content, Image | File)
            and not command.content.file_id
            and command.content.url
        ):
            # The platform takes files by upload only: fetch the URL, upload it, send its id.
            file_id, name = await self._upload_from(command.content)
            content = msgspec.structs.replace(command.content, file_id=file_id, file_name=name)
            command = msgspec.structs.replace(command, content=content)
        request = encode.encode(command, self.snapshot())
        await self._deliver(request)
        at = now_at()
        conv = self.conversation_id
        if isinstance(command, Send):
            msg_id = encode.sent_msg_id(request)
            return [
                Message(
                    id=f"{conv}/{msg_id}",
                    conversation_id=conv,
                    dialect=DIALECT,
                    at=at,
                    sender=n.USER,
                    content=command.content,
                    metadata=command.metadata,
                )
            ]
        if isinstance(command, MarkRead):
            ref = request.json["events"][0]["ref_msg_id"]
            # the same id the history's copy of this receipt decodes to
            receipt_id = derived_id(conv, "chat_session_message_read", ref, None)
            self._see(receipt_id)
            return [
                Receipt(
                    id=receipt_id,
                    conversation_id=conv,
                    dialect=DIALECT,
                    at=at,
                    sender=n.USER,
                    status="read",
                    message_id=f"{conv}/{ref}",
                )
            ]
        if isinstance(command, End):
            self._sent_end = True  # the platform's chat_session_ended follows on the poll
        if isinstance(command, SetTyping | End):
            return []
        raise AssertionError("encode refuses every other command")  # pragma: no cover

    async def upload(self, data: bytes, file_name: str, content_type: str) -> str:
        """`POST files` (multipart); returns the `file_id` to send as Image/File content."""
        form = aiohttp.FormData()
        form.add_field(self._upload_field, data, filename=file_name, content_type=content_type)
        body = await self._call("POST", "files", form=form)
        file_id = _answer(body, "POST files").get("file_id")
        if not isinstance(file_id, str):
            raise VendorError("the platform answered `POST files` without a file_id")
        return file_id

    async def _upload_from(self, content: Image | File) -> tuple[str, str]:
        """Fetch `content.url` and upload it; its `file_id` and the file name it went by."""
        url = content.url or ""
        try:
            async with self._http.requests.get(
                url, timeout=aiohttp.ClientTimeout(total=30)
            ) as response:
                if response.status != 200:
                    raise RequestError(
                        f"could not fetch the file to send (HTTP {response.status})",
                        field="content.url",
                    )
                data = await response.content.read(self._max_upload + 1)
                fetched_type = response.content_type
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RequestError(
                f"could not fetch the file to send: {type(exc).__name__}", field="content.url"
            ) from exc
        if len(data) > self._max_upload:
            raise PayloadTooLarge(f"files above {self._max_upload} bytes are not sent")
        name = content.file_name or url.rsplit("/", 1)[-1].split("?", 1)[0] or "file"
        mime = content.mime_type if isinstance(content, File) and content.mime_type else None
        return await self.upload(data, name, mime or fetched_type), name

    def file_url(self, file_id: str) -> str:
        """Where a received file is fetched: `GET /clientweb/file/{fileId}`."""
        return self._file_url.replace("{file_id}", quote(file_id, safe=""))

    async def send_form_data(self, request_id: str, name: str, data: dict[str, Any]) -> None:
        """Answer a `form` event (`chat_session_form_data`)."""
        event = n.ClientFormData(form_request_id=request_id, form_name=name, data=data)
        await self._deliver(encode.events_request(self._chat_id, event))

    async def send_signal(self, destination_party_id: str, data: Any) -> str:
        """Send WebRTC signaling to a party; returns the `msg_id` chosen."""
        msg_id = uuid.uuid4().hex
        event = n.ClientSignaling(
            msg_id=msg_id, destination_party_id=destination_party_id, data=data
        )
        await self._deliver(encode.events_request(self._chat_id, event))
        return msg_id

    async def disconnect(self) -> None:
        """`chat_session_disconnect`: the client leaves without ending the chat."""
        await self._deliver(encode.events_request(self._chat_id, n.ClientDisconnect()))

    # -- HTTP ----------------------------------------------------------------------------------

    def _fixed_headers(self) -> dict[str, str]:
        """The headers of every request (`_request`), made once per client id."""
        return {
            "Authorization": f'{_AUTH_SCHEME} appId="{self._app_id}", clientId="{self._client_id}"',
            "Cache-Control": "no-cache",
        }

    def _bind(self, chat_id: str) -> None:
        self._chat_id = chat_id
        self.conversation_id = conversation_id(DIALECT, chat_id)

    def _path(self, leaf: str) -> str:
        return f"chats/{self._chat_id}/{leaf}"

    async def _deliver(self, request: NativeRequest) -> None:
        await self._call(request.method, request.path, request.json)

    async def _call(
        self, method: str, path: str, json: Any = None, *, form: aiohttp.FormData | None = None
    ) -> bytes:
        """One request; returns the body, or raises the platform's error as a GatewayError."""
        status, body = await self._request(method, path, json, form=form)
        return _checked(status, body)

    async def _request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        form: aiohttp.FormData | None = None,
        held: bool = False,
    ) -> tuple[int, bytes]:
        """One request: its status and body, or `VENDOR_UNAVAILABLE` when there is no answer.

        Every request carries `tenantUrl` and a cache-buster (`nonce=<epoch ms>`, as Android's
        `URLProvider.generateFullUrl` adds to every API URL) and `Cache-Control: no-cache`
        (both SDKs' default headers): a proxy must never answer a poll from its cache.
        `held`: the long poll, which goes through the pool of held connections."""
        headers = self._headers
        query = dict(self._query)
        if self._cache_buster:
            query[self._cache_buster] = str(time.time_ns() // 1_000_000)
        data: Any = form
        if json is not None:
            data = msgspec.json.encode(json)
            headers = {**headers, "Content-Type": "application/json"}
        try:
            async with (self._http.held if held else self._http.requests).request(
                method,
                self._base + path,
                params=query,
                data=data,
                headers=headers,
                timeout=self._timeout,
                trace_request_ctx=_EMPTY_POLL if held else None,
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise VendorError(
                f"server_events platform unreachable: {type(exc).__name__}",
                code="VENDOR_UNAVAILABLE",
            ) from exc

    def _link(self, state: Any, **fields: Any) -> Link:
        self._links += 1  # every report is its own event, even with the same fields
        conv = self.conversation_id
        at = now_at()
        return Link(
            id=derived_id(conv, "link", state, at, self._links, self._client_id),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state=state,
            **fields,
        )

    def _error(self, exc: GatewayError) -> Error:
        self._links += 1
        conv = self.conversation_id
        at = now_at()
        return Error(
            id=derived_id(conv, "error", exc.code, at, self._links, self._client_id),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            code=exc.code,
            message=exc.message,
            recoverable=True,
        )

    def _end_event(self, reason: Any, text: str) -> Ended:
        self._ended = True
        conv = self.conversation_id
        return Ended(
            id=derived_id(conv, "ended", reason, text),
            conversation_id=conv,
            dialect=DIALECT,
            at=now_at(),
            reason=reason,
            by="system",
            text=text,
        )


class _Closed(Exception):
    """`close()` cancelled the held poll."""


def _checked(status: int, body: bytes) -> bytes:
    """The body of a success; the platform's error as a GatewayError otherwise."""
    if status < 400:
        return body
    try:
        error = _error_body.decode(body)
    except msgspec.MsgspecError:
        raise VendorError(
            f"server_events platform answered HTTP {status}",
            code="VENDOR_UNAVAILABLE",
            http_status=status,
        ) from None
    raise vendor_error(str(error.error_code), error.error_message, status)


def _no_events(body: bytes) -> bool:
    """Whether an error body is the platform's 5511 (a poll held to the end, no events)."""
    try:
        return str(_error_body.decode(body).error_code) == NO_EVENTS
    except msgspec.MsgspecError:
        return False


def _context_of(state: Mapping[str, Any]) -> ConversationContext:
    """The context a snapshot carries: `roles` (party id → role), or the `parties` (party id →
    Party) of snapshots written before roles were the conversation's context."""
    roles = state.get("roles")
    if roles is None:
        parties = state.get("parties") or {}
        roles = {pid: p.get("role") if isinstance(p, dict) else p for pid, p in parties.items()}
    try:
        return msgspec.convert({"roles": roles}, ConversationContext)
    except msgspec.ValidationError as exc:
        raise RequestError(f"bad roles in the snapshot: {exc}", parameter="roles") from None


def _seconds(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None
