"""An in-process emulator of the `server_events` platform, for tests and `gateway serve --demo`.

    emulator = Emulator(app_id="demo-app", poll_hold=10.0, agent_delay=0.5)
    runner = web.AppRunner(emulator.app)   # or pytest-aiohttp's aiohttp_server(emulator.app)

It serves the Mobile/Web chat API as DIALECTS.md describes it, under `/clientweb/api/v2/`
where the mobile SDKs call it (ServicePattern/MobileAPI_Android `network/URLProvider.kt`):
`GET availability`, `POST chats`, the long poll `GET chats/{id}/events` (held `poll_hold`
seconds; a concurrent second poll is refused with 400/5509; a poll that times out answers
5511), `POST chats/{id}/events`, `GET chats/{id}/history` (client and server events, never
signaling), `POST files` (multipart, the file in the part named `upload_field`, Android's
`file-upload-input` by default; answered `{file_id, file_name}` as Android's
`ContactCenterUploadedFileInfo` reads it) and `GET /clientweb/file/{fileId}` (no tenant: Android's
`generateFileUrl` sends none). Every request must carry
`Authorization: MOBILE-API-140-327-PLAIN appId="<app_id>", clientId="<uuid>"` (the values
quoted as the API documents show them, or bare as both SDKs send them) and `?tenantUrl=` when
a tenant is configured; a poll must carry a cache-buster, `nonce=<epoch ms>` (Android, on
every request) or `timestamp=<epoch ms>`, or it is refused 400/5003 (**ours**: the platform
would answer it, but a proxy could answer it from its cache; with `require_cache_buster`
False it is taken). Errors are the platform's `{"error_code", "error_message"}` bodies.

The client's own lines (messages, files, locations) come back through the poll and the
history with `party_id` equal to the chat id, as the platform reports the client's party (the
iOS SDK's `ContactCenterEvent.chatSessionMessage`: "Client party ID always matches the chat
ID").

A scripted agent plays the other side: it joins when a chat starts (status `connected`,
`chat_session_party_joined`, a greeting), marks each user message read, types, and answers
`"echo: <text>"`; the text "bye" makes it end the session. The client's own messages, files
and locations are echoed back through the poll (without `party_id`, as the client's).
Test controls: `agent_says`, `push` (any raw server event), `end_session`, `drop_connections`,
`received` / `chats` to inspect what the client sent, and `until(predicate)` to wait on that
state. The HTTP status
codes of error bodies are our choice (the platform's are not public): see `STATUS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
from aiohttp import BodyPartReader, web

from gateway.demo import DemoFiles, Wiring

STATUS: dict[str, int] = {
    "1000": 400,
    "2000": 401,
    "2001": 401,
    "2002": 401,
    "3000": 403,
    "5001": 503,
    "5003": 400,
    "5005": 404,
    "5501": 413,
    "5502": 404,
    "5509": 400,
    "5511": 400,
}
_AUTH = re.compile(r'^MOBILE-API-140-327-PLAIN appId=("?)([^",]*)\1, clientId=("?)([^",]*)\3$')
_CACHE_BUSTERS = ("nonce", "timestamp")
REQUEST_LOG = 10_000
"""Requests the emulator remembers (`Emulator.requests`, `.queries`): the latest."""
_MESSAGES = {
    "1000": "Invalid tenant URL",
    "2000": "Authorization header missing",
    "2001": "Invalid authorization header",
    "2002": "Client id missing",
    "3000": "Invalid application id",
    "5001": "Server unavailable",
    "5003": "Invalid JSON",
    "5005": "Chat session not found",
    "5501": "File too large",
    "5502": "File not found",
    "5509": "Too many poll requests",
    "5511": "No events",
}


class PlatformError(Exception):
    """Raised inside handlers; answered as the platform's error body."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Chat:
    """One chat session as the platform holds it."""

    chat_id: str
    client_id: str
    outbox: list[dict[str, Any]] = field(default_factory=list)  # what polls deliver, in order
    cursor: int = 0  # outbox[:cursor] has been delivered
    history: list[dict[str, Any]] = field(default_factory=list)  # client and server events
    received: list[dict[str, Any]] = field(default_factory=list)  # every client event, as sent
    polls: int = 0  # polls being held now (the platform allows one)
    drops: int = 0  # bumped by `drop_connections`: a poll held across a bump fails
    ended: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Emulator:
    """The platform. `agent_delay` spaces the scripted agent's steps (0 in tests)."""

    AGENT: ClassVar[dict[str, Any]] = {
        "party_id": "agent-1",
        "first_name": "Alice",
        "last_name": "Agent",
        "display_name": "Alice",
        "type": "internal",
    }

    def __init__(
        self,
        *,
        app_id: str = "demo-app",
        tenant: str | None = None,
        poll_hold: float = 10.0,
        agent_delay: float = 0.5,
        greeting: str | None = "Hello! How can I help?",
        max_upload: int = 10 * 1024 * 1024,
        available: bool = True,
        upload_field: str = "file-upload-input",
        require_cache_buster: bool = True,
    ) -> None:
        self.app_id = app_id
        self.tenant = tenant
        self.poll_hold = poll_hold
        self.agent_delay = agent_delay
        self.greeting = greeting
        self.max_upload = max_upload
        self.available = available
        self.upload_field = upload_field
        self.require_cache_buster = require_cache_buster
        self.chats: dict[str, Chat] = {}
        self.files: dict[str, tuple[bytes, str, str]] = {}
        self.fail_next = 0  # requests to fail with 5001 (see drop_connections)
        # (method, path) and query of the last REQUEST_LOG requests, in order: bounded, as an
        # emulator answering 5,000 chats' polls (500 a second) runs for hours in a bench
        self.requests: deque[tuple[str, str]] = deque(maxlen=REQUEST_LOG)
        self.queries: deque[dict[str, str]] = deque(maxlen=REQUEST_LOG)
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._watching = 0  # `until` calls waiting on `_changed`
        self.app = web.Application(middlewares=[self._platform])
        self.app.on_cleanup.append(self._stop_agents)
        api = "/clientweb/api/v2"
        self.app.router.add_get(f"{api}/availability", self._availability)
        self.app.router.add_post(f"{api}/chats", self._request_chat)
        self.app.router.add_get(f"{api}/chats/{{chat_id}}/events", self._poll)
        self.app.router.add_post(f"{api}/chats/{{chat_id}}/events", self._client_events)
        self.app.router.add_get(f"{api}/chats/{{chat_id}}/history", self._history)
        self.app.router.add_post(f"{api}/files", self._upload)
        self.app.router.add_get("/clientweb/file/{file_id}", self._download)

    # -- test controls -------------------------------------------------------------------------

    def agent_says(self, chat_id: str, text: str) -> str:
        """The agent sends `text` now; returns its `msg_id`."""
        msg_id = f"a-{next(self._ids)}"
        self._push(
            self._chat(chat_id),
            "chat_session_message",
            msg_id=msg_id,
            msg=text,
            party_id=self.AGENT["party_id"],
        )
        return msg_id

    def push(self, chat_id: str, name: str, **fields: Any) -> None:
        """Deliver any server event (even a malformed one) as the platform would."""
        self._push(self._chat(chat_id), name, **fields)

    def end_session(self, chat_id: str) -> None:
        """The agent closes the chat."""
        chat = self._chat(chat_id)
        self._push(chat, "chat_session_party_left", party_id=self.AGENT["party_id"])
        self._push(chat, "chat_session_ended")
        chat.ended = True

    def drop_connections(self, fail_next: int = 0) -> None:
        """Fail every held poll (503/5001) and the next `fail_next` requests of any kind."""
        self.fail_next = fail_next
        for chat in self.chats.values():
            chat.drops += 1
            self._wake(chat)

    async def until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until `predicate()` holds of the platform's state (it is re-checked after
        every request and every event); raises `TimeoutError` after `within` seconds."""
        async with asyncio.timeout(within):
            while not predicate():
                self._watching += 1
                try:
                    await self._changed.wait()
                finally:
                    self._watching -= 1

    def received(self, chat_id: str) -> list[dict[str, Any]]:
        """The client events the platform received for `chat_id`, in order."""
        return self._chat(chat_id).received

    # -- plumbing ------------------------------------------------------------------------------

    @web.middleware
    async def _platform(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        self.queries.append(dict(request.query))
        self._touch()
        try:
            if self.fail_next > 0:
                self.fail_next -= 1
                raise PlatformError("5001")
            self._authorize(request)
            response: web.StreamResponse = await handler(request)
            return response
        except PlatformError as exc:
            body = {"error_code": exc.code, "error_message": _MESSAGES.get(exc.code, "Error")}
            return web.json_response(body, status=STATUS.get(exc.code, 500))
        finally:
            self._touch()

    def _touch(self) -> None:
        # Only a waiting `until` needs the news: an emulator answering thousands of polls a
        # second would make a new Event for each request otherwise.
        if self._watching:
            self._changed.set()
            self._changed = asyncio.Event()

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if header is None:
            raise PlatformError("2000")
        match = _AUTH.match(header)
        if match is None:
            raise PlatformError("2001")
        if not match.group(4):
            raise PlatformError("2002")
        if match.group(2) != self.app_id:
            raise PlatformError("3000")
        if request.path.startswith("/clientweb/file/"):
            return  # file URLs carry no tenant (Android's `generateFileUrl`)
        if self.tenant is not None and request.query.get("tenantUrl") != self.tenant:
            raise PlatformError("1000")

    def _chat(self, chat_id: str) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None:
            raise PlatformError("5005")
        return chat

    def _push(self, chat: Chat, name: str, *, history: bool = True, **fields: Any) -> None:
        event = {"event": name, **fields, "timestamp": str(int(time.time() * 1000))}
        chat.outbox.append(event)
        if history:
            chat.history.append(event)
        self._wake(chat)

    def _wake(self, chat: Chat) -> None:
        chat.wake.set()
        chat.wake = asyncio.Event()
        self._touch()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop_agents(self, _: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pause(self) -> None:
        await asyncio.sleep(self.agent_delay)

    # -- the API -------------------------------------------------------------------------------

    async def _availability(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"chat": "available" if self.available else "unavailable", "ewt": "0"}
        )

    async def _request_chat(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("from"), str):
            raise PlatformError("5003")
        header = _AUTH.match(request.headers["Authorization"])
        assert header is not None  # _authorize checked it
        # unique across emulators: tests share one Redis, where chat ids name conversations
        chat = Chat(chat_id=f"chat-{uuid.uuid4().hex[:12]}", client_id=header.group(4))
        self.chats[chat.chat_id] = chat
        self._spawn(self._agent_joins(chat))
        return web.json_response(
            {
                "chat_id": chat.chat_id,
                "state": "queued",
                "ewt": "0",
                "is_new_chat": True,
                "phone_number": body.get("phone_number"),
            }
        )

    async def _agent_joins(self, chat: Chat) -> None:
        await self._pause()
        self._push(chat, "chat_session_status", state="connected")
        self._push(chat, "chat_session_party_joined", **self.AGENT)
        if self.greeting:
            self.agent_says(chat.chat_id, self.greeting)

    async def _poll(self, request: web.Request) -> web.Response:
        chat = self._chat(request.match_info["chat_id"])
        fresh = any(request.query.get(name, "").isdigit() for name in _CACHE_BUSTERS)
        if self.require_cache_buster and not fresh:
            raise PlatformError("5003")
        if chat.polls:
            raise PlatformError("5509")  # the platform allows one poll per chat at a time
        chat.polls += 1
        self._touch()
        drops = chat.drops
        try:
            deadline = asyncio.get_running_loop().time() + self.poll_hold
            while chat.cursor >= len(chat.outbox) and chat.drops == drops:
                if chat.ended:
                    raise PlatformError("5005")
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise PlatformError("5511")
                wake = chat.wake
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await wake.wait()
            if chat.drops != drops:
                raise PlatformError("5001")
            events, chat.cursor = chat.outbox[chat.cursor :], len(chat.outbox)
            return web.json_response({"events": events})
        finally:
            chat.polls -= 1

    async def _client_events(self, request: web.Request) -> web.Response:
        chat = self._chat(request.match_info["chat_id"])
        if chat.ended:
            raise PlatformError("5005")
        body = await _json(request)
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list) or not all(
            isinstance(e, dict) and isinstance(e.get("event"), str) for e in events
        ):
            raise PlatformError("5003")
        for event in events:
            self._receive(chat, event)
        return web.json_response({})

    def _receive(self, chat: Chat, event: dict[str, Any]) -> None:
        chat.received.append(event)
        name = event["event"]
        # stored as the client's party, which is the chat itself
        stamped = {**event, "party_id": chat.chat_id, "timestamp": str(int(time.time() * 1000))}
        if name == "chat_session_signaling":
            return  # relayed to the agent, never stored
        if name in ("chat_session_message", "chat_session_file", "chat_session_location"):
            if name == "chat_session_file" and event.get("file_id") not in self.files:
                raise PlatformError("5502")
            stamped.setdefault("msg_id", f"c-{next(self._ids)}")
            fields = {k: v for k, v in stamped.items() if k not in ("event", "timestamp")}
            self._push(chat, name, **fields)  # the echo: stored, and delivered to the client
            if name == "chat_session_message":
                self._spawn(self._agent_answers(chat, str(stamped["msg_id"]), str(event["msg"])))
            return
        chat.history.append(stamped)
        if name == "chat_session_end":
            self._push(chat, "chat_session_ended")
            chat.ended = True

    async def _agent_answers(self, chat: Chat, msg_id: str, text: str) -> None:
        agent = self.AGENT["party_id"]
        await self._pause()
        if chat.ended:
            return
        self._push(chat, "chat_session_message_read", ref_msg_id=msg_id, party_id=agent)
        self._push(chat, "chat_session_typing", party_id=agent)
        await self._pause()
        if chat.ended:
            return
        self._push(chat, "chat_session_not_typing", party_id=agent)
        if text.strip().lower() == "bye":
            self.agent_says(chat.chat_id, "Goodbye!")
            self.end_session(chat.chat_id)
        else:
            self.agent_says(chat.chat_id, f"echo: {text}")

    async def _history(self, request: web.Request) -> web.Response:
        chat = self._chat(request.match_info["chat_id"])
        return web.json_response({"events": chat.history})

    async def _upload(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise PlatformError("5003")
        reader = await request.multipart()
        part = await reader.next()
        while part is not None and getattr(part, "name", None) != self.upload_field:
            part = await reader.next()
        if not isinstance(part, BodyPartReader):
            raise PlatformError("5003")
        data = bytearray()
        while chunk := await part.read_chunk():
            data += chunk
            if len(data) > self.max_upload:
                raise PlatformError("5501")
        file_id = f"file-{next(self._ids)}"
        content_type = part.headers.get("Content-Type", "application/octet-stream")
        name = part.filename or file_id
        self.files[file_id] = (bytes(data), name, content_type)
        return web.json_response({"file_id": file_id, "file_name": name})

    async def _download(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            raise PlatformError("5502")
        data, name, content_type = stored
        return web.Response(
            body=data,
            content_type=content_type,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


async def _json(request: web.Request) -> Any:
    try:
        return msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        raise PlatformError("5003") from None


# -- demo mode (gateway/demo.py) ---------------------------------------------------------------


def demo_wiring() -> Wiring:
    """How `gateway serve --demo` runs this dialect: this emulator, and the connector's options."""
    return Wiring(
        build=lambda pace: Emulator(app_id="demo-app", poll_hold=10.0, agent_delay=0.6 * pace),
        options={"app_id": "demo-app", "backoff_s": "0.2", "backoff_max_s": "2"},
        send_file=_send_file,
    )


async def _send_file(emulator: Emulator, native: str, files: DemoFiles) -> bool:
    if native not in emulator.chats:
        return False
    file_id = f"demo-file-{next(files.ids)}"
    emulator.files[file_id] = (files.receipt, "receipt.txt", "text/plain")
    emulator.push(
        native,
        "chat_session_file",
        msg_id=f"a-{file_id}",
        file_id=file_id,
        file_type="attachment",
        file_name="receipt.txt",
        party_id="agent-1",
    )
    return True
