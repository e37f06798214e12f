"""An in-process emulator of the visitor widget platform, for tests and `gateway serve --demo`.

    emulator = Emulator(key="demo", agent_delay=0, typing_delay=0, reply_delay=0)
    app = emulator.app        # GET /socket/?EIO=3&transport=websocket, POST /upload/{token},
                              # GET /files/{id}

It speaks Socket.IO v2 (`sio.ServerSocket`) and the wire of the vendor's own SDK
(smartsupp/smartsupp-sdk-websocket: `src/visitor.ts` for what a client emits, `src/events.ts`
and `src/types.ts` for what the server sends, `test/support/server.ts` for its answers):
`visitor.connect` (checks the account `key`; `id` is required, null for a new visitor, else the
visitor to resume, whose identity fields the emit updates) acks the connected data the client
turns into `initialized`; every other emit before it is refused with the documented error ack
`{"message": "Connection not initialized", "type": "auth_error", "event", "code": 403}`;
`chat.message` / `chat.upload_finish` ack the Message and echo it later as
`chat.message_received`; `chat.typing` and `chat.read` are never acked (the SDK emits them
without a callback: a client that waits for their answer waits in vain); payload-less
commands (`chat.read`, `chat.close`, `chat.upload_init`) take `null`; `chat.read` is broadcast
as `chat.contact_read` (tabs stay in sync). Event rows name their agent in `content.data`, with
the row's `agentId` null. Our inventions (not public): the 400/401/404/409 error acks, the
upload endpoints' paths, message ids.

A scripted agent joins every new chat, answers each visitor text with typing and then
`"echo: <text>"`, and ends the chat when the visitor says "bye". Test controls: `agent_says`,
`end_session`, `assign_agent`, `unassign_agent`, `rate_chat`, `delete_chat`,
`drop_connections`, `set_account_status`, `server_error`, `send_raw`, `refuse_connections`;
`lazy_chat=True` creates a visitor's chat with its first message instead of at connect;
what clients sent is in `received` (and as it came, with its ack request, in `packets`),
per-chat state in `chats`.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, WSCloseCode, web

from adapters.visitor_widget.sio import ServerSocket
from gateway.demo import DemoFiles, Wiring
from gateway.model import now_at

AGENT: dict[str, Any] = {
    "id": "agent-1",
    "status": "online",
    "groups": [],
    "nickname": "Emma",
    "fullname": "Emma Emulator",
    "description": "",
    "avatar": None,
}
"""The scripted agent, as the SDK's `Agent` type has it."""
LEAD = {**AGENT, "id": "agent-2", "nickname": "Lea", "fullname": "Lea Lead"}
"""The agent who (un)assigns others (`assign_agent`)."""


@dataclass
class ChatState:
    id: str
    visitor_id: str
    status: str = "pending"
    messages: list[dict[str, Any]] = field(default_factory=list)
    sockets: set[ServerSocket] = field(default_factory=set)
    typing: dict[str, Any] | None = None
    last_read_at: str | None = None
    script: asyncio.Lock = field(default_factory=asyncio.Lock)


