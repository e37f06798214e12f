"""The emulated GMS's CometD endpoint: Chat API v2 notifications over Bayeux long polling.

Wire as `adapters/genesys/cometd.py` describes it (GMS "Chat API Version 2 with CometD"):
`POST /genesys/cometd[/<meta>]`, a JSON array of Bayeux messages, answered with one:

    /meta/handshake   → {successful, clientId, version, supportedConnectionTypes,
                         advice {reconnect "retry", interval 0, timeout <connect hold, ms>}}
    /meta/subscribe   subscription "/service/chatV2/<service>" (another: 403::channel unknown)
    /meta/connect     held until the client has notifications, or the hold passes; the reply
                      carries them, then itself
    /meta/disconnect  forgets the client
    publish on "/service/chatV2/<service>": acknowledged at once ({successful: true}); GMS's
        answer is a notification, data = the REST reply envelope of the chat, `messages` the
        entries it has not pushed yet: requestChat (the chat's first), sendMessage,
        startTyping, stopTyping, disconnect, requestNotifications (from `transcriptPosition`,
        0 or none: all, and the chat is pushed to this client from now on). A refused
        operation is a notification with statusCode 2 and `errors` (code 2 missing parameter,
        50 unknown or ended chat), as the REST API's.
    a client the endpoint does not know (never handshaken, forgotten by `drop_links`) is
    answered {successful: false, error: "402::Unknown client", advice {reconnect "handshake"}},
    as CometD servers do.

Test controls: `deliver_on_any_reply` (publish replies carry notifications too),
`drop_links()` (every held connect loses its connection and every client is forgotten, as when
a GMS node restarts); `clients` holds the live ones.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from adapters.genesys.emulator import ChatSession, Emulator

COMETD_PATH = "/genesys/cometd"
CHANNEL_PREFIX = "/service/chatV2/"
OPERATIONS = {  # CometD operation → the REST op the emulator applies
    "sendMessage": "send",
    "startTyping": "startTyping",
    "stopTyping": "stopTyping",
    "disconnect": "disconnect",
}


@dataclass
class Client:
    """One Bayeux client: its queued messages and its held connect."""

    client_id: str
    browser: str  # the `BAYEUX_BROWSER` cookie its handshake set
    browsers_seen: set[str | None] = field(default_factory=set)  # the cookie its requests sent
    queue: list[dict[str, Any]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    holding: web.Request | None = None


class CometdEndpoint:
    """The CometD side of an `Emulator` (its chats, its scripted agent)."""

    def __init__(self, emulator: Emulator, connect_timeout_s: float) -> None:
        self.emulator = emulator
        self.connect_timeout_s = connect_timeout_s
        self.clients: dict[str, Client] = {}
        self.stopping = False
        """Set when the server shuts down: no connect is held from then on."""
        self.deliver_on_any_reply = False
        """Whether a publish's reply carries the client's queued notifications too (a CometD
        server delivers on any reply unless `metaConnectDeliveryOnly`)."""

    @property
    def channel(self) -> str:
        return CHANNEL_PREFIX + self.emulator.service

    def drop_links(self) -> None:
        """Every held connect loses its connection; every client is forgotten."""
        self.drop_held(len(self.clients))
        self.clients.clear()

    async def shutdown(self, app: web.Application) -> None:
        """Answer every held connect now, and any that comes later at once (a server that
        stops does not hold them; a client answered will connect again while it stops)."""
        self.stopping = True
        for client in self.clients.values():
            client.ready.set()

    def drop_held(self, most: int) -> int:
        """Up to `most` held connects lose their connection now; how many did."""
        dropped = 0
        for client in self.clients.values():
            request = client.holding
            if dropped < most and request is not None and request.transport is not None:
                request.transport.close()
                client.ready.set()
                dropped += 1
        return dropped

    def push(
        self,
        session: ChatSession,
        entries: list[dict[str, Any]] | None = None,
        *,
        error: tuple[int, int, str] | None = None,
    ) -> None:
        """Notify the chat's client (if it has one) of new `entries` or of an `error`."""
        client = self.clients.get(session.listener or "")
        if client is None:
            return
        data = self.emulator.reply(session, None)
        data["messages"] = entries or []
        if error is not None:
            status_code, code, advice = error
            data.update(statusCode=status_code, errors=[{"code": code, "advice": advice}])
        client.queue.append({"channel": self.channel, "data": data})
        client.ready.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        denied = self.emulator._unauthorized(request)
        if denied is not None:
            return denied
        if self.emulator.take_drop():
            assert request.transport is not None
            request.transport.close()  # the request's connection drops mid-request
            return web.Response(status=503)
        try:
            messages = json.loads(await request.read())
        except ValueError:
            messages = None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return web.json_response({"error": "a Bayeux message array"}, status=400)
        replies: list[dict[str, Any]] = []
        for message in messages:
            reply = await self._message(request, message, replies)
            if reply is None:  # the connection was dropped (`drop_links`)
                return web.Response(status=503)
            replies.append(reply)
        response = web.json_response(replies)
        for reply in replies:
            if reply["channel"] == "/meta/handshake" and reply.get("successful"):
                # as Jetty's CometD: the browser cookie by which it tells browsers apart
                response.set_cookie("BAYEUX_BROWSER", self.clients[reply["clientId"]].browser)
        return response

    async def _message(
        self, request: web.Request, message: dict[str, Any], replies: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        channel, mid = message.get("channel"), message.get("id")
        base: dict[str, Any] = {"channel": channel, "id": mid}
        if channel == "/meta/handshake":
            made = Client(client_id=secrets.token_hex(12), browser=secrets.token_hex(8))
            self.clients[made.client_id] = made
            advice = {"reconnect": "retry", "interval": 0, "timeout": self._hold_ms}
            return base | {
                "successful": True,
                "clientId": made.client_id,
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
                "advice": advice,
            }
        client = self.clients.get(str(message.get("clientId")))
        if client is None:
            return base | {
                "successful": False,
                "error": "402::Unknown client",
                "advice": {"reconnect": "handshake", "interval": 0},
            }
        client.browsers_seen.add(request.cookies.get("BAYEUX_BROWSER"))
        if channel == "/meta/connect":
            if not await self._hold(request, client):
                return None
            replies += client.queue
            client.queue = []
            advice = {"reconnect": "retry", "interval": 0, "timeout": self._hold_ms}
            return base | {"successful": True, "clientId": client.client_id, "advice": advice}
        if channel == "/meta/subscribe":
            if message.get("subscription") != self.channel:
                return base | {"successful": False, "error": "403::channel unknown"}
            return base | {"successful": True, "subscription": self.channel}
        if channel == "/meta/disconnect":
            del self.clients[client.client_id]
            client.ready.set()
            return base | {"successful": True}
        if channel != self.channel:
            return base | {"successful": False, "error": "403::channel unknown"}
        data = message.get("data")
        if not isinstance(data, dict):
            return base | {"successful": False, "error": "400::data is no object"}
        self._operate(client, data)
        if self.deliver_on_any_reply:  # CometD's `metaConnectDeliveryOnly` false
            replies += client.queue
            client.queue = []
        return base | {"successful": True}

    @property
    def _hold_ms(self) -> int:
        return int(self.connect_timeout_s * 1000)

    async def _hold(self, request: web.Request, client: Client) -> bool:
        """Wait until `client` has something, or the hold passes; False if it was dropped."""
        if not client.queue and not self.stopping:
            client.ready.clear()
            client.holding = request
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    await client.ready.wait()
            except TimeoutError:
                pass
            finally:
                client.holding = None
        dropped = request.transport is None or request.transport.is_closing()
        return not dropped and self.clients.get(client.client_id) is client

    def _operate(self, client: Client, data: dict[str, Any]) -> None:
        from adapters.genesys.emulator import Received

        emulator = self.emulator
        op = str(data.get("operation"))
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        if op == "requestChat":
            emulator.record(Received(op, None, form))
            fields = {k: str(v) for k, v in data.items() if k != "userData"}
            user_data = data.get("userData") or {}
            fields.update({f"userData[{k}]": str(v) for k, v in user_data.items()})
            made = emulator.new_session(fields, listener=client.client_id)
            if isinstance(made, str):
                self._refuse(client, 2, made)
            return
        session = emulator.by_key.get(str(data.get("secureKey")))
        # recorded under the REST op's name, so `Emulator.ops` is the same over both wires
        chat = session.chat_id if session else None
        emulator.record(Received(OPERATIONS.get(op, op), chat, form))
        if session is None:
            self._refuse(client, 50, "chat session not found")
        elif session.failed is not None:
            status_code, code = session.failed
            session.listener = client.client_id
            self.push(session, error=(status_code, code, "chat ended by error"))
        elif op == "requestNotifications":
            session.listener = client.client_id
            given = str(data.get("transcriptPosition") or "")
            start = max(1, int(given)) if given.isdigit() else 1
            self.push(session, session.transcript[start - 1 :])
        elif session.ended:
            self.push(session, error=(2, 50, "chat session has ended"))
        elif op not in OPERATIONS:
            self.push(session, error=(2, 1, f"unknown command {op!r}"))
        else:
            refused = emulator.act(session, OPERATIONS[op], form)
            if refused is not None:
                self.push(session, error=(2, 2, refused))

    def _refuse(self, client: Client, code: int, advice: str) -> None:
        """An error notification naming no chat (there is none)."""
        data = {"statusCode": 2, "errors": [{"code": code, "advice": advice}]}
        client.queue.append({"channel": self.channel, "data": data})
        client.ready.set()
