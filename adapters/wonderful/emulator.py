"""An in-process Wonderful platform, for the tests and the demo mode (`gateway serve --demo`).

It serves the platform's chat WebSocket as the public integration notes give it (see
`adapters.wonderful.native`): `GET /api/v1/agents/{agentId}/chat?commType=chat`, authenticated
by the subprotocol pair `token, <token>` / `apikey, <key>` (the server answers with the scheme,
as a browser requires) or by `X-API-Key` / `Authorization: Bearer` headers. It opens with
`{"type": "start", "event": "start", "communication_id"}`, takes `init` (the session metadata)
and `message` (a user text; a frame that is not JSON or has no `type` is plain text, as the
notes say), and streams every text line as a `transcript` (the customer's own lines come back
with speaker `customer`), `turn_ended` after each of the agent's turns, and
`communication_ended` when the session ends. Files have no transcript form: a file the agent
sends is in the session's history alone, and its turn ends with `turn_ended`.

Ours, not public: the rejoin of a running session (`?communicationId=<id>` on the chat URL:
answered with the same `start`, or `start` + `communication_ended` when it is over), and REST
under `/api/v1/chat/sessions`: `GET …/{id}` (the seed's `ChatSession`, its `messages` the seed's
`Message`s with the transcript lines' ids and times), `POST …/{id}/messages` (the seed's
`ChatMessage`, answered `{eventId, timestamp}`), `POST …/{id}/end`, `POST …/{id}/forward`;
errors `{"error": {"code", "message"}}` with the seed's codes and our `UNAUTHORIZED` and
`SESSION_ENDED`. POSTs honour `Idempotency-Key` (ours, `IdempotentPosts`).

The scripted agent greets when a session starts, answers each user text with `"echo: <text>"`
and ends the session when the user says "bye". Wonderful has no typing indicators nor read
receipts, so the script has none. Delays are parameters (tests use 0); with `mask_pii`, long
runs of digits in the user's lines are masked, in the echo and the history alike.

Test controls: `agent_says`, `agent_sends`, `send_raw`, `end_session`, `drop_connections`
(optionally refusing the next N socket connects, to force retries), `hold_connections` /
`release_connections` (new handshakes wait), `lose_answers` (the next N POSTs are carried out
but answered 502, as by a proxy that lost the answer), and what clients sent: `received` (every
HTTP request, with its idempotency key and auth) and, per session, `metadata` (from `init`) and
`received` (the user's messages, as sent).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from adapters.wonderful.encode import CHAT_PATH, IDEMPOTENCY_HEADER, SESSIONS_PATH
from gateway.codec import to_at
from gateway.demo import DemoFiles, Wiring

SESSIONS = SESSIONS_PATH
REJOIN_PARAM = "communicationId"
GREETING = "Hi! I'm your Wonderful assistant. How can I help?"
_SCHEMES = ("token", "apikey")  # the subprotocol pair's first element
_PII = re.compile(r"\d{9,}")
_encode = msgspec.json.encode


@dataclass
class Received:
    """One HTTP request a client made: method, path, JSON body (None when it had none), its
    idempotency key and how it authenticated (`x-api-key`, `bearer`, `token`, `apikey`)."""

    method: str
    path: str
    body: Any
    key: str | None = None
    auth: str | None = None


@dataclass
class EmulatedSession:
    id: str
    agent_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: to_at(None))
    status: str = "in-progress"
    messages: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    script: asyncio.Lock = field(default_factory=asyncio.Lock)

    def view(self) -> dict[str, Any]:
        """The `ChatSession` that recover returns; the participant is what `init` said."""
        participant = {"from": str(self.metadata.get("from", "")), "fromType": "name"}
        if self.metadata.get("from_type") in ("phone", "email", "name"):
            participant["fromType"] = self.metadata["from_type"]
        return {
            "sessionId": self.id,
            "agentId": self.agent_id,
            "status": self.status,
            "connectionState": "connected" if self.sockets else "disconnected",
            "createdAt": self.created_at,
            "participant": participant,
            "messages": self.messages,
        }


class _Refused(web.HTTPException):
    """A documented refusal, raised from anywhere in a handler (aiohttp answers with it)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status_code = status
        body = _encode({"error": {"code": code, "message": message}}).decode()
        super().__init__(text=body, content_type="application/json")


