"""A minimal WebSocket client for load: one asyncio Protocol per socket, frames parsed in place.

The same cheap client drives every server (the gateway and the references), so the client's
own cost is the same for all and small next to a server's: it does not decode JSON, it counts
text frames, and only when asked takes a send time (`t=<monotonic ns>`) out of each frame.
Server frames are never masked; ours are, as RFC 6455 wants. No fragmentation, no extensions.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable
from typing import Any

_OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 1, 2, 8, 9, 10


class Stats:
    """Counters shared by every socket of a load client."""

    __slots__ = ("closed", "delivered", "latencies", "progress", "record")

    def __init__(self) -> None:
        self.delivered = 0
        self.closed = 0
        self.record = False  # take latency samples
        self.latencies: list[int] = []  # ns
        self.progress = asyncio.Event()


def _mask(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return head + key + masked


class WSProtocol(asyncio.Protocol):
    """One client socket. Text frames go to `on_text` until `counting` is set; then they are
    counted in `stats` (and their `t=` time read when `stats.record` is on)."""

    def __init__(self, stats: Stats, host: str, path: str) -> None:
        self.stats = stats
        self.host = host
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.counting = False
        self.eio = False  # engine.io: answer its `2` pings with `3`, never count them
        self.count = 0
        self.is_closed = False
        self.on_text: Callable[[WSProtocol, bytes], bool] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.upgraded = True
            self.opened.set_result(None)
        pos, size = 0, len(buf)
        stats = self.stats
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1] & 0x7F
            if b1 < 126:
                start, n = pos + 2, b1
            elif b1 == 126:
                if size - pos < 4:
                    break
                start, n = pos + 4, (buf[pos + 2] << 8) | buf[pos + 3]
            else:
                if size - pos < 10:
                    break
                start, n = pos + 10, int.from_bytes(buf[pos + 2 : pos + 10], "big")
            end = start + n
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode in (_OP_TEXT, _OP_BINARY):
                if self.eio and n == 1 and buf[start] == 0x32:
                    self.transport.write(_mask(_OP_TEXT, b"3"))  # type: ignore[union-attr]
                elif self.counting:
                    self.count += 1
                    stats.delivered += 1
                    if stats.record:
                        at = buf.find(b"t=", start, end)
                        if at >= 0:
                            stats.latencies.append(time.monotonic_ns() - int(buf[at + 2 : at + 21]))
                else:
                    self._text(bytes(buf[start:end]))
            elif opcode == _OP_PING:
                self.transport.write(_mask(_OP_PONG, bytes(buf[start:end])))  # type: ignore[union-attr]
            elif opcode == _OP_CLOSE:
                self.is_closed = True
            pos = end
        if pos:
            del buf[:pos]
        if self.counting:
            stats.progress.set()

    def _text(self, payload: bytes) -> None:
        if self.on_text is not None and self.on_text(self, payload):
            return
        self.inbox.put_nowait(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.is_closed:
            self.is_closed = True
        self.stats.closed += 1
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the upgrade"))
        self.inbox.put_nowait(b"")

    # -- use -----------------------------------------------------------------------------------

    def send_text(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.transport.write(_mask(_OP_TEXT, data))  # type: ignore[union-attr]

    async def recv(self, timeout: float = 10.0) -> bytes:
        payload = await asyncio.wait_for(self.inbox.get(), timeout)
        if not payload and self.is_closed:
            raise ConnectionError("socket closed")
        return payload

    async def recv_until(self, needle: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            payload = await self.recv(max(0.01, deadline - time.monotonic()))
            if needle in payload:
                return payload

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with _suppress():
                self.transport.write(_mask(_OP_CLOSE, struct.pack("!H", 1000)))
            self.transport.close()


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return True


async def connect(stats: Stats, url: str, timeout: float = 30.0) -> WSProtocol:
    """Open `ws://host:port/path` and wait for the upgrade."""
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: WSProtocol(stats, hostport, "/" + path), host, int(port)),
        timeout,
    )
    await asyncio.wait_for(protocol.opened, timeout)
    return protocol