class Emulator:
    def __init__(
        self,
        *,
        key: str = "demo-key",
        agent_delay: float = 0.2,
        typing_delay: float = 0.3,
        reply_delay: float = 0.7,
        echo_delay: float = 0.05,
        ping_interval: float = 25.0,
        ping_timeout: float = 60.0,
        lazy_chat: bool = False,
    ) -> None:
        self.key = key
        self.lazy_chat = lazy_chat
        """Create a visitor's chat with its first message (as the real platform does), not
        at `visitor.connect`: until then the connect ack carries `chat: null`."""
        self.agent_delay, self.typing_delay = agent_delay, typing_delay
        self.reply_delay, self.echo_delay = reply_delay, echo_delay
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.account_status = "online"
        self.refuse_connections = False
        """While true, the socket endpoint answers 503 (to test reconnect backoff)."""
        self.received: list[tuple[str, Any]] = []
        """Every event a client emitted, in order: `(name, data)`."""
        self.packets: list[tuple[str, list[Any], bool]] = []
        """The same emits as they came: `(name, every argument, whether it asked for an ack)`."""
        self.chats: dict[str, ChatState] = {}
        self.visitors: dict[str, dict[str, Any]] = {}
        self.files: dict[str, tuple[str, str, bytes]] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)
        self._sockets: set[ServerSocket] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = web.Application()
        self.app.router.add_get("/socket/", self._socket)
        self.app.router.add_get("/socket", self._socket)
        self.app.router.add_post("/upload/{token}", self._upload)
        self.app.router.add_get("/files/{file_id}", self._file)
        self.app.on_shutdown.append(self._shutdown)

    # -- test controls -------------------------------------------------------------------------

    async def agent_says(self, chat_id: str, text: str) -> dict[str, Any]:
        """The agent writes `text`; returns the Message row."""
        chat = self.chats[chat_id]
        row = self._row(
            chat, "message", "agent", {"type": "text", "text": text}, agentId=AGENT["id"]
        )
        await self._broadcast(chat, "chat.message_received", {"chatId": chat.id, "message": row})
        return row

    async def end_session(self, chat_id: str) -> None:
        """The agent closes the chat."""
        await self._close(self.chats[chat_id], "agent")

    async def drop_connections(self) -> None:
        """Close every live socket (clients must reconnect)."""
        for sock in list(self._sockets):
            await sock.ws.close(code=WSCloseCode.GOING_AWAY)

    async def set_account_status(self, status: str) -> None:
        self.account_status = status
        for chat in self.chats.values():
            await self._broadcast(chat, "account.updated", {"status": status})

    async def assign_agent(self, chat_id: str, unassign: bool = False) -> dict[str, Any]:
        """The lead (un)assigns the scripted agent; returns the event row."""
        chat = self.chats[chat_id]
        kind, field_ = (
            ("agent_unassign", "unassigned") if unassign else ("agent_assign", "assigned")
        )
        data = {field_: AGENT["id"], f"{field_}By": LEAD["id"]}
        row = self._row(chat, "event", "system", {"type": kind, "text": None, "data": data})
        event = f"chat.agent_{field_}"
        await self._broadcast(
            chat,
            event,
            {"chatId": chat.id, field_: AGENT, f"{field_}By": LEAD, "message": row},
        )
        return row

    async def unassign_agent(self, chat_id: str) -> dict[str, Any]:
        return await self.assign_agent(chat_id, unassign=True)

    async def rate_chat(self, chat_id: str, value: int, text: str | None = None) -> None:
        """The visitor's rating arrives (`chat.rated` with its `rate_form` row)."""
        chat = self.chats[chat_id]
        rating = {"value": value, "text": text}
        row = self._row(
            chat, "message", "system", {"type": "rate_form", "text": None, "data": rating}
        )
        await self._broadcast(
            chat, "chat.rated", {"chatId": chat.id, "rating": rating, "message": row}
        )

    async def delete_chat(self, chat_id: str) -> None:
        """An agent deletes the chat (`chat.deleted`)."""
        chat = self.chats[chat_id]
        chat.status = "closed"
        await self._broadcast(chat, "chat.deleted", {"chatId": chat.id})

    async def send_raw(self, chat_id: str, event: str, data: Any) -> None:
        """Send any server event as given (a test's way to send what the platform should not)."""
        await self._broadcast(self.chats[chat_id], event, data)

    async def server_error(
        self, chat_id: str, message: str, code: int = 500, type: str = "server_error"
    ) -> None:
        await self._broadcast(
            self.chats[chat_id], "server.error", {"message": message, "code": code, "type": type}
        )

    def chat_of(self, visitor_id: str) -> ChatState:
        return self.chats[self.visitors[visitor_id]["chatId"]]

    def _new_chat(self, visitor: dict[str, Any]) -> ChatState:
        chat = ChatState(self._id("c"), visitor["id"])
        self.chats[chat.id] = chat
        visitor["chatId"] = chat.id
        for sock in self._sockets:  # every tab of the visitor follows the new chat
            if sock.state.get("visitor") == visitor["id"]:
                sock.state["chat"] = chat.id
                chat.sockets.add(sock)
        self._later(self._agent_joins(chat))
        return chat

    # -- Socket.IO -----------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("EIO") != "3" or request.query.get("transport") != "websocket":
            return web.json_response(
                {"code": 5, "message": "Unsupported protocol version"}, status=400
            )
        if self.refuse_connections:
            return web.json_response({"code": 503, "message": "Service unavailable"}, status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sock = ServerSocket(ws, secrets.token_hex(8), self.ping_interval, self.ping_timeout)
        sock.state["origin"] = str(request.url.origin())  # upload URLs point back here
        self._sockets.add(sock)
        try:
            await sock.serve(self._handle)
        finally:
            self._sockets.discard(sock)
            chat = self.chats.get(sock.state.get("chat", ""))
            if chat is not None:
                chat.sockets.discard(sock)
        return ws

    async def _handle(
        self, sock: ServerSocket, event: str, args: list[Any], wants_ack: bool
    ) -> list[Any] | None:
        data = args[0] if args else None
        self.received.append((event, data))
        self.packets.append((event, args, wants_ack))
        answer = await self._answer(sock, event, data)
        # The SDK emits typing and read without a callback: the platform answers neither.
        return None if event in _NEVER_ACKED else answer

    async def _answer(self, sock: ServerSocket, event: str, data: Any) -> list[Any]:
        if event == "visitor.connect":
            return self._connect(sock, data if isinstance(data, dict) else {})
        visitor = self.visitors.get(sock.state.get("visitor", ""))
        if visitor is None:
            return [_error("Connection not initialized", "auth_error", event, 403)]
        data = data if isinstance(data, dict) else {}  # `null` for payload-less commands
        chat = self.chats.get(visitor.get("chatId") or "")
        if chat is None:  # lazy mode, nothing said yet
            if event in ("chat.typing", "chat.read", "chat.close", "chat.rate"):
                return [None, None]  # nothing to type into, read or close
            if event not in ("chat.message", "chat.upload_init") or not _valid_message(event, data):
                return [_error(f"No chat for {event}", "bad_request", event, 400)]
            chat = self._new_chat(visitor)  # the first message creates it
        match event:
            case "chat.message":
                return await self._message(chat, event, data)
            case "chat.typing":
                typing = data.get("typing")
                if (
                    not isinstance(typing, dict)
                    or not isinstance(typing.get("is"), bool)
                    or not isinstance(typing.get("text"), str | None)
                ):
                    return [_error("Invalid typing", "bad_request", event, 400)]
                chat.typing = typing
                return [None, None]
            case "chat.read":
                chat.last_read_at = now_at()
                read = {"chatId": chat.id, "lastReadAt": chat.last_read_at, "byId": chat.visitor_id}
                self._later(self._broadcast(chat, "chat.contact_read", read))
                return [None, None]
            case "chat.close":
                if chat.status != "closed":
                    self._later(self._close(chat, "visitor"))
                return [None, None]
            case "chat.upload_init":
                token = secrets.token_urlsafe(12)
                self._uploads[token] = {"chat": chat.id}
                return [None, {"url": f"{sock.state['origin']}/upload/{token}", "token": token}]
            case "chat.upload_finish":
                return await self._upload_finish(chat, event, data)
            case "chat.rate":
                return [None, None]
        return [_error(f"Unknown event {event}", "bad_request", event, 400)]

    def _connect(self, sock: ServerSocket, data: dict[str, Any]) -> list[Any]:
        if data.get("key") != self.key:
            return [_error("Invalid account key", "auth_error", "visitor.connect", 401)]
        if "id" not in data:  # the SDK always sends it (`ConnectOptions.id: string | null`)
            return [_error("Visitor id missing", "bad_request", "visitor.connect", 400)]
        visitor_id = data["id"]
        if visitor_id is not None and visitor_id not in self.visitors:
            return [_error("Visitor not found", "not_found", "visitor.connect", 404)]
        if visitor_id is None:
            visitor_id = self._id("v")
            self.visitors[visitor_id] = {
                "id": visitor_id,
                "chatId": None,
                "bannedAt": None,
                "visits": 0,
                **dict.fromkeys(_IDENTITY),
                "variables": {},
            }
            if not self.lazy_chat:
                self._new_chat(self.visitors[visitor_id])
        visitor = self.visitors[visitor_id]
        visitor.update({k: data[k] for k in _IDENTITY if data.get(k) is not None})
        visitor["visits"] += 1
        sock.state["visitor"] = visitor_id
        chat = self.chats.get(visitor["chatId"] or "")
        if chat is not None:
            sock.state["chat"] = chat.id
            chat.sockets.add(sock)
        return [
            None,
            {
                "serverVersion": 3,
                "visitor": dict(visitor),
                "browser": None,
                "account": {"status": self.account_status, "agents": [AGENT], "groups": []},
                "chat": None if chat is None else _chat_info(chat),
            },
        ]

    async def _message(self, chat: ChatState, event: str, data: dict[str, Any]) -> list[Any]:
        content = data.get("content")
        if not isinstance(content, dict) or content.get("type") != "text":
            return [_error("Invalid content", "bad_request", event, 400)]
        text = content.get("text")
        if not isinstance(text, str) or not text.strip():
            return [_error("Message text is empty", "bad_request", event, 400)]
        if chat.status == "closed":
            return [_error("Chat is closed", "chat_closed", event, 409)]
        row = self._row(chat, "message", "contact", {"type": "text", "text": text})
        self._later(self._echo_and_reply(chat, row, text))
        return [None, row]

    async def _upload_finish(self, chat: ChatState, event: str, data: dict[str, Any]) -> list[Any]:
        upload = self._uploads.get(str(data.get("uploadToken")))
        if upload is None or upload["chat"] != chat.id or "file" not in upload:
            return [_error("Upload not found", "bad_request", event, 400)]
        del self._uploads[str(data["uploadToken"])]
        _, name, mime, size, url = upload["file"]
        kind = "image" if mime.startswith("image/") else "file"
        attachment = {"type": kind, "fileName": name, "fileType": mime, "url": url, "size": size}
        content = {"type": "upload", "text": None, "data": attachment}
        row = self._row(chat, "message", "contact", content, attachments=[attachment])
        self._later(self._echo_and_reply(chat, row, None))
        return [None, row]

    # -- HTTP: uploads -------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self._uploads.get(request.match_info["token"])
        if upload is None:
            return web.json_response({"message": "Unknown upload token", "code": 404}, status=404)
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name == "file":
                body = await part.read()
                name = part.filename or "file"
                mime = part.headers.get("Content-Type", "application/octet-stream")
                file_id = self._id("f")
                self.files[file_id] = (name, mime, bytes(body))
                url = f"{request.url.origin()}/files/{file_id}"
                upload["file"] = (file_id, name, mime, len(body), url)
                return web.json_response({"id": file_id})
        return web.json_response({"message": "No file part", "code": 400}, status=400)

    async def _file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            raise web.HTTPNotFound()
        _, mime, body = found
        return web.Response(body=body, content_type=mime)

    # -- the scripted agent --------------------------------------------------------------------

    async def _agent_joins(self, chat: ChatState) -> None:
        async with chat.script:
            await asyncio.sleep(self.agent_delay)
            chat.status = "open"
            content = {"type": "agent_join", "text": None, "data": {"agentId": AGENT["id"]}}
            row = self._row(chat, "event", "system", content)
            await self._broadcast(
                chat, "chat.agent_joined", {"chatId": chat.id, "agent": AGENT, "message": row}
            )

    async def _echo_and_reply(self, chat: ChatState, row: dict[str, Any], text: str | None) -> None:
        await asyncio.sleep(self.echo_delay)
        await self._broadcast(chat, "chat.message_received", {"chatId": chat.id, "message": row})
        if text is None:
            return
        async with chat.script:
            if chat.status == "closed":
                return
            await asyncio.sleep(self.typing_delay)
            await self._typing(chat, True)
            await asyncio.sleep(self.reply_delay)
            await self._typing(chat, False)
            await self.agent_says(chat.id, f"echo: {text}")
            if text.strip().lower() == "bye":
                await self._close(chat, "agent")

    async def _typing(self, chat: ChatState, active: bool) -> None:
        typing = {"chatId": chat.id, "agentId": AGENT["id"], "typing": {"is": active, "text": ""}}
        await self._broadcast(chat, "chat.agent_typing", typing)

    async def _close(self, chat: ChatState, by: str) -> None:
        if chat.status == "closed":
            return
        chat.status = "closed"
        close_type = f"{by}_close"  # `visitor_close` | `agent_close` (src/types.ts)
        data = {"closeType": close_type, **({"agentId": AGENT["id"]} if by == "agent" else {})}
        row = self._row(chat, "event", "system", {"type": "chat_close", "text": None, "data": data})
        await self._broadcast(
            chat, "chat.closed", {"chatId": chat.id, "closeType": close_type, "message": row}
        )

    # -- plumbing ------------------------------------------------------------------------------

    def _row(
        self, chat: ChatState, type_: str, sub: str, content: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        row = {  # `IMessage`
            "id": self._id("m"),
            "type": type_,
            "subType": sub,
            "channel": {"type": "default", "id": None},
            "chatId": chat.id,
            "groupId": None,
            "visitorId": chat.visitor_id,
            "agentId": None,
            "trigger": None,
            "createdAt": now_at(),
            "content": {"text": None, "data": None, **content},
            "tags": None,
            "responseTime": None,
            "attachments": [],
            **extra,
        }
        chat.messages.append(row)
        return row

    async def _broadcast(self, chat: ChatState, event: str, data: Any) -> None:
        for sock in list(chat.sockets):
            await sock.emit(event, data)

    def _id(self, kind: str) -> str:
        return f"{kind}{self._prefix}{next(self._ids)}"

    def _later(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shutdown(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.drop_connections()


_NEVER_ACKED = frozenset({"chat.typing", "chat.read"})
_IDENTITY = ("name", "email", "phone", "lang", "group", "variables")
"""The visitor fields a `visitor.connect` sets (the SDK re-sends them on every reconnect)."""


def _chat_info(chat: ChatState) -> dict[str, Any]:
    """The `visitor.connect` ack's `chat` (`ChatInfo`)."""
    return {
        "id": chat.id,
        "assignedIds": [AGENT["id"]] if chat.status == "open" else [],
        "rating": None,
        "status": chat.status,
        "readInfo": {"type": "visitor", "lastReadAt": chat.last_read_at},
        "unreadInfo": {"type": "visitor", "count": 0, "lastReadAt": chat.last_read_at},
        "messages": list(chat.messages),
    }


def _valid_message(event: str, data: dict[str, Any]) -> bool:
    """Whether a first emit would create the chat (an invalid message creates nothing)."""
    if event != "chat.message":
        return True
    content = data.get("content")
    if not isinstance(content, dict):
        return False
    text = content.get("text")
    return content.get("type") == "text" and isinstance(text, str) and bool(text.strip())


def _error(message: str, type_: str, event: str, code: int) -> dict[str, Any]:
    return {"message": message, "type": type_, "event": event, "code": code}


# -- demo mode (gateway/demo.py) ---------------------------------------------------------------


def demo_wiring() -> Wiring:
    """How `gateway serve --demo` runs this dialect: this emulator, and the connector's options."""
    return Wiring(
        build=lambda pace: Emulator(
            key="demo-key",
            agent_delay=0.4 * pace,
            typing_delay=0.3 * pace,
            reply_delay=0.7 * pace,
        ),
        options={"key": "demo-key", "backoff_s": "0.2", "backoff_max_s": "2"},
        send_file=_send_file,
    )


async def _send_file(emulator: Emulator, native: str, files: DemoFiles) -> bool:
    chat = emulator.chats.get(native)
    if chat is None:
        return False
    attachment = {
        "type": "file",
        "fileName": "receipt.txt",
        "fileType": "text/plain",
        "url": files.url("receipt.txt"),
        "size": len(files.receipt),
    }
    row = emulator._row(
        chat,
        "message",
        "agent",
        {"type": "upload", "text": "Here is your receipt", "data": attachment},
        agentId=AGENT["id"],
        attachments=[attachment],
    )
    await emulator._broadcast(chat, "chat.message_received", {"chatId": native, "message": row})
    return True
