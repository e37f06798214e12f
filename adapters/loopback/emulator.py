"""An emulator of the loopback platform (our own invention, for tests and demos).

HTTP API (JSON), every route but `POST /chats` under `/chats/{chat}`:

    POST /chats {"from", "name"?}            → {"chat_id"}    the agent joins
    GET  …/frames?after=N&wait=S             → {"frames": [...], "next": M}  long poll
    POST …/messages {"text", "client_id"?}   → {"frame": <the user's message frame>}
    POST …/typing {"active"}                 → {}
    POST …/end                               → {}             the user ends the chat
    any route of an unknown chat             → 404 {"error": "chat not found"}

Frames are the loopback native frames; message ids are `m<index>`, the index in the chat's
transcript. The user's own messages appear in the transcript too (the echo). The scripted
agent answers each user text with typing, then `echo: <text>`, and ends the chat on "bye".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from typing import Any

from aiohttp import web

from gateway.demo import DemoFiles, Wiring


class _Chat:
    def __init__(self, chat_id: str) -> None:
        self.id = chat_id
        self.frames: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.ended = False
        self.received: list[dict[str, Any]] = []

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        frame = {"kind": kind, "chat": self.id, "ts": round(time.time(), 3), **fields}
        if kind == "message":
            frame["id"] = f"m{len(self.frames) + 1}"
        self.frames.append(frame)
        self.changed.set()
        self.changed = asyncio.Event()
        return frame


AGENT = {"role": "agent", "id": "agent-1", "name": "Ada"}


class Emulator:
    """The loopback platform. `reply_delay` paces the scripted agent (0 in tests)."""

    def __init__(self, *, reply_delay: float = 0.0, script: bool = True) -> None:
        self.reply_delay = reply_delay
        self.script = script
        self.chats: dict[str, _Chat] = {}
        self.failures = 0
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.faults: list[str] = []
        self.slow_s = 1.0
        self.create_delay_s = 0.0
        """How long a new chat takes to be answered (a platform slow or hung at the start)."""
        self.refuse_ends = 0
        """How many of the next `POST …/end` to answer 503 (a platform that blinks)."""
        self.app = web.Application(middlewares=[self._misbehave])
        self.app.router.add_post("/chats", self._create)
        self.app.router.add_get("/chats/{chat}/frames", self._frames)
        self.app.router.add_post("/chats/{chat}/messages", self._message)
        self.app.router.add_post("/chats/{chat}/typing", self._typing)
        self.app.router.add_post("/chats/{chat}/end", self._end)
        self.app.on_cleanup.append(self._cleanup)

    # -- controls for tests and the demo ------------------------------------------------------

    def agent_says(self, chat_id: str, text: str) -> dict[str, Any]:
        return self.chats[chat_id].add("message", text=text, **{"from": AGENT})

    def send_raw(self, chat_id: str, frame: dict[str, Any]) -> None:
        """Test control: the platform sends `frame` as it is (a malformed one, say)."""
        chat = self.chats[chat_id]
        chat.frames.append(frame)
        chat.changed.set()
        chat.changed = asyncio.Event()

    def end_session(self, chat_id: str) -> None:
        chat = self.chats[chat_id]
        chat.ended = True
        chat.add("ended", by="agent")

    def fail_next(self, count: int) -> None:
        """Answer the next `count` requests with 503, as a platform outage would."""
        self.failures = count

    def misbehave(self, *faults: str, slow_s: float = 1.0) -> None:
        """Answer the next polls badly, one fault each: `garbage` (200 with HTML), `slow`
        (answer after `slow_s`), `silent` (never answer), `error` (503)."""
        self.faults.extend(faults)
        self.slow_s = slow_s

    @web.middleware
    async def _misbehave(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self.faults or not request.path.endswith("/frames"):
            return await handler(request)  # type: ignore[no-any-return]
        fault = self.faults.pop(0)
        if fault == "garbage":
            return web.Response(text="<html>upstream error</html>", content_type="text/html")
        if fault == "error":
            return web.json_response({"error": "try again"}, status=503)
        await asyncio.sleep(3600 if fault == "silent" else self.slow_s)
        return await handler(request)  # type: ignore[no-any-return]

    def received(self, chat_id: str) -> list[dict[str, Any]]:
        """What the client sent to `chat_id` (messages and typing), in order."""
        return self.chats[chat_id].received

    # -- routes -----------------------------------------------------------------------------

    def _chat(self, request: web.Request) -> _Chat:
        if self.failures > 0:
            self.failures -= 1
            raise web.HTTPServiceUnavailable(
                text='{"error": "try again"}', content_type="application/json"
            )
        chat = self.chats.get(request.match_info["chat"])
        if chat is None:
            raise web.HTTPNotFound(
                text='{"error": "chat not found"}', content_type="application/json"
            )
        return chat

    async def _create(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.create_delay_s)
        body = await request.json()
        if not isinstance(body, dict) or not body.get("from"):
            return web.json_response({"error": "`from` is required"}, status=400)
        chat = _Chat(f"c{next(self._ids)}-{secrets.token_hex(4)}")  # unique, as a platform's are
        self.chats[chat.id] = chat
        if self.script:
            chat.add("joined", **{"from": AGENT})
        return web.json_response({"chat_id": chat.id})

    async def _frames(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        after = int(request.query.get("after", "0"))
        wait = min(float(request.query.get("wait", "0")), 30.0)
        if len(chat.frames) <= after and wait > 0 and not chat.ended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(chat.changed.wait(), wait)
        frames = chat.frames[after:]
        return web.json_response({"frames": frames, "next": after + len(frames)})

    async def _message(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        body = await request.json()
        if chat.ended:
            return web.json_response({"error": "chat ended"}, status=409)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return web.json_response({"error": "`text` is required"}, status=400)
        chat.received.append({"type": "message", **body})
        frame = chat.add("message", text=body["text"], **{"from": {"role": "user", "id": "me"}})
        if self.script:
            self._spawn(self._answer(chat, body["text"]))
        return web.json_response({"frame": frame})

    async def _typing(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        body = await request.json()
        chat.received.append({"type": "typing", **body})
        return web.json_response({})

    async def _end(self, request: web.Request) -> web.Response:
        chat = self._chat(request)
        if self.refuse_ends > 0:
            self.refuse_ends -= 1
            return web.json_response({"error": "try again"}, status=503)
        if not chat.ended:
            chat.ended = True
            chat.add("ended", by="user")
        return web.json_response({})

    async def _answer(self, chat: _Chat, text: str) -> None:
        await asyncio.sleep(self.reply_delay)
        chat.add("typing", active=True, **{"from": AGENT})
        await asyncio.sleep(self.reply_delay)
        chat.add("typing", active=False, **{"from": AGENT})
        if text.strip().lower() == "bye":
            self.end_session(chat.id)
        else:
            self.agent_says(chat.id, f"echo: {text}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cleanup(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()


# -- demo mode (gateway/demo.py) ---------------------------------------------------------------


def demo_wiring() -> Wiring:
    """How `gateway serve --demo` runs this dialect: this emulator, and the connector's options."""
    return Wiring(
        build=lambda pace: Emulator(reply_delay=0.4 * pace),
        options={"poll_wait": "10", "backoff_s": "0.2", "backoff_max_s": "2"},
        send_file=_send_file,
    )


async def _send_file(emulator: Emulator, native: str, files: DemoFiles) -> bool:
    if native not in emulator.chats:  # text only
        return False
    emulator.agent_says(native, f"Your receipt: {files.url('receipt.txt')}")
    return True
