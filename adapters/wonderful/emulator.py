"""An in-process Wonderful platform, for the tests and the demo mode (`gateway serve --demo`).

It serves the wire the adapter defines (see `adapters.wonderful`): REST under
`/api/v1/chat/sessions` with `Authorization: Bearer <key>` (or `?token=` on the WebSocket), its
documented errors (`MISSING_PARTICIPANT`, `INVALID_REQUEST`, `SESSION_NOT_FOUND`, and our own
`UNAUTHORIZED` and `SESSION_ENDED`), and one WebSocket per client at `…/{id}/ws` that opens
with `connected` and then pushes every session event, the user's own messages included (echoes,
spoken by `customer` as the backend says).

The scripted agent greets when a session starts, answers each user text with `"echo: <text>"`,
raises a `PII_MASKING_ENABLED` error event for a text holding a long run of digits, and ends the
session when the user says "bye". Wonderful has no typing indicators nor read receipts, so the
script has none. Delays are parameters (tests use 0).

POSTs honour `Idempotency-Key` (our convention): a POST to the same path with the key of one
already carried out gets that first answer again and is not carried out twice (refusals are not
kept: a retry of one is tried afresh).

Test controls: `agent_says`, `end_session`, `emit_error`, `drop_connections` (optionally refusing
the next N socket connects, to force retries), `hold_connections` / `release_connections` (new
handshakes wait), `lose_answers` (the next N POSTs are carried out but answered 502, as by a
proxy that lost the answer), and what clients sent: `received` (every request, with its
idempotency key) and `sessions[id].received` (the messages a session got).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSCloseCode, web

from adapters.wonderful.encode import IDEMPOTENCY_HEADER
from adapters.wonderful.idempotency import IdempotentPosts
from gateway.demo import DemoFiles, Wiring
from gateway.model import now_at

SESSIONS = "/api/v1/chat/sessions"
GREETING = "Hi! I'm your Wonderful assistant. How can I help?"
_PII = re.compile(r"\d{9,}")
_IDENTITIES = ("phone", "email", "name")
_encode = msgspec.json.encode


@dataclass
class Received:
    """One request a client made: method, path and JSON body (None when it had none)."""

    method: str
    path: str
    body: Any
    key: str | None = None


@dataclass
class EmulatedSession:
    id: str
    participant: dict[str, Any]
    agent_id: str | None
    locale: str
    metadata: dict[str, Any]
    created_at: str = field(default_factory=now_at)
    status: str = "in-progress"
    messages: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    script: asyncio.Lock = field(default_factory=asyncio.Lock)

    def view(self) -> dict[str, Any]:
        """The `ChatSession` that start and recover return."""
        return {
            "sessionId": self.id,
            "agentId": self.agent_id,
            "status": self.status,
            "connectionState": "connected" if self.status == "in-progress" else "disconnected",
            "createdAt": self.created_at,
            "participant": self.participant,
            "messages": self.messages,
        }


class _Refused(web.HTTPException):
    """A documented refusal, raised from anywhere in a handler (aiohttp answers with it)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status_code = status
        body = _encode({"error": {"code": code, "message": message}}).decode()
        super().__init__(text=body, content_type="application/json")