# -- Idempotency-Key (our convention, see `adapters.wonderful`) -------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Answer:
    """A POST's answer as kept for its key."""

    status: int
    body: bytes
    content_type: str


class IdempotentPosts:
    """A POST to the same path with the key of one already carried out gets that first answer
    again and is not carried out twice; a repeat arriving while the first runs waits for its
    answer. Refusals (HTTP exceptions) are not kept: a retry of a refused POST is tried afresh.
    `lose` makes the next POSTs be carried out but answered with the `lost()` error, as by a
    proxy that lost the answer: what a client retries, and what must not be delivered twice."""

    def __init__(self, lost: Callable[[], Exception]) -> None:
        self.lost = lost
        self.lose = 0
        self._answers: dict[tuple[str, str], asyncio.Future[Answer | None]] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        slot = (request.path, key) if key else None
        answer = None
        if slot is not None and slot in self._answers:
            answer = await asyncio.shield(self._answers[slot])  # None: the first was refused
        if answer is None:
            answer = await self._carry_out(request, handler, slot)
        if self.lose > 0:
            self.lose -= 1
            raise self.lost()
        return web.Response(
            status=answer.status, body=answer.body, content_type=answer.content_type
        )

    async def _carry_out(
        self, request: web.Request, handler: Handler, slot: tuple[str, str] | None
    ) -> Answer:
        future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        if slot is not None:
            self._answers[slot] = future
        try:
            response = await handler(request)
        except BaseException:
            future.set_result(None)
            if slot is not None:
                del self._answers[slot]
            raise
        assert isinstance(response, web.Response)
        assert isinstance(response.body, bytes)
        answer = Answer(response.status, response.body, response.content_type)
        future.set_result(answer)
        return answer


