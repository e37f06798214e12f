"""The loopback connector: one chat on the loopback platform (see `emulator.py` for its API).

Inbound is a long poll on `frames?after=N`; `after` is the cursor persisted in the snapshot, so
a replica that takes the chat over re-reads from the last published batch (the hub drops what
it already has). Outages are retried forever with capped exponential backoff and reported as
`link` events: `down`, then `retrying` per attempt, then `restored` with the frames fetched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
import structlog

from adapters.loopback.decode import SPEC
from adapters.loopback.native import DIALECT
from gateway.adapter import Connector, DialectSettings
from gateway.codec import conversation_id, derived_id
from gateway.errors import GatewayError, RequestError, SessionNotFound, Unsupported, VendorError
from gateway.model import (
    Command,
    End,
    Event,
    Link,
    LinkState,
    Send,
    SetTyping,
    Start,
    Status,
    Text,
    now_at,
)
from gateway.reconnect import LinkOptions
from gateway.vendor_http import VendorHttp

log = structlog.get_logger(__name__)


class LoopbackConnector(Connector):
    """Options: `poll_wait` (s the platform holds a poll, default 10) and the common link
    options of `gateway.reconnect` (`timeout_s` beyond the poll's wait, 10; `backoff_s`, 0.2;
    `backoff_max_s`, 5; `max_attempts`, 0: a test platform is retried forever)."""

    def __init__(self, settings: DialectSettings, http: VendorHttp) -> None:
        if not settings.url:
            raise RequestError("the loopback dialect needs GATEWAY_LOOPBACK_URL")
        self.base = settings.url.rstrip("/")
        self.http = http
        self.poll_wait = float(settings.options.get("poll_wait", 10))
        self.link = LinkOptions.read(
            settings.options, timeout_s=10, backoff_s=0.2, backoff_max_s=5, max_attempts=0
        )
        self.chat_id = ""
        self.after = 0
        self.conversation_id = ""

    async def _call(self, method: str, path: str, *, held: bool = False, **kwargs: Any) -> Any:
        """One request; `held` for the long poll (the pool of held connections)."""
        session = self.http.held if held else self.http.requests
        try:
            async with session.request(method, f"{self.base}{path}", **kwargs) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise VendorError(f"loopback platform unreachable: {type(exc).__name__}") from exc
        if status == 404:
            raise SessionNotFound(f"loopback chat {self.chat_id or '?'} not found")
        if status in (400, 409):
            raise RequestError(
                f"loopback platform refused: {body.get('error')}", vendor_status=status
            )
        if status >= 300:
            raise VendorError(f"loopback platform answered {status}", vendor_status=status)
        return body

    async def open(self, command: Start) -> Sequence[Event]:
        body = await self._call(
            "POST",
            "/chats",
            json={
                "from": command.participant.from_,
                "name": command.participant.name,
            },
        )
        self.chat_id = str(body["chat_id"])
        self.conversation_id = conversation_id(DIALECT, self.chat_id)
        return [
            Status(
                id=derived_id(self.conversation_id, "status", "active"),
                conversation_id=self.conversation_id,
                dialect=DIALECT,
                at=now_at(),
                status="active",
            )
        ]

    async def resume(self, state: Mapping[str, Any]) -> Sequence[Event]:
        self.chat_id = str(state["chat_id"])
        self.after = int(state.get("after", 0))
        self.conversation_id = conversation_id(DIALECT, self.chat_id)
        events, self.after = await self._poll(wait=0)
        return events

    def snapshot(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "after": self.after}

    async def _poll(self, wait: float) -> tuple[list[Event], int]:
        body = await self._call(
            "GET",
            f"/chats/{self.chat_id}/frames",
            params={"after": self.after, "wait": wait},
            held=wait > 0,
            timeout=aiohttp.ClientTimeout(total=wait + self.link.timeout_s),
        )
        return await self._decode(body["frames"]), int(body["next"])

    async def inbound(self) -> AsyncIterator[Sequence[Event]]:
        attempt = 0
        while True:
            try:
                events, cursor = await self._poll(self.poll_wait)
            except SessionNotFound:
                raise
            except GatewayError as exc:
                attempt += 1
                if attempt == 1:
                    yield [self._link("down", reason=exc.message, will_retry=True)]
                yield [self._link("retrying", attempt=attempt)]
                await asyncio.sleep(self.link.delay(attempt))
                continue
            if attempt:
                log.info("connector.restored", attempts=attempt, fetched=len(events))
                events.insert(0, self._link("restored", missed=len(events)))
                attempt = 0
            if events:
                yield events
            self.after = cursor  # only once the batch is published: a takeover re-reads it
            if any(e.__struct_config__.tag == "ended" for e in events):
                return

    async def _decode(self, frames: list[Any]) -> list[Event]:
        """The platform's frames (parsed by `_call`) as events; a bad one becomes an `error`
        event, the good ones of its batch are kept."""
        return await self.decode_batch(SPEC, msgspec.json.encode(frames), self.chat_id)

    def _link(self, state: LinkState, **fields: Any) -> Link:
        at = now_at()
        return Link(
            id=derived_id(self.conversation_id, "link", state, at, fields.get("attempt")),
            conversation_id=self.conversation_id,
            dialect=DIALECT,
            at=at,
            state=state,
            **fields,
        )

    async def send(self, command: Command) -> Sequence[Event]:
        match command:
            case Send(content=Text(text=text)):
                body = await self._call(
                    "POST",
                    f"/chats/{self.chat_id}/messages",
                    json={"text": text, "client_id": command.ref},
                )
                return await self._decode([body["frame"]])
            case SetTyping():
                await self._call(
                    "POST", f"/chats/{self.chat_id}/typing", json={"active": command.active}
                )
                return []
            case End():
                await self._call("POST", f"/chats/{self.chat_id}/end", json={})
                return []
        raise Unsupported(f"loopback cannot carry {command.__struct_config__.tag!r} of this kind")

    async def close(self) -> None:
        pass  # the HTTP session is shared; nothing else is held