class Emulator:
    """The platform. `app` is the aiohttp application; run it with `aiohttp_server` or
    `web.AppRunner`. `api_keys` are the accepted bearer credentials."""

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = ("test-key",),
        greeting: str | None = GREETING,
        greeting_delay: float = 0.0,
        reply_delay: float = 0.0,
    ) -> None:
        self.api_keys = set(api_keys)
        self.greeting = greeting
        self.greeting_delay = greeting_delay
        self.reply_delay = reply_delay
        self.sessions: dict[str, EmulatedSession] = {}
        self.received: list[Received] = []
        self._refuse = 0
        self._once = IdempotentPosts(lost=lambda: _Refused(502, "BAD_GATEWAY", "answer lost"))
        self._gate = asyncio.Event()
        self._gate.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = web.Application(middlewares=[self._auth, self._once.middleware])
        self.app.router.add_post(SESSIONS, self._start)
        self.app.router.add_get(SESSIONS + "/{sid}", self._recover)
        self.app.router.add_post(SESSIONS + "/{sid}/messages", self._message)
        self.app.router.add_post(SESSIONS + "/{sid}/end", self._end)
        self.app.router.add_post(SESSIONS + "/{sid}/forward", self._forward)
        self.app.router.add_get(SESSIONS + "/{sid}/ws", self._socket)
        self.app.on_shutdown.append(self._shutdown)

    # -- test controls ---------------------------------------------------------------------

    async def agent_says(self, session_id: str, text: str, speaker: str = "agent") -> str:
        """The agent (or `speaker`) sends a text; returns its eventId."""
        return await self._say(self.sessions[session_id], speaker, {"type": "text", "text": text})

    async def end_session(
        self, session_id: str, by: str | None = "system", reason: str = "completed"
    ) -> None:
        """The platform ends the session."""
        await self._ended(self.sessions[session_id], reason, by)

    async def emit_error(
        self, session_id: str, code: str, message: str, recoverable: bool = True
    ) -> None:
        data = {"code": code, "message": message, "recoverable": recoverable}
        await self._push(self.sessions[session_id], {"type": "error", "data": data})

    async def drop_connections(self, refuse_next: int = 0) -> None:
        """Close every live socket (a server restart); refuse the next `refuse_next` connects."""
        self._refuse = refuse_next
        for session in self.sessions.values():
            for ws in list(session.sockets):
                await ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"restart")

    def lose_answers(self, count: int = 1) -> None:
        """Carry out the next `count` POSTs but answer each with a 502 (the answer is lost)."""
        self._once.lose = count

    def hold_connections(self) -> None:
        """Keep new socket handshakes waiting (after any refusals) until `release_connections`."""
        self._gate.clear()

    def release_connections(self) -> None:
        self._gate.set()

    # -- HTTP ------------------------------------------------------------------------------

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        if (token or request.query.get("token")) not in self.api_keys:
            raise _Refused(401, "UNAUTHORIZED", "a valid API key or token is required")
        try:
            body = await request.json() if request.body_exists else None
        except ValueError:
            raise _Refused(400, "INVALID_REQUEST", "the body is not JSON") from None
        key = request.headers.get(IDEMPOTENCY_HEADER)
        self.received.append(Received(request.method, request.path, body, key))
        return await handler(request)

    async def _start(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not isinstance(body, dict) or not body.get("from") or not body.get("fromType"):
            raise _Refused(400, "MISSING_PARTICIPANT", "`from` and `fromType` are required")
        if body["fromType"] not in _IDENTITIES or body.get("toType", "name") not in _IDENTITIES:
            raise _Refused(400, "INVALID_REQUEST", "identity types are phone, email or name")
        participant = {k: body[k] for k in ("from", "fromType", "to", "toType") if k in body}
        session = EmulatedSession(
            id=str(uuid.uuid4()),
            participant=participant,
            agent_id=body.get("agentId"),
            locale=body.get("locale", "en-US"),
            metadata=body.get("metadata") or {},
        )
        self.sessions[session.id] = session
        if self.greeting is not None:
            self._script(session, self.greeting_delay, self._say_greeting)
        return web.json_response(session.view(), status=201)

    async def _recover(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._session(request).view())

    async def _message(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request, live=True)
        body = await request.json()
        kind = body.get("type") if isinstance(body, dict) else None
        if kind not in ("text", "image", "document"):
            raise _Refused(400, "INVALID_REQUEST", "type is text, image or document")
        if kind == "text" and not body.get("text"):
            raise _Refused(400, "INVALID_REQUEST", "text messages need `text`")
        if kind != "text" and not body.get("mediaUrl"):
            raise _Refused(400, "INVALID_REQUEST", f"{kind} messages need `mediaUrl`")
        session.received.append(body)
        data = {k: body[k] for k in ("type", "text", "mediaUrl", "fileName") if k in body}
        event_id = await self._say(session, "customer", data, body.get("metadata"))
        if kind == "text":
            self._script(session, self.reply_delay, self._reply, body["text"])
        timestamp = session.messages[-1]["timestamp"]
        return web.json_response({"eventId": event_id, "timestamp": timestamp})

    async def _end(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request, live=True)
        await self._ended(session, "completed", "user")
        return web.json_response({})

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request, live=True)
        body = await request.json()
        if not isinstance(body, dict) or not body.get("destination"):
            raise _Refused(400, "INVALID_REQUEST", "`destination` is required")
        await self._ended(session, "forwarded", "user")
        return web.json_response({})

    def _session(self, request: web.Request, *, live: bool = False) -> EmulatedSession:
        """The session the path names; with `live`, it must not have ended."""
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            raise _Refused(404, "SESSION_NOT_FOUND", "no such session")
        if live and session.status != "in-progress":
            raise _Refused(409, "SESSION_ENDED", "the session has ended")
        return session

    # -- WebSocket -------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if self._refuse > 0:
            self._refuse -= 1
            raise _Refused(503, "UNAVAILABLE", "try again later")
        await self._gate.wait()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session.sockets.add(ws)
        try:
            data = {"sessionId": session.id, "connectedAt": now_at()}
            await ws.send_str(_encode({"type": "connected", "data": data}).decode())
            if session.status != "in-progress":
                await ws.close()
            async for _ in ws:  # clients only ping (answered by aiohttp); anything else is noise
                pass
        finally:
            session.sockets.discard(ws)
        return ws

    async def _push(self, session: EmulatedSession, frame: dict[str, Any]) -> None:
        frame.setdefault("timestamp", now_at())
        data = _encode(frame).decode()
        for ws in list(session.sockets):
            try:
                await ws.send_str(data)
            except ConnectionError:  # a socket dying under us: its client will recover
                session.sockets.discard(ws)

    # -- the session's script --------------------------------------------------------------

    async def _say(
        self,
        session: EmulatedSession,
        speaker: str,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ) -> str:
        message: dict[str, Any] = {
            "eventId": str(uuid.uuid4()),
            "sessionId": session.id,
            "speaker": speaker,
            "locale": session.locale,
            "data": data,
            "timestamp": now_at(),
        }
        if metadata:
            message["metadata"] = metadata
        session.messages.append(message)
        await self._push(session, {"type": "message", "data": message})
        return str(message["eventId"])

    async def _ended(self, session: EmulatedSession, reason: str, by: str | None) -> None:
        if session.status != "in-progress":
            return
        session.status = "completed"
        data = {"reason": reason} | ({"endedBy": by} if by else {})
        await self._push(session, {"type": "ended", "data": data})
        for ws in list(session.sockets):
            await ws.close()

    def _script(self, session: EmulatedSession, delay: float, step: Any, *args: Any) -> None:
        """Run `step(session, *args)` after `delay`, in order with the session's other steps."""

        async def run() -> None:
            async with session.script:
                await asyncio.sleep(delay)
                if session.status == "in-progress":
                    await step(session, *args)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _say_greeting(self, session: EmulatedSession) -> None:
        await self._say(session, "agent", {"type": "text", "text": self.greeting})

    async def _reply(self, session: EmulatedSession, text: str) -> None:
        if _PII.search(text):
            data = {
                "code": "PII_MASKING_ENABLED",
                "message": "PII masking is enabled: sensitive data was masked",
                "recoverable": True,
            }
            await self._push(session, {"type": "error", "data": data})
        if text.strip().lower() == "bye":
            await self._say(session, "agent", {"type": "text", "text": "Goodbye!"})
            await self._ended(session, "completed", "agent")
            return
        await self._say(session, "agent", {"type": "text", "text": f"echo: {text}"})

    async def _shutdown(self, app: web.Application) -> None:
        self._gate.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in self.sessions.values():
            for ws in list(session.sockets):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown")


# -- demo mode (gateway/demo.py) ---------------------------------------------------------------


def demo_wiring() -> Wiring:
    """How `gateway serve --demo` runs this dialect: this emulator, and the connector's options."""
    return Wiring(
        build=lambda pace: Emulator(
            api_keys=("demo-key",), greeting_delay=0.5 * pace, reply_delay=0.8 * pace
        ),
        options={"api_key": "demo-key", "backoff": "0.2", "backoff_max": "2"},
        send_file=_send_file,
    )


async def _send_file(emulator: Emulator, native: str, files: DemoFiles) -> bool:
    session = emulator.sessions.get(native)
    if session is None:
        return False
    data = {"type": "image", "mediaUrl": files.url("diagram.svg"), "fileName": "diagram.svg"}
    await emulator._say(session, "agent", data)
    return True