class Emulator:
    """The platform. `app` is the aiohttp application; run it with `aiohttp_server` or
    `web.AppRunner`. `api_keys` are the accepted credentials (API keys and tokens alike)."""

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = ("test-key",),
        greeting: str | None = GREETING,
        greeting_delay: float = 0.0,
        reply_delay: float = 0.0,
        mask_pii: bool = False,
    ) -> None:
        self.api_keys = set(api_keys)
        self.mask_pii = mask_pii
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
        self.app.router.add_get(CHAT_PATH, self._chat)
        self.app.router.add_get(SESSIONS + "/{sid}", self._recover)
        self.app.router.add_post(SESSIONS + "/{sid}/messages", self._message)
        self.app.router.add_post(SESSIONS + "/{sid}/end", self._end)
        self.app.router.add_post(SESSIONS + "/{sid}/forward", self._forward)
        self.app.on_shutdown.append(self._shutdown)

    # -- test controls ---------------------------------------------------------------------

    async def agent_says(self, session_id: str, text: str, speaker: str = "agent") -> str:
        """The agent (or `speaker`) says `text`, a turn of its own; returns the line's id."""
        return await self.agent_sends(session_id, {"type": "text", "text": text}, speaker)

    async def agent_sends(
        self, session_id: str, data: dict[str, Any], speaker: str = "agent"
    ) -> str:
        """The agent (or `speaker`) sends `data` (the seed's `MessageData`), then its turn
        ends; returns the line's id."""
        session = self.sessions[session_id]
        line = await self._say(session, speaker, data)
        await self._push(session, {"type": "turn_ended"})
        return line

    async def send_raw(self, session_id: str, text: str) -> None:
        """Send `text` as it is on the session's sockets (what no platform should send)."""
        session = self.sessions[session_id]
        for ws in list(session.sockets):
            await ws.send_str(text)

    async def end_session(self, session_id: str, reason: str = "completed") -> None:
        """The platform ends the session (`reason` `error`: it failed)."""
        await self._ended(self.sessions[session_id], reason)

    async def drop_connections(
        self, refuse_next: int = 0, code: int = WSCloseCode.SERVICE_RESTART
    ) -> None:
        """Close every live socket (a server restart); refuse the next `refuse_next` connects.
        `code` 1000 is, in the notes, a session's normal end."""
        self._refuse = refuse_next
        for session in self.sessions.values():
            for ws in list(session.sockets):
                await ws.close(code=code, message=b"restart")

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
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        how, credential = _credential(request)
        if credential not in self.api_keys:
            raise _Refused(401, "UNAUTHORIZED", "a valid API key or token is required")
        try:
            body = await request.json() if request.body_exists else None
        except ValueError:
            raise _Refused(400, "INVALID_REQUEST", "the body is not JSON") from None
        key = request.headers.get(IDEMPOTENCY_HEADER)
        self.received.append(Received(request.method, request.path, body, key, how))
        return await handler(request)

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
        line = await self._say(session, "customer", data, body.get("metadata"))
        if kind == "text":
            self._script(session, self.reply_delay, self._reply, body["text"])
        timestamp = session.messages[-1]["timestamp"]
        return web.json_response({"eventId": line, "timestamp": timestamp})

    async def _end(self, request: web.Request) -> web.StreamResponse:
        await self._ended(self._session(request, live=True), "completed")
        return web.json_response({})

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request, live=True)
        body = await request.json()
        if not isinstance(body, dict) or not body.get("destination"):
            raise _Refused(400, "INVALID_REQUEST", "`destination` is required")
        await self._ended(session, "forwarded")
        return web.json_response({})

    def _session(self, request: web.Request, *, live: bool = False) -> EmulatedSession:
        """The session the path names; with `live`, it must not have ended."""
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            raise _Refused(404, "SESSION_NOT_FOUND", "no such session")
        if live and session.status != "in-progress":
            raise _Refused(409, "SESSION_ENDED", "the session has ended")
        return session

    # -- the chat WebSocket ----------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("commType", "chat") != "chat":
            raise _Refused(400, "INVALID_REQUEST", "this platform emulates commType=chat only")
        rejoin = request.query.get(REJOIN_PARAM)
        session = None
        if rejoin is not None:
            session = self.sessions.get(rejoin)
            if session is None:
                raise _Refused(404, "SESSION_NOT_FOUND", "no such session")
        if self._refuse > 0:
            self._refuse -= 1
            raise _Refused(503, "UNAVAILABLE", "try again later")
        await self._gate.wait()
        how, _ = _credential(request)
        ws = web.WebSocketResponse(protocols=(how,) if how in _SCHEMES else ())
        await ws.prepare(request)
        new = session is None
        if session is None:
            session = EmulatedSession(id=str(uuid.uuid4()), agent_id=request.match_info["agent_id"])
            self.sessions[session.id] = session
        session.sockets.add(ws)
        try:
            start = {"type": "start", "event": "start", "communication_id": session.id}
            await ws.send_str(_encode(start).decode())
            if new and self.greeting is not None:
                self._script(session, self.greeting_delay, self._greet)
            if session.status != "in-progress":
                await ws.send_str(_encode({"type": "communication_ended"}).decode())
                await ws.close()
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    await self._client_frame(session, frame.data)
        finally:
            session.sockets.discard(ws)
        return ws

    async def _client_frame(self, session: EmulatedSession, data: str) -> None:
        """`init`, `message`, or plain text (not JSON, or JSON without `type`)."""
        try:
            frame = msgspec.json.decode(data)
        except msgspec.DecodeError:
            frame = None
        if not isinstance(frame, dict) or "type" not in frame:
            text: Any = data
        elif frame["type"] == "init" and isinstance(frame.get("metadata"), dict):
            session.metadata.update(frame["metadata"])
            return
        elif frame["type"] == "message":
            text = frame.get("text")
        else:
            return  # nothing the platform acts on
        if not isinstance(text, str) or not text or session.status != "in-progress":
            return
        session.received.append({"type": "message", "text": text})
        if self.mask_pii:  # what the seed's `PII_MASKING_ENABLED` warns of: the line is masked
            text = _PII.sub("[redacted]", text)
        await self._say(session, "customer", {"type": "text", "text": text})
        self._script(session, self.reply_delay, self._reply, text)

    async def _push(self, session: EmulatedSession, frame: dict[str, Any]) -> None:
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
        """Add a line to the history (the seed's `Message`) and stream it as a `transcript`
        when it is text (a file has no transcript form); returns its id."""
        line, created = str(uuid.uuid4()), time.time_ns() // 1_000_000
        message: dict[str, Any] = {
            "eventId": line,
            "sessionId": session.id,
            "speaker": speaker,
            "data": data,
            "timestamp": to_at(created),
        }
        if session.metadata.get("locale"):
            message["locale"] = session.metadata["locale"]
        if metadata:
            message["metadata"] = metadata
        session.messages.append(message)
        if data.get("type") == "text":
            transcript = {
                "id": line,
                "communication_id": session.id,
                "speaker": speaker,
                "text": data["text"],
                "created_at": created,
                "start_time": created,
                "end_time": created,
                "tool_details": None,
                "is_eot": False,
            }
            await self._push(session, {"type": "transcript", "data": transcript})
        return line

    async def _ended(self, session: EmulatedSession, reason: str) -> None:
        if session.status != "in-progress":
            return
        session.status = "failed" if reason == "error" else "completed"
        await self._push(session, {"type": "communication_ended"})
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

    async def _greet(self, session: EmulatedSession) -> None:
        if self.greeting is not None:
            await self.agent_says(session.id, self.greeting)

    async def _reply(self, session: EmulatedSession, text: str) -> None:
        if text.strip().lower() == "bye":
            await self._say(session, "agent", {"type": "text", "text": "Goodbye!"})
            await self._ended(session, "completed")
            return
        await self.agent_says(session.id, f"echo: {text}")

    async def _shutdown(self, app: web.Application) -> None:
        self._gate.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in self.sessions.values():
            for ws in list(session.sockets):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown")


