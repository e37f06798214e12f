"""The genesys connector: one GMS Chat API v2 session, driven over HTTP polling.

`GATEWAY_GENESYS_TRANSPORT=polling` selects it; the default, `cometd`, is its subclass in
`adapters.genesys.cometd`, which keeps this state, decode and error mapping and replaces what
the transport decides (`_request_chat`, `_catch_up`, `_refresh`, `_between_polls`, `_perform`,
`_send_message`, `_final_batch`).

Settings: `GATEWAY_GENESYS_URL` is the service URL (`https://host/genesys/2/chat/<service>`);
options (`GATEWAY_GENESYS_<NAME>`): `apikey` (sent as the `apikey` header) and the common link
options of `gateway.reconnect` (`poll_interval_s` between refreshes, 2; `backoff_s` 0.5 and
`backoff_max_s` 30 for the jittered backoff; `max_attempts` 8 before the link is given up;
`timeout_s` 30, per request).

State (`snapshot()`, JSON): `chat_id`, `user_id`, `secure_key`, `alias` (always the latest GMS
gave), `position` (the next `transcriptPosition` to refresh from), `claimed` (the highest
transcript index already returned by `send`) and `active` (an agent has joined: `open` says
`status: queued`, the first agent's join `status: active`). `resume` refreshes from `position`,
so nothing between the last persisted position and now is skipped; the hub dedups what is
fetched twice.

Errors: statusCode 1 ("error, retry") and transport failures are retried with backoff (polls:
all of them; commands: only statusCode 1, since a dropped POST may have been applied);
statusCode 2 ("fatal") maps to `SessionNotFound` / `RequestError` / `Unsupported` /
`VendorError` (`vendor_code` kept), or, with `chatEnded`, ends the chat by error (a poll
publishes `error` then `ended` reason `error`); a command into a chat that has ended raises
`RequestError` with code `SESSION_ENDED`.

Replies are decoded with the dialect's pipeline spec (`decode.SPEC`) by `decode_batch`, isolating
bad entries: a bad entry of a poll becomes an `error` event naming it, the entries around it are
published, and the cursor moves past it.

Own messages: GMS echoes the client's messages into the transcript; their canonical id is the
transcript index, which only GMS knows. `send` posts with the current `transcriptPosition`, finds
its own entry in the reply (or, when the reply carries no transcript, in a refresh from the
same position, which does not move the poll's cursor) and returns that Message: the poll later
decodes the same entry to the same id, so the hub publishes it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
import structlog

from adapters.genesys import native as n
from adapters.genesys.decode import SPEC, ended
from adapters.genesys.encode import encode, refresh_request
from adapters.genesys.errors import command_error
from adapters.genesys.native import DIALECT, line_of
from gateway.adapter import Connector, DialectSettings, NativeRequest
from gateway.codec import conversation_id, derived_id
from gateway.errors import GatewayError, RequestError, SessionNotFound, VendorError
from gateway.model import (
    Command,
    Content,
    End,
    Ended,
    Error,
    Event,
    Link,
    LinkState,
    Message,
    ParticipantJoined,
    Recover,
    Send,
    SetTyping,
    Start,
    Status,
    Url,
    now_at,
)
from gateway.reconnect import LinkOptions
from gateway.vendor_http import VendorHttp

log = structlog.get_logger(__name__)

_ECHO_LOOKUPS = 3  # refreshes `send` makes to find its own entry when the reply lacks it


class _Answer(msgspec.Struct, frozen=True):
    """A GMS reply: its control fields, and its body for the pipeline to decode."""

    reply: n.Reply
    body: bytes


_read_reply = msgspec.json.Decoder(n.Reply).decode


class _Transient(Exception):
    """A failure a retry may fix; `applied` is False only when GMS said it did nothing."""

    def __init__(self, reason: str, *, applied: bool | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.applied = applied


class GenesysConnector(Connector):
    """One GMS chat session (see the module docstring for settings, state and errors)."""

    def __init__(self, settings: DialectSettings, http: VendorHttp) -> None:
        if not settings.url:
            raise RequestError("GATEWAY_GENESYS_URL (the GMS chat service URL) is not set")
        options = settings.options
        self._link = LinkOptions.read(options)  # the policy's own defaults are GMS's
        self._base = settings.url.rstrip("/")
        self._headers = {"apikey": options["apikey"]} if options.get("apikey") else {}
        self._timeout = aiohttp.ClientTimeout(total=self._link.timeout_s)
        self._http = http
        self._state: dict[str, Any] = {}
        self._send_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closed = False
        self._ended: Ended | None = None  # set when our own `End` ended the chat
        self._outages = 0
        self.conversation_id = ""

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self, command: Start) -> Sequence[Event]:
        answer = await self._request_chat(encode(command, {}))
        env = answer.reply
        if not env.chatId or not env.secureKey:
            raise VendorError("genesys accepted the chat but gave no chatId/secureKey")
        self._state = {
            "chat_id": env.chatId,
            "user_id": env.userId or "",
            "secure_key": env.secureKey,
            "alias": "" if env.alias is None else str(env.alias),
            "position": 1,
            "claimed": 0,
            "active": False,
        }
        self.conversation_id = conversation_id(DIALECT, env.chatId)
        events = await self._decode(answer)
        log.info("connector.opened", dialect=DIALECT, conversation_id=self.conversation_id)
        conv = self.conversation_id
        queued = Status(
            id=derived_id(conv, "status", "queued"),
            conversation_id=conv,
            dialect=DIALECT,
            at=now_at(),
            status="queued",
        )
        return [queued, *self._activated(events)]

    async def resume(self, state: Mapping[str, Any]) -> Sequence[Event]:
        if not state.get("chat_id") or not state.get("secure_key"):
            raise SessionNotFound("the genesys snapshot names no chat (chat_id/secure_key)")
        try:
            position, claimed = int(state.get("position") or 1), int(state.get("claimed") or 0)
        except (TypeError, ValueError):
            raise RequestError("bad genesys snapshot: position/claimed") from None
        self._state = {**state, "position": position, "claimed": claimed}
        self.conversation_id = conversation_id(DIALECT, str(state["chat_id"]))
        log.info("connector.resumed", dialect=DIALECT, conversation_id=self.conversation_id)
        try:
            return await self._catch_up()
        except _Transient:
            return []  # nothing was consumed: `inbound()` retries from the same position

    def snapshot(self) -> dict[str, Any]:
        return dict(self._state)

    async def close(self) -> None:
        self._closed = True
        self._wake.set()

    # --- inbound ----------------------------------------------------------------------------

    async def inbound(self) -> AsyncIterator[Sequence[Event]]:
        attempt = 0
        while not self._closed:
            if self._ended is not None:
                yield await self._final_batch()
                return
            try:
                events = await self._refresh()
            except _Transient as exc:
                attempt += 1
                if self._link.gives_up(attempt):
                    log.error("connector.gave_up", conversation_id=self.conversation_id)
                    yield [self._link_event("down", reason=exc.reason, will_retry=False)]
                    return
                yield self._retrying(attempt, exc.reason)
                await self._sleep(self._link.delay(attempt))
                continue
            except GatewayError as exc:
                log.error("connector.failed", conversation_id=self.conversation_id, code=exc.code)
                yield self._fatal(exc)
                return
            if attempt:
                log.info("connector.reconnected", conversation_id=self.conversation_id)
                restored = self._link_event("restored", attempt=attempt, missed=len(events))
                events = [restored, *events]
                attempt = 0
            if events:
                yield events
            if any(isinstance(e, Ended) for e in events):
                log.info("connector.ended", conversation_id=self.conversation_id)
                return
            await self._between_polls()

    # --- what the transport decides (`adapters.genesys.cometd` pushes instead) ---------------

    async def _request_chat(self, request: NativeRequest) -> _Answer:
        """The reply that opens the chat (`open`)."""
        return await self._command(request)

    async def _catch_up(self) -> list[Event]:
        """What `resume` returns: the transcript from `position`."""
        return await self._refresh()

    async def _refresh(self) -> list[Event]:
        """One poll from `position`; advances `position` and `alias`."""
        answer = await self._post(refresh_request(self._state))
        return self._activated(await self._decode(answer))

    async def _between_polls(self) -> None:
        await self._sleep(self._link.poll_interval_s)

    async def _perform(self, request: NativeRequest) -> None:
        """A command whose reply carries nothing the caller needs (typing, disconnect)."""
        await self._command(request)

    async def _decode(self, answer: _Answer) -> list[Event]:
        """The events of a reply to a request from `position` (a bad entry becomes an `error`
        event, the others are kept), and `position` moved past it: to GMS's `nextPosition`,
        else one past the last entry it holds (the request-chat reply of the GMS v2 docs'
        sample carries no `nextPosition`)."""
        events = await self.decode_batch(SPEC, answer.body, self._state["chat_id"])
        position = answer.reply.nextPosition
        if position is None:
            lines = [line_of(e.id) for e in events]
            position = max(
                [self._state["position"], *(line + 1 for line in lines if line is not None)]
            )
        self._state["position"] = position
        return events

    def _activated(self, events: list[Event]) -> list[Event]:
        """`events`, with `status: active` after the first agent's join (`open` said
        `queued`); its one id makes a re-fetched join after a takeover publish it once."""
        if self._state.get("active"):
            return events
        for i, event in enumerate(events):
            if isinstance(event, ParticipantJoined) and event.participant.role == "agent":
                self._state["active"] = True
                conv = self.conversation_id
                active = Status(
                    id=derived_id(conv, "status", "active"),
                    conversation_id=conv,
                    dialect=DIALECT,
                    at=event.at,
                    status="active",
                )
                return [*events[: i + 1], active, *events[i + 1 :]]
        return events

    async def _final_batch(self) -> list[Event]:
        """After our own `End`: what the transcript still holds, then the end."""
        assert self._ended is not None
        try:
            events = await self._refresh()
        except (_Transient, GatewayError):
            events = []
        if not any(isinstance(e, Ended) for e in events):
            events.append(self._ended)
        return events

    def _retrying(self, attempt: int, reason: str) -> list[Event]:
        batch: list[Event] = []
        if attempt == 1:
            self._outages += 1
            log.warning("connector.link_down", conversation_id=self.conversation_id, reason=reason)
            batch.append(self._link_event("down", reason=reason, will_retry=True))
        most = self._link.max_attempts or None  # 0: never given up
        batch.append(
            self._link_event("retrying", reason=reason, attempt=attempt, max_attempts=most)
        )
        return batch

    def _fatal(self, exc: GatewayError) -> list[Event]:
        conv, at = self.conversation_id, now_at()
        error = Error(
            id=derived_id(conv, "error", at, exc.code),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            code=exc.code,
            message=exc.message,
            recoverable=False,
            metadata={k: v for k, v in exc.details.items() if k == "vendor_code"},
        )
        if isinstance(exc, SessionNotFound):  # the chat is gone for good
            return [error, ended(conv, at, "error", "system")]
        return [error, self._link_event("down", reason=exc.code, will_retry=False)]

    def _link_event(self, state: LinkState, **fields: Any) -> Link:
        conv, at = self.conversation_id, now_at()
        eid = derived_id(conv, "link", self._outages, state, fields.get("attempt"), at)
        return Link(id=eid, conversation_id=conv, dialect=DIALECT, at=at, state=state, **fields)

    async def _sleep(self, delay: float) -> None:
        """Sleep `delay`, or less when `close` or our own `End` wakes the loop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()

    # --- commands ---------------------------------------------------------------------------

    async def send(self, command: Command) -> Sequence[Event]:
        if isinstance(command, Start | Recover):
            raise RequestError(f"{command.__struct_config__.tag!r} opens a session: use open")
        if self._ended is not None:  # our own `End`: the session is over, ask GMS nothing
            raise _has_ended()
        request = encode(command, self._state)
        match command:
            case Send():
                return [await self._send_message(request, command.content)]
            case SetTyping():
                await self._perform(request)
                return []
            case End():
                await self._perform(request)
                self._ended = ended(self.conversation_id, now_at(), "user", "user")
                self._wake.set()
                log.info("connector.ended", conversation_id=self.conversation_id, by="user")
                return [self._ended]
        raise AssertionError("encode refuses every other command")  # pragma: no cover

    async def _send_message(self, request: NativeRequest, content: Content) -> Message:
        async with self._send_lock:  # one at a time, so each finds its own transcript entry
            position = int(self._state["position"])
            answer = await self._command(request)
            found = await self._own_entry(answer.body, content)
            for _ in range(_ECHO_LOOKUPS):
                if found is not None:
                    break
                lookup = await self._post(refresh_request(self._state, position))
                found = await self._own_entry(lookup.body, content)
            if found is None:
                raise VendorError(
                    "genesys accepted the message but it never reached the transcript"
                )
            index, message = found
            self._state["claimed"] = index
            return message

    async def _own_entry(self, body: bytes, content: Content) -> tuple[int, Message] | None:
        """Our message's entry in a reply's `body`: a client message with our content, past
        the last one `send` claimed (two identical texts get two entries, in order). The reply
        is decoded as a poll's would be, so the message is the one the poll will publish."""
        wanted = Url(url=content.url) if isinstance(content, Url) else content
        for event in await self.decode_batch(SPEC, body, self._state["chat_id"]):
            line = line_of(event.id)
            if (
                isinstance(event, Message)
                and line is not None
                and line > self._state["claimed"]
                and event.sender.role == "user"
                and event.content == wanted
            ):
                return line, event
        return None

    async def _command(self, request: NativeRequest) -> _Answer:
        """POST a command; retries only replies that say GMS did nothing (statusCode 1)."""
        attempt = 0
        while True:
            try:
                answer = await self._post(request)
            except _Transient as exc:
                attempt += 1
                if exc.applied is not False or self._link.gives_up(attempt):
                    raise VendorError(f"genesys did not answer: {exc.reason}") from None
                if request.form is not None and "alias" in request.form:
                    request.form["alias"] = self._state["alias"]  # the refusal's, if it moved
                await asyncio.sleep(self._link.delay(attempt))
                continue
            if answer.reply.statusCode != 0:  # refused, the chat having ended
                raise _has_ended()
            return answer

    async def _post(self, request: NativeRequest) -> _Answer:
        """One form POST. Returns the GMS reply (statusCode 0, or 2 with `chatEnded`);
        raises `_Transient` for what a retry may fix and a `GatewayError` otherwise."""
        url = self._base + request.path
        log.debug("connector.request", conversation_id=self.conversation_id, path=request.path)
        try:
            async with self._http.requests.post(
                url, data=request.form, headers=self._headers, timeout=self._timeout
            ) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Transient(type(exc).__name__) from exc
        if status in (401, 403):
            raise VendorError("genesys refused the credentials (apikey)", vendor_code=status)
        if status >= 500 or status == 429:
            raise _Transient(f"HTTP {status}")
        try:
            env = _read_reply(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise VendorError(
                f"genesys sent no GMS reply (HTTP {status})", vendor_code=status
            ) from None
        if env.alias is not None:
            self._state["alias"] = str(env.alias)  # GMS may move the chat: always the latest
        if env.statusCode == 1 and not env.chatEnded:  # ended, a retry cannot help
            first = env.errors[0] if env.errors else None
            raise _Transient(f"statusCode 1 ({first.code if first else '?'})", applied=False)
        if env.statusCode != 0 and not env.chatEnded:
            first = env.errors[0] if env.errors else n.GmsError(code=52)
            raise command_error(first.code, first.advice)
        return _Answer(env, body)


def _has_ended() -> RequestError:
    """A command into a chat that has ended (GMS refuses it with code 50 and `chatEnded`)."""
    return RequestError("the genesys chat has ended", code="SESSION_ENDED", vendor_code=50)
