"""Engine.IO v3 / Socket.IO v2 over aiohttp WebSockets: the subset the visitor widget speaks.

Why not python-socketio: only its 4.x line speaks Socket.IO v2, and it pins python-engineio 3,
which clashes with the python-socketio 5 our benchmarks install beside the gateway. The subset
needed here is small, so both ends live in this module (`Client` for the connector, `ServerSocket`
for the emulator), and they are tested against each other and by the packet tables.

Wire (one Engine.IO packet per WebSocket text frame, `ws[s]://host/socket/?EIO=3&transport=websocket`):

    server → client   0{"sid", "upgrades": [], "pingInterval": ms, "pingTimeout": ms}   open
    server → client   40                              Socket.IO connect (default namespace)
    client → server   2          server → client  3   ping / pong (v3: the CLIENT pings)
    either way        42["event", data]               an event
                      42<id>["event", data]           an event that wants an ack
                      43<id>[arg, ...]                the ack (visitor widget: `[err, result]`)
    either way        41  (Socket.IO disconnect), 1 (Engine.IO close)

Not supported (not used by the platform's visitor API): namespaces other than `/`, binary
packets (types 5 and 6), HTTP long-polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import msgspec
import structlog
from aiohttp import web

from gateway.mailbox import Mailbox

log = structlog.get_logger(__name__)

OPEN, CLOSE, PING, PONG, MESSAGE = "0", "1", "2", "3", "4"
CONNECT, DISCONNECT, EVENT, ACK, ERROR = "0", "1", "2", "3", "4"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class SioError(Exception):
    """A Socket.IO protocol failure (bad handshake, unparseable packet)."""


class Disconnected(SioError):
    """The link is gone; pending acks fail with this."""


class Packet(msgspec.Struct, frozen=True):
    """A Socket.IO packet: `kind` is its type digit, `data` the decoded JSON (or None)."""

    kind: str
    data: Any = None
    ack_id: int | None = None


def event_frame(event: str, *args: Any, ack_id: int | None = None) -> str:
    """`42[<id>]["event", ...args]`."""
    head = MESSAGE + EVENT + ("" if ack_id is None else str(ack_id))
    return head + _encode([event, *args]).decode()


def ack_frame(ack_id: int, *args: Any) -> str:
    """`43<id>[...args]`."""
    return f"{MESSAGE}{ACK}{ack_id}" + _encode(list(args)).decode()


def parse(text: str) -> tuple[str, Packet | str]:
    """An Engine.IO frame: `(engine type, Packet)` for messages, `(engine type, payload)` else.
    Raises `SioError` for a frame it cannot read."""
    if not text:
        raise SioError("empty Engine.IO packet")
    engine, rest = text[0], text[1:]
    if engine != MESSAGE:
        return engine, rest
    if not rest:
        raise SioError("empty Socket.IO packet")
    kind, i = rest[0], 1
    if rest.startswith("/", i):  # a namespace: `/nsp,` (only `/` is used; skip it)
        comma = rest.find(",", i)
        i = len(rest) if comma < 0 else comma + 1
    j = i
    while j < len(rest) and rest[j].isdigit():
        j += 1
    ack_id = int(rest[i:j]) if j > i else None
    try:
        data = _decode(rest[j:]) if j < len(rest) else None
    except msgspec.DecodeError as exc:
        raise SioError(f"bad Socket.IO payload: {exc}") from None
    return engine, Packet(kind, data, ack_id)


def socket_url(base: str, path: str = "/socket") -> str:
    """The WebSocket URL of a Socket.IO v2 server at `base` (http(s) or ws(s))."""
    url = base.rstrip("/")
    if url.startswith("http"):
        url = "ws" + url[4:]
    return f"{url}/{path.strip('/')}/?EIO=3&transport=websocket"


class Client:
    """One Socket.IO v2 client connection. `connect` returns once the server said `40`.

    `call` emits an event and returns the ack's arguments; `receive` returns the next server
    event as `(name, data)`. Both raise `Disconnected` once the link is gone (the client never
    reconnects on its own: the connector decides).
    """

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, ping_interval: float, ping_timeout: float
    ):
        self._ws = ws
        self._ids = itertools.count(1)
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._events: Mailbox[tuple[str, Any] | None] = Mailbox()
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._ended = False
        self._tasks = [asyncio.create_task(self._read())]
        # Engine.IO v3: the client pings, and no pong within pingTimeout means the link is
        # dead. A timer does it (the next ping, or the pong's deadline), not a task sleeping
        # per connection: a replica holds thousands of these.
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(ping_interval, self._ping)
        self._pong_due = False

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, url: str, *, path: str = "/socket", wait: float = 10.0
    ) -> Client:
        """Open the WebSocket and do the Engine.IO and Socket.IO handshakes. Raises
        `aiohttp.ClientError`, `TimeoutError` or `SioError`."""
        async with asyncio.timeout(wait):
            ws = await http.ws_connect(
                socket_url(url, path), timeout=aiohttp.ClientWSTimeout(ws_close=wait)
            )
        try:
            async with asyncio.timeout(wait):
                hello = await cls._text(ws)
                engine, payload = parse(hello)
                if engine != OPEN or not isinstance(payload, str):
                    raise SioError(f"expected an Engine.IO open packet, got {hello[:40]!r}")
                handshake = _decode(payload)
                engine, packet = parse(await cls._text(ws))
                if not (isinstance(packet, Packet) and packet.kind == CONNECT):
                    raise SioError("expected a Socket.IO connect packet")
        except BaseException:
            await ws.close()
            raise
        return cls(ws, handshake["pingInterval"] / 1000, handshake["pingTimeout"] / 1000)

    @staticmethod
    async def _text(ws: aiohttp.ClientWebSocketResponse) -> str:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise SioError(f"link closed during the handshake ({msg.type.name})")
        return str(msg.data)

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def emit(self, event: str, *args: Any) -> None:
        """Emit `event` without an ack: nothing answers it. Raises `Disconnected`."""
        if self._ws.closed:
            raise Disconnected("link closed")
        try:
            await self._ws.send_str(event_frame(event, *args))
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise Disconnected(str(exc)) from exc

    async def call(self, event: str, *args: Any, wait: float = 10.0) -> list[Any]:
        """Emit `event` with an ack; the ack's arguments. Raises `Disconnected`, `TimeoutError`."""
        if self._ws.closed:
            raise Disconnected("link closed")
        ack_id = next(self._ids)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        try:
            await self._ws.send_str(event_frame(event, *args, ack_id=ack_id))
            async with asyncio.timeout(wait):
                return await future
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise Disconnected(str(exc)) from exc
        finally:
            self._acks.pop(ack_id, None)

    async def receive(self) -> tuple[str, Any]:
        """The next server event; raises `Disconnected` when the link is gone."""
        item = await self._events.get()
        if item is None:
            self._events.put_nowait(None)  # every later call fails the same way
            raise Disconnected("link closed")
        return item

    async def close(self) -> None:
        self._timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            if not self._ws.closed:
                await self._ws.send_str(MESSAGE + DISCONNECT)
        await self._ws.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._gone()

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    engine, packet = parse(str(msg.data))
                except SioError as exc:
                    log.warning("sio.bad_packet", error=str(exc))
                    continue
                if engine == PONG:
                    self._ponged()
                elif engine == CLOSE or (isinstance(packet, Packet) and not self._dispatch(packet)):
                    break
        finally:
            self._gone()
            await self._ws.close()

    def _dispatch(self, packet: Packet) -> bool:
        """Route one packet; False when the server disconnected us."""
        if packet.kind == EVENT and isinstance(packet.data, list) and packet.data:
            name, *args = packet.data
            self._events.put_nowait((str(name), args[0] if args else None))
        elif packet.kind == ACK and packet.ack_id is not None:
            future = self._acks.get(packet.ack_id)
            if future is not None and not future.done():
                future.set_result(packet.data if isinstance(packet.data, list) else [packet.data])
        elif packet.kind in (DISCONNECT, ERROR):
            return False
        return True

    def _ping(self) -> None:
        """The ping timer: ping, and give the pong `ping_timeout` seconds."""
        if self._ws.closed:
            return
        self._pong_due = True
        self._timer = self._loop.call_later(self._ping_timeout, self._no_pong)
        self._later(self._send_ping())

    async def _send_ping(self) -> None:
        try:
            await self._ws.send_str(PING)
        except (ConnectionError, aiohttp.ClientError):
            self._no_pong()

    def _ponged(self) -> None:
        """The pong came: the next ping after `ping_interval`."""
        if self._pong_due and not self._ws.closed:
            self._pong_due = False
            self._timer.cancel()
            self._timer = self._loop.call_later(self._ping_interval, self._ping)

    def _no_pong(self) -> None:
        """No pong in time (or the ping could not be sent): the link is dead; closing it ends
        the reader, which reports it."""
        self._timer.cancel()
        if not self._ws.closed:
            log.info("sio.ping_timeout")
            self._later(self._ws.close())

    def _later(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` in a task of its own, kept until it is done (`close` cancels it)."""
        task = asyncio.ensure_future(work)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def _gone(self) -> None:
        self._timer.cancel()
        for future in self._acks.values():
            if not future.done():
                future.set_exception(Disconnected("link closed"))
        self._acks.clear()
        if not self._ended:
            self._ended = True
            self._events.put_nowait(None)


Handler = Callable[["ServerSocket", str, list[Any], bool], Awaitable[list[Any] | None]]
"""The emulator's event handler: `(socket, event, args, wants_ack)` → the ack's arguments, or
None to send no ack (an emit that asked for none gets none either way)."""


class ServerSocket:
    """The server end of one Socket.IO v2 connection (for the emulator)."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        sid: str,
        ping_interval: float = 25.0,
        ping_timeout: float = 60.0,
    ):
        self.ws = ws
        self.sid = sid
        self._hello = {
            "sid": sid,
            "upgrades": [],
            "pingInterval": int(ping_interval * 1000),
            "pingTimeout": int(ping_timeout * 1000),
        }
        self.state: dict[str, Any] = {}
        """The handler's own per-connection state (e.g. which visitor this socket is)."""

    async def serve(self, handler: Handler) -> None:
        """Handshake, then answer pings and hand every event to `handler` (in order) until the
        client goes away."""
        await self.ws.send_str(OPEN + _encode(self._hello).decode())
        await self.ws.send_str(MESSAGE + CONNECT)
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                engine, packet = parse(str(msg.data))
            except SioError:
                continue
            if engine == PING:
                await self.ws.send_str(PONG + (packet if isinstance(packet, str) else ""))
            elif engine == CLOSE:
                break
            elif isinstance(packet, Packet):
                if packet.kind == DISCONNECT:
                    break
                if packet.kind == EVENT and isinstance(packet.data, list) and packet.data:
                    name, *args = packet.data
                    wants_ack = packet.ack_id is not None
                    result = await handler(self, str(name), args, wants_ack)
                    if packet.ack_id is not None and result is not None and not self.ws.closed:
                        await self.ws.send_str(ack_frame(packet.ack_id, *result))

    async def emit(self, event: str, data: Any) -> None:
        """Send a server event (dropped when the socket is already closed)."""
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_str(event_frame(event, data))
