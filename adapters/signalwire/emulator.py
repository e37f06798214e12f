"""An in-process emulator of SignalWire Call Fabric chat, for tests and `gateway serve --demo`.

Two hosts, as the SDK sees the platform (`relay.py`): the REST API (`rest`, the SDK's
`https://fabric.<space domain>`) and the Relay socket (`relay`, served at `/`: the SDK's
`wss://relay.signalwire.com` has no path). `app` serves both on one port for demo mode, the
socket at `/relay`.

REST (`rest`, and `app`):

    POST /api/fabric/conversations/join  {"conversation_id": addr}          → {"table": {...}}
                                         or {"from_fabric_address_id": me,
                                             "fabric_address_ids": [addr, me]} → {"group_id": ...}
    POST /api/fabric/messages            {"conversation_id": addr, "text": t,
                                          "metadata"?: {...}, "details"?: {...}} → {"table": {...}}
                                         or {"group_id": g, "text": t,
                                             "from_fabric_address_id": me, ...} → {"table": {...}}
    GET  /api/fabric/conversations/{addr or group}/messages?page_size=N[&cursor=…]
                                                                         → {"data", "links"}

REST wants `Authorization: Bearer <token>` (401 otherwise); errors are
`{"errors": [{"code", "message"}]}`. A message's `metadata` and `details` (objects) are stored
on its row: the live event and history return them.

Relay (`relay` at `/`, `app` at `/relay`): the first request must be `signalwire.connect` with
`params.authentication.jwt_token` (error -32002 otherwise); its result names the subscriber
(`identity`) and a `protocol` string, and a `signalwire.authorization.state` event follows with
a new opaque `authorization_state`. A reconnect that sends `protocol` resumes that session (its
unacknowledged events are redelivered, as Relay does); with `authorization_state` too, the state
must be the session's latest and the token the session's own (the state stands in for the
token's validation: a token since removed from `tokens` still resumes), else error -32003 and
the client must connect afresh. Events go out as `signalwire.event` requests and stay pending
until acknowledged. As on the platform, a conversation's events go to every client session of
its subscriber, whichever conversations that session joined (nothing on the socket subscribes
to one). History pages are newest first.

The scripted agent: on a new conversation it sends `greeting` (if any); it answers each user
text with `"echo: <text>"` after `reply_delay`; the text "bye" makes it end the conversation
(our own `conversation.ended` event). Test controls: `agent_says`, `end_session`,
`add_call_log`, `drop_connections`, `refuse_connections`, `revoke`, `redeliver_first` (pending
events before the connect result), `answer_connect` (False: a hung platform), `wait_for`;
inspection: `received`, `connects`, `acks`, `conversations`, `texts`, `sockets` (Relay sockets
open now), `pushed` (conversation events sent on sockets, all sockets counted).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from gateway.demo import DemoFiles, Wiring

RELAY_PATH = "/relay"
"""Where `app` (REST and Relay on one port, for demo mode) serves the Relay socket."""
AGENT_NAME = "Agent Smith"


@dataclass
class _Conversation:
    id: str  # the native conversation id: the address (older API) or a group id (newer)
    address: str
    subscriber: str
    newer: bool = False
    me: str | None = None  # newer API: the joining user's own fabric address
    rows: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False


@dataclass
class _Link:
    """One Relay protocol (a client session): its socket, if up, and unacknowledged events."""

    subscriber: str
    token: str
    ws: web.WebSocketResponse | None = None
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorization_state: str | None = None  # the latest one handed out


class Emulator:
    """The platform. `tokens` maps bearer tokens to subscriber ids."""

    def __init__(
        self,
        tokens: dict[str, str] | None = None,
        *,
        greeting: str | None = "Hi! How can I help?",
        reply_delay: float = 0.0,
    ) -> None:
        self.tokens = tokens if tokens is not None else {"demo-token": "subscriber-demo"}
        self.greeting = greeting
        self.reply_delay = reply_delay
        self.conversations: dict[str, _Conversation] = {}
        self.received: list[tuple[str, str, Any]] = []  # (method or "ws", path, body)
        self.refuse_connections = False  # True: WebSocket upgrades answer 503 (an outage)
        self.redeliver_first = False  # True: pending events go out before the connect result
        self.answer_connect = True  # False: `signalwire.connect` is never answered (hung)
        self.acks: list[str | int] = []
        self.connects: list[dict[str, Any]] = []  # the params of every signalwire.connect
        self.pushed = 0  # conversation events sent on sockets (one per socket it went to)
        self._links: dict[str, _Link] = {}
        self._sockets: set[web.WebSocketResponse] = set()  # every open socket, bound or not
        self._ids = itertools.count(1)
        self._groups: dict[frozenset[str], str] = {}  # the newer join: one group per address set
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self.rest = self._application(rest=True)
        self.relay = self._application(relay="/")
        self.app = self._application(rest=True, relay=RELAY_PATH)

    def _application(self, *, rest: bool = False, relay: str | None = None) -> web.Application:
        app = web.Application()
        if rest:
            app.router.add_post("/api/fabric/conversations/join", self._join)
            app.router.add_post("/api/fabric/messages", self._send)
            app.router.add_get("/api/fabric/conversations/{addr}/messages", self._history)
        if relay is not None:
            app.router.add_get(relay, self._ws)
        app.on_shutdown.append(self._shutdown)
        return app

    # -- test controls ------------------------------------------------------------------------

    async def agent_says(self, native_conversation_id: str, text: str) -> dict[str, Any]:
        """The agent sends `text`; returns the row."""
        conv = self.conversations[native_conversation_id]
        return await self._post(conv, conv.address, text, user_name=AGENT_NAME)

    async def end_session(self, native_conversation_id: str, by: str = "agent") -> None:
        """The agent (or `by`) closes the conversation: our own `conversation.ended` event."""
        conv = self.conversations[native_conversation_id]
        conv.ended = True
        key = "group_id" if conv.newer else "conversation_id"
        reason = "agent" if by == "agent" else by
        body: dict[str, Any] = {key: conv.id, "reason": reason, "by": by, "ts": time.time()}
        await self._emit(conv.subscriber, "conversation.ended", body)

    def add_call_log(self, native_conversation_id: str, status: str = "ended") -> dict[str, Any]:
        """A call-history row (`subtype: "log"`), as the seed's sample; stored, not pushed."""
        conv = self.conversations[native_conversation_id]
        now = time.time()
        row = self._row(conv, conv.address, None, subtype="log")
        row["details"] = {"status": status, "start_time": now - 60, "end_time": now}
        conv.rows.append(row)
        return row

    def revoke(self, token: str) -> None:
        """The token is no longer valid, and neither are the sessions it opened: a reconnect
        with their `authorization_state` is refused (-32003), a fresh connect too (-32002)."""
        self.tokens.pop(token, None)
        for link in self._links.values():
            if link.token == token:
                link.authorization_state = None

    async def drop_connections(self) -> None:
        """Close every live socket (clients must reconnect; pending events stay queued)."""
        for link in self._links.values():
            if link.ws is not None:
                ws, link.ws = link.ws, None
                await ws.close(message=b"dropped by the emulator")

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until `predicate()` holds (checked on every change), at most `within` s."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    @property
    def sockets(self) -> int:
        """Relay sockets open now (joined or not)."""
        return len(self._sockets)

    def texts(self, native_conversation_id: str) -> list[str]:
        """The chat texts of a conversation, oldest first."""
        rows = self.conversations[native_conversation_id].rows
        return [r["text"] for r in rows if r["subtype"] == "chat"]

    # -- REST -----------------------------------------------------------------------------------

    def _auth(self, request: web.Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        subscriber = self.tokens.get(token) if scheme == "Bearer" else None
        if subscriber is None:
            raise _error(401, "unauthorized", "Authentication failed")
        return subscriber

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _error(400, "invalid_json", "Body is not JSON") from None
        if not isinstance(body, dict):
            raise _error(422, "invalid_parameters", "Body must be an object")
        self.received.append((request.method, request.path, body))
        self._touch()
        return body

    async def _join(self, request: web.Request) -> web.Response:
        subscriber = self._auth(request)
        body = await self._body(request)
        if "fabric_address_ids" in body:  # the newer form: a group of addresses
            ids = body["fabric_address_ids"]
            others = [a for a in ids if a != body.get("from_fabric_address_id")]
            if not isinstance(ids, list) or not others or not all(isinstance(a, str) for a in ids):
                raise _error(422, "invalid_parameters", "fabric_address_ids is invalid")
            me = body.get("from_fabric_address_id")
            group = self._groups.get(frozenset(ids))
            if group is None:
                group = self._groups[frozenset(ids)] = str(uuid.uuid4())
                self._open(group, others[0], subscriber, newer=True, me=me)
            return web.json_response(
                {"group_id": group, "fabric_address_ids": ids, "from_fabric_address_id": me}
            )
        address = body.get("conversation_id")
        if not isinstance(address, str) or not address:
            raise _error(422, "missing_parameter", "conversation_id is required")
        conv = self.conversations.get(address) or self._open(address, address, subscriber)
        return web.json_response({"table": {"conversation_id": conv.id, "text": ""}})

    async def _send(self, request: web.Request) -> web.Response:
        subscriber = self._auth(request)
        body = await self._body(request)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise _error(422, "missing_parameter", "text is required")
        group = body.get("group_id")
        if group is not None:  # the newer API: the group must exist
            found = self.conversations.get(group) if isinstance(group, str) else None
            if found is None or not found.newer:
                raise _error(404, "not_found", "conversation not found")
            conv = found
            sender = body.get("from_fabric_address_id") or conv.me or subscriber
        else:
            address = body.get("conversation_id")
            if not isinstance(address, str) or not address:
                raise _error(422, "missing_parameter", "conversation_id or group_id is required")
            conv = self.conversations.get(address) or self._open(address, address, subscriber)
            sender = subscriber
        extra = {key: body[key] for key in ("metadata", "details") if body.get(key) is not None}
        if not all(isinstance(value, dict) for value in extra.values()):
            raise _error(422, "invalid_parameters", "metadata and details must be objects")
        if conv.ended:
            raise _error(404, "not_found", "conversation is closed")
        await self._post(conv, sender, text, is_author=True, **extra)
        self._spawn(self._agent_reply(conv, text))
        return web.json_response({"table": {"conversation_id": conv.id, "text": text}})

    async def _history(self, request: web.Request) -> web.Response:
        self._auth(request)
        conv = self.conversations.get(request.match_info["addr"])
        if conv is None:
            raise _error(404, "not_found", "conversation not found")
        try:
            size = int(request.query.get("page_size", "10"))
            start = int(request.query.get("cursor", "0"))
        except ValueError:
            raise _error(422, "invalid_parameters", "page_size and cursor are numbers") from None
        if size < 1:
            raise _error(422, "invalid_parameters", "page_size must be positive")
        rows = conv.rows[::-1]  # newest first
        base = request.url.with_query({"page_size": str(size)})
        links: dict[str, str] = {"self": str(base.update_query(cursor=str(start)))}
        if start + size < len(rows):
            links["next"] = str(base.update_query(cursor=str(start + size)))
        if start > 0:
            links["prev"] = str(base.update_query(cursor=str(max(0, start - size))))
        return web.json_response({"data": rows[start : start + size], "links": links})

    # -- JSON-RPC WebSocket ---------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        if self.refuse_connections:
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            return await self._serve(ws)
        finally:
            self._sockets.discard(ws)
            self._touch()

    async def _serve(self, ws: web.WebSocketResponse) -> web.WebSocketResponse:
        link: _Link | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = msg.json()
            self.received.append(("ws", "relay", frame))
            self._touch()
            if "method" not in frame:  # a response: the ack of one of our events
                if link is not None and link.pending.pop(str(frame.get("id")), None) is not None:
                    self.acks.append(frame["id"])
                continue
            if frame["method"] == "signalwire.connect":
                if not self.answer_connect:
                    continue
                link = await self._connect(ws, frame)
                if link is None:
                    break
            else:
                await ws.send_json({"jsonrpc": "2.0", "id": frame.get("id"), "result": {}})
        if link is not None and link.ws is ws:
            link.ws = None
        return ws

    async def _connect(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> _Link | None:
        params = frame.get("params") or {}
        self.connects.append(params)
        token = (params.get("authentication") or {}).get("jwt_token")
        protocol, state = params.get("protocol"), params.get("authorization_state")
        link = self._links.get(protocol) if isinstance(protocol, str) else None
        if state is not None:  # resuming: the state stands in for the token's validation
            if link is None or link.token != token or link.authorization_state != state:
                await self._refuse(ws, frame, -32003, "Requester validation failed")
                return None
        else:
            subscriber = self.tokens.get(token) if isinstance(token, str) else None
            if not isinstance(token, str) or subscriber is None:
                await self._refuse(ws, frame, -32002, "Authentication failed")
                return None
            if link is None or link.subscriber != subscriber:
                protocol = f"signalwire_{uuid.uuid4()}"
                link = self._links[protocol] = _Link(subscriber, token)
        link.ws = ws
        result: dict[str, Any] = {
            "identity": link.subscriber,
            "protocol": protocol,
            "authorization": {},
        }
        pending = list(link.pending.values())  # Relay redelivers what was not acked
        if self.redeliver_first:  # a platform is free to push before it answers
            for event in pending:
                await ws.send_json(event)
        await ws.send_json({"jsonrpc": "2.0", "id": frame.get("id"), "result": result})
        link.authorization_state = f"state-{uuid.uuid4()}"
        await ws.send_json(
            self._event(
                "signalwire.authorization.state",
                {"authorization_state": link.authorization_state},
                channel=f"signalwire_{link.subscriber}",
            )
        )
        if not self.redeliver_first:
            for event in pending:
                await ws.send_json(event)
        return link

    @staticmethod
    async def _refuse(
        ws: web.WebSocketResponse, frame: dict[str, Any], code: int, message: str
    ) -> None:
        error = {"code": code, "message": message}
        await ws.send_json({"jsonrpc": "2.0", "id": frame.get("id"), "error": error})

    # -- the platform's insides -----------------------------------------------------------------

    def _open(
        self,
        conv_id: str,
        address: str,
        subscriber: str,
        newer: bool = False,
        me: str | None = None,
    ) -> _Conversation:
        conv = _Conversation(conv_id, address, subscriber, newer, me=me)
        self.conversations[conv_id] = conv
        if self.greeting:
            self._spawn(self._post(conv, address, self.greeting, user_name=AGENT_NAME))
        self._touch()
        return conv

    def _row(
        self, conv: _Conversation, sender: str, text: str | None, subtype: str = "chat"
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"id": str(uuid.uuid4())}
        if conv.newer:
            row |= {"group_id": conv.id, "from_fabric_address_id": sender}
        else:
            row |= {"conversation_id": conv.id, "user_id": sender}
        row |= {"ts": time.time(), "details": {}, "type": "message", "subtype": subtype}
        if text is not None:
            row |= {"kind": "text", "hidden": False, "text": text, "metadata": {}}
        return row

    async def _post(
        self,
        conv: _Conversation,
        sender: str,
        text: str,
        *,
        user_name: str | None = None,
        is_author: bool = False,
        metadata: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        row = self._row(conv, sender, text)
        if user_name:
            row["user_name"] = user_name
        if metadata:
            row["metadata"] = metadata
        if details:
            row["details"] = details
        conv.rows.append(row)
        await self._emit(conv.subscriber, "conversation.message", row, is_author=is_author)
        return row

    async def _emit(
        self, subscriber: str, event_type: str, params: dict[str, Any], is_author: bool = False
    ) -> None:
        for link in self._links.values():
            if link.subscriber != subscriber:
                continue
            event = self._event(
                event_type, params, channel=f"signalwire_{subscriber}", is_author=is_author
            )
            link.pending[event["id"]] = event
            if link.ws is not None and not link.ws.closed:
                try:
                    await link.ws.send_json(event)
                    self.pushed += 1
                except ConnectionError:
                    link.ws = None  # stays pending: redelivered on reconnect
        self._touch()

    def _event(
        self, event_type: str, params: dict[str, Any], *, channel: str, is_author: bool = False
    ) -> dict[str, Any]:
        """A `signalwire.event` request."""
        return {
            "jsonrpc": "2.0",
            "id": f"e{next(self._ids)}",
            "method": "signalwire.event",
            "params": {
                "event_type": event_type,
                "event_channel": channel,
                "timestamp": time.time(),
                "is_author": is_author,
                "params": params,
            },
        }

    async def _agent_reply(self, conv: _Conversation, text: str) -> None:
        await asyncio.sleep(self.reply_delay)
        if conv.ended:
            return
        if text.strip().lower() == "bye":
            await self.end_session(conv.id)
        else:
            await self._post(conv, conv.address, f"echo: {text}", user_name=AGENT_NAME)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _touch(self) -> None:
        self._changed.set()

    async def _shutdown(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.drop_connections()
        for ws in list(self._sockets):  # sockets not bound to a link yet (mid-connect) too
            await ws.close(message=b"emulator shutting down")


def _error(status: int, code: str, message: str) -> web.HTTPException:
    body = {"errors": [{"code": code, "message": message}]}
    cls = {400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 404: web.HTTPNotFound}.get(
        status, web.HTTPUnprocessableEntity
    )
    return cls(text=json.dumps(body), content_type="application/json")


# -- demo mode (gateway/demo.py) ---------------------------------------------------------------


def demo_wiring() -> Wiring:
    """How `gateway serve --demo` runs this dialect: this emulator, and the connector's options."""
    return Wiring(
        build=lambda pace: Emulator(
            tokens={"demo-token": "subscriber-demo"}, reply_delay=0.8 * pace
        ),
        options={"token": "demo-token", "agent_id": "demo-agent", "backoff_s": "0.2"},
        urls={"relay_url": RELAY_PATH},
        send_file=_send_file,
    )


async def _send_file(emulator: Emulator, native: str, files: DemoFiles) -> bool:
    if native not in emulator.conversations:  # text only: the agent sends a link as text
        return False
    await emulator.agent_says(native, f"Your receipt: {files.url('receipt.txt')}")
    return True