def _credential(request: web.Request) -> tuple[str | None, str | None]:
    """`(how, credential)` a request authenticates with: the `X-API-Key` or bearer header, or
    the WebSocket subprotocol pair `token|apikey, <credential>`."""
    if key := request.headers.get("X-API-Key"):
        return "x-api-key", key
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return "bearer", header.removeprefix("Bearer ")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(offered) == 2 and offered[0] in _SCHEMES:
        return offered[0], offered[1]
    return None, None


# -- demo mode (gateway/demo.py) ---------------------------------------------------------------


def demo_wiring() -> Wiring:
    """How `gateway serve --demo` runs this dialect: this emulator, and the connector's options."""
    return Wiring(
        build=lambda pace: Emulator(
            api_keys=("demo-key",), greeting_delay=0.5 * pace, reply_delay=0.8 * pace
        ),
        options={
            "api_key": "demo-key",
            "agent_id": "demo-agent",
            "backoff_s": "0.2",
            "backoff_max_s": "2",
        },
        send_file=_send_file,
    )


async def _send_file(emulator: Emulator, native: str, files: DemoFiles) -> bool:
    if native not in emulator.sessions:
        return False
    data = {"type": "image", "mediaUrl": files.url("diagram.svg"), "fileName": "diagram.svg"}
    await emulator.agent_sends(native, data)
    return True
