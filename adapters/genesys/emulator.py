"""A GMS Chat API v2 service on aiohttp, with a scripted agent, for tests and the demo mode.

    emulator = Emulator(service="customer-support", agent_delay=0, reply_delay=0)
    app = emulator.app          # serve it; the connector's base URL is
                                # f"{server_url}/genesys/2/chat/customer-support"

Wire (the GMS Chat API v2 docs, https://docs.genesys.com/Documentation/GMS/latest/API/ChatAPIv2,
as `docs/dialects/genesys.md` describes it): form-encoded POSTs, JSON replies.

    POST /genesys/2/chat/{service}                request chat (nickname | firstName+lastName)
        reply (the docs' sample): {"statusCode": 0, "alias", "userId", "secureKey",
        "messages": [the client's ParticipantJoined], "chatId"}: no `nextPosition`
    POST /genesys/2/chat/{service}/{chatId}/{op}  op: send, refresh, startTyping, stopTyping,
                                                  disconnect
    every op: userId, secureKey, alias, transcriptPosition (1-based)
    reply: {"statusCode", "alias", "userId", "secureKey", "chatId", "chatEnded",
            "nextPosition", "messages": [transcript entries from transcriptPosition]}; the
            transcript only when the request gives `transcriptPosition` (the docs: "Including
            this parameter enables the return of the transcript"), but a refresh's always
            (from 1 without one)
    entries: {"from": {"nickname", "participantId" (a number, as in the docs' sample),
              "type"}, "index" (from 1), "type", "text"?, "utcTime" (epoch ms)}
    requests whose body is no form (JSON, say) are refused with HTTP 415
    errors: HTTP 200 with statusCode 2 and `errors: [{code, advice}]` (widget codes: 2 missing
    parameter, 3 bad value, 50 unknown session), with `chatEnded: true` when the chat is over;
    HTTP 401 when an `apikey` header is required and wrong; statusCode 1 (retry) only when a
    test asks for it (`fail_next`).

The same chats over CometD (`POST /genesys/cometd[/<meta>]`, GMS's Chat API v2 notifications):
`emulator_cometd.CometdEndpoint` (`emulator.cometd`), which the connector's default transport
speaks; every transcript entry is pushed to the chat's CometD client, if it has one.

The scripted agent: joins when a chat starts (after `agent_delay`); answers every client message
with typing then `"echo: <text>"` (after `reply_delay`); on the text "bye" it leaves and the chat
ends. Test controls: `agent_says`, `agent_typing`, `end_session`, `fail_session` (GMS ends the
chat by error: every later reply is statusCode 2 with `chatEnded`), `drop_connections` (the
next refresh polls lose their connection; over CometD the held connects and the next requests),
`cometd.drop_links()` (a GMS restart: held connects drop, CometD clients are forgotten),
`fail_next` (statusCode 1/2 replies), `move_session` (a new `alias`; the old one is honoured
for one more request), and `received` / `sessions` to inspect what the client sent.
`wait_until(predicate)` waits on emulator state without sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from adapters.genesys.emulator_cometd import COMETD_PATH, CometdEndpoint
from gateway.demo import DemoFiles, Wiring

PREFIX = "/genesys/2/chat"
OPS = frozenset({"send", "refresh", "startTyping", "stopTyping", "disconnect"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
"""What GMS takes a request's parameters as (the docs' `Content-Type` of every request)."""


@dataclass
class Received:
    """One request the client made: its op (`requestChat` for the start), chat and form."""

    op: str
    chat_id: str | None
    form: dict[str, str]


@dataclass
class ChatSession:
    chat_id: str
    user_id: str
    secure_key: str
    alias: str
    nickname: str
    form: dict[str, str]
    transcript: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    failed: tuple[int, int] | None = None  # statusCode and error code (`fail_session`)
    stale_alias: str | None = None  # honoured for one request after `move_session`
    listener: str | None = None  # the CometD client GMS pushes this chat to
    agent_joined: asyncio.Event = field(default_factory=asyncio.Event)

    def client(self) -> dict[str, Any]:
        return {"nickname": self.nickname, "participantId": 1, "type": "Client"}


class Emulator:
    """A GMS chat service. Timing is configurable (tests use 0); all state is in memory."""

    def __init__(
        self,
        *,
        service: str = "customer-support",
        api_key: str | None = None,
        agent_name: str = "Anna",
        agent_delay: float = 0.0,
        reply_delay: float = 0.0,
        send_returns_transcript: bool = True,
        connect_timeout_s: float = 30.0,
    ) -> None:
        self.service = service
        self.api_key = api_key
        self.agent_name = agent_name
        self.agent_delay = agent_delay
        self.reply_delay = reply_delay
        self.send_returns_transcript = send_returns_transcript
        self.sessions: dict[str, ChatSession] = {}
        self.by_key: dict[str, ChatSession] = {}  # by secureKey, as CometD names a chat
        self.received: list[Received] = []
        self._drops = 0
        self._failures: list[tuple[int, int]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._aliases = itertools.count(117)
        self.app = web.Application()
        self.app.router.add_post(f"{PREFIX}/{{service}}", self._request_chat)
        self.app.router.add_post(f"{PREFIX}/{{service}}/{{chat_id}}/{{op}}", self._chat_op)
        self.cometd = CometdEndpoint(self, connect_timeout_s)
        self.app.router.add_post(COMETD_PATH, self.cometd.handle)
        self.app.router.add_post(f"{COMETD_PATH}/{{meta}}", self.cometd.handle)
        self.app.on_shutdown.append(self.cometd.shutdown)
        self.app.on_cleanup.append(self._cleanup)

    @property
    def path(self) -> str:
        """The service path; a connector's base URL is the server URL plus this."""
        return f"{PREFIX}/{self.service}"

    # --- test controls ----------------------------------------------------------------------

    async def agent_says(self, chat_id: str, text: str) -> None:
        self._add(self.sessions[chat_id], "Message", self._agent(), text=text)

    async def agent_typing(self, chat_id: str, active: bool = True) -> None:
        kind = "TypingStarted" if active else "TypingStopped"
        self._add(self.sessions[chat_id], kind, self._agent())

    async def end_session(self, chat_id: str) -> None:
        """The agent leaves and the chat ends."""
        session = self.sessions[chat_id]
        session.ended = True  # before the entry: its notification says `chatEnded`
        self._add(session, "ParticipantLeft", self._agent())

    def fail_session(self, chat_id: str, code: int = 52, status_code: int = 2) -> None:
        """GMS ends the chat by error `code`: every later request of it is answered
        `status_code` (2, fatal, as GMS does; 1 to see a client not retry an ended chat) with
        `chatEnded: true` (and the transcript)."""
        session = self.sessions[chat_id]
        session.ended, session.failed = True, (status_code, code)
        self.cometd.push(session, error=(status_code, code, "chat ended by error"))
        self._changed.set()

    def drop_connections(self, count: int = 1) -> None:
        """The next `count` refresh polls lose their connection (the client sees it drop);
        over CometD, every held connect drops now and the next CometD requests after it, up to
        `count` drops in all."""
        self._drops += count
        self._drops -= self.cometd.drop_held(self._drops)

    def take_drop(self) -> bool:
        """Whether the request at hand is one `drop_connections` asked to drop."""
        if not self._drops:
            return False
        self._drops -= 1
        return True

    def fail_next(self, count: int = 1, *, status_code: int = 1, code: int = 100) -> None:
        """The next `count` requests into a known chat (right userId, secureKey and alias)
        answer `statusCode` with error `code` and the chat's envelope, doing nothing."""
        self._failures += [(status_code, code)] * count

    def move_session(self, chat_id: str) -> str:
        """Give the chat a new `alias` (as GMS does when another node takes it over)."""
        session = self.sessions[chat_id]
        session.stale_alias, session.alias = session.alias, str(next(self._aliases))
        return session.alias

    def ops(self, chat_id: str, op: str) -> list[dict[str, str]]:
        """The forms of every `op` request the client made in `chat_id`."""
        return [r.form for r in self.received if r.chat_id == chat_id and r.op == op]

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds (re-checked on every state change); callers bound
        the wait with `asyncio.timeout`."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    # --- handlers ---------------------------------------------------------------------------

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if self.api_key is not None and request.headers.get("apikey") != self.api_key:
            body = {"statusCode": 2, "errors": [{"code": 101, "advice": "login failed"}]}
            return web.json_response(body, status=401)
        return None

    async def _request_chat(self, request: web.Request) -> web.Response:
        if request.content_type not in FORM_TYPES:
            return _not_a_form(request)
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.record(Received("requestChat", None, form))
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if request.match_info["service"] != self.service:
            return _error(2, 3, f"unknown service {request.match_info['service']!r}")
        session = self.new_session(form)
        if isinstance(session, str):
            return _error(2, 2, session)
        reply = self.reply(session, 1)
        del reply["chatEnded"], reply["nextPosition"]  # as the docs' sample reply
        return web.json_response(reply)

    def new_session(self, form: dict[str, str], listener: str | None = None) -> ChatSession | str:
        """A requested chat (`listener`: the CometD client its notifications go to), or why
        the request is refused."""
        nickname = form.get("nickname") or " ".join(
            filter(None, (form.get("firstName"), form.get("lastName")))
        )
        if not nickname:
            return "nickname or firstName and lastName are mandatory"
        session = ChatSession(
            chat_id=secrets.token_hex(8).upper(),
            user_id=secrets.token_hex(8).upper(),
            secure_key=secrets.token_hex(8),
            alias=str(next(self._aliases)),
            nickname=nickname,
            form=form,
            listener=listener,
        )
        self.sessions[session.chat_id] = session
        self.by_key[session.secure_key] = session
        self._add(session, "ParticipantJoined", session.client())
        self._spawn(self._agent_joins(session))
        return session

    async def _chat_op(self, request: web.Request) -> web.Response:
        if request.content_type not in FORM_TYPES:
            return _not_a_form(request)
        form = {k: str(v) for k, v in (await request.post()).items()}
        chat_id, op = request.match_info["chat_id"], request.match_info["op"]
        self.record(Received(op, chat_id, form))
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if op == "refresh" and self.take_drop():
            assert request.transport is not None
            request.transport.close()  # the poll's connection drops mid-request
            return web.Response(status=503)
        session = self.sessions.get(chat_id)
        if op not in OPS:
            return _error(2, 1, f"unknown command {op!r}")
        if session is None:
            return _error(2, 50, "chat session not found")
        if form.get("secureKey") != session.secure_key or form.get("userId") != session.user_id:
            return _error(2, 3, "bad userId or secureKey")
        alias = form.get("alias")
        if alias and alias != session.alias:
            if alias != session.stale_alias:
                return _error(2, 3, f"alias {alias} does not serve this chat")
            session.stale_alias = None
        if self._failures:  # a reply of the chat (its current `alias`), which did nothing
            status_code, code = self._failures.pop(0)
            return _error(status_code, code, "failure requested by the test", session)
        given = form.get("transcriptPosition")
        if given is None and op == "refresh":
            given = "1"
        try:
            position = None if given is None else max(1, int(given))
        except ValueError:
            return _error(2, 3, "transcriptPosition must be a number")
        if session.failed is not None:
            status_code, code = session.failed
            return _error(status_code, code, "chat ended by error", session, position)
        if session.ended and op != "refresh":
            return _error(2, 50, "chat session has ended", session, position)
        return await self._apply(session, op, form, position)

    async def _apply(
        self, session: ChatSession, op: str, form: dict[str, str], position: int | None
    ) -> web.Response:
        refused = self.act(session, op, form)
        if refused is not None:
            return _error(2, 2, refused)
        if op == "send" and not self.send_returns_transcript:
            return web.json_response(self.reply(session, None))
        return web.json_response(self.reply(session, position))

    def act(self, session: ChatSession, op: str, form: dict[str, str]) -> str | None:
        """Apply a chat `op` (send, startTyping, stopTyping, disconnect; refresh does
        nothing); returns why a mandatory parameter refuses it, else None."""
        if op == "send":
            text = form.get("message")
            if not text:
                return "message is mandatory"
            kind = "PushUrl" if form.get("messageType") == "url" else "Message"
            self._add(session, kind, session.client(), text=text)
            self._spawn(self._agent_replies(session, text))
        elif op in ("startTyping", "stopTyping"):
            kind = "TypingStarted" if op == "startTyping" else "TypingStopped"
            self._add(session, kind, session.client(), text=form.get("message") or None)
        elif op == "disconnect":
            session.ended = True  # before the entry: its notification says `chatEnded`
            self._add(session, "ParticipantLeft", session.client())
        return None

    # --- the scripted agent -----------------------------------------------------------------

    async def _agent_joins(self, session: ChatSession) -> None:
        await asyncio.sleep(self.agent_delay)
        if not session.ended:
            self._add(session, "ParticipantJoined", self._agent())
            session.agent_joined.set()

    async def _agent_replies(self, session: ChatSession, text: str) -> None:
        await session.agent_joined.wait()
        if session.ended:
            return
        self._add(session, "TypingStarted", self._agent())
        await asyncio.sleep(self.reply_delay)
        if session.ended:
            return
        if text.strip().lower() == "bye":
            await self.end_session(session.chat_id)
        else:
            self._add(session, "Message", self._agent(), text=f"echo: {text}")

    # --- helpers ----------------------------------------------------------------------------

    def _agent(self) -> dict[str, Any]:
        return {"nickname": self.agent_name, "participantId": 2, "type": "Agent"}

    def _add(
        self, session: ChatSession, kind: str, who: dict[str, Any], text: str | None = None
    ) -> None:
        entry: dict[str, Any] = {
            "from": who,
            "index": len(session.transcript) + 1,
            "type": kind,
            "utcTime": int(time.time() * 1000),
        }
        if text is not None:
            entry["text"] = text
        session.transcript.append(entry)
        self.cometd.push(session, [entry])
        self._changed.set()

    def record(self, received: Received) -> None:
        self.received.append(received)
        self._changed.set()

    def reply(self, session: ChatSession, position: int | None) -> dict[str, Any]:
        """A statusCode 0 reply; its transcript from `position` (none when it is None)."""
        return {
            "statusCode": 0,
            "alias": session.alias,
            "userId": session.user_id,
            "secureKey": session.secure_key,
            "chatId": session.chat_id,
            "chatEnded": session.ended,
            "nextPosition": len(session.transcript) + 1,
            "messages": [] if position is None else session.transcript[position - 1 :],
        }

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cleanup(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _not_a_form(request: web.Request) -> web.Response:
    """A body that is no form: GMS answers 415. The GMS Chat API page of 8.5.0
    (https://docs.genesys.com/Documentation:GMS:API:ChatAPI:8.5.0, "Structures") says so of
    its requests ("accepted in 'application/x-www-form-urlencoded' or 'multipart/form-data'
    formats ... a 415 (Unsupported Media Type) error will occur"); we take v2 to do the same."""
    return web.Response(status=415, text=f"unsupported media type {request.content_type!r}")


def _error(
    status_code: int,
    code: int,
    advice: str,
    session: ChatSession | None = None,
    position: int | None = None,
) -> web.Response:
    body: dict[str, Any] = {"statusCode": status_code, "errors": [{"code": code, "advice": advice}]}
    if session is not None:
        body.update(
            chatId=session.chat_id,
            alias=session.alias,
            chatEnded=session.ended,
            nextPosition=len(session.transcript) + 1,
            messages=[] if position is None else session.transcript[position - 1 :],
        )
    return web.json_response(body)


# -- demo mode (gateway/demo.py) ---------------------------------------------------------------


def demo_wiring() -> Wiring:
    """How `gateway serve --demo` runs this dialect: this emulator, and the connector's options."""
    return Wiring(
        build=lambda pace: Emulator(service="demo", agent_delay=0.6 * pace, reply_delay=0.8 * pace),
        path="/genesys/2/chat/demo",
        options={"poll_interval_s": "0.5", "backoff_s": "0.2", "backoff_max_s": "2"},
        send_file=_send_file,
    )


async def _send_file(emulator: Emulator, native: str, files: DemoFiles) -> bool:
    # GMS chat has no files: agents push a URL (a `PushUrl` transcript entry).
    session = emulator.sessions.get(native)
    if session is None:
        return False
    emulator._add(session, "PushUrl", emulator._agent(), text=files.url("receipt.txt"))
    return True
