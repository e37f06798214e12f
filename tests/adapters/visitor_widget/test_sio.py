"""The Engine.IO v3 / Socket.IO v2 subset: packet tables, and the client against real servers."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.visitor_widget import sio
from adapters.visitor_widget.emulator import Emulator

PARSED = [
    ('0{"sid":"a","pingInterval":25000}', ("0", '{"sid":"a","pingInterval":25000}')),
    ("2", ("2", "")),
    ("3probe", ("3", "probe")),
    ("40", ("4", sio.Packet("0"))),
    ("41", ("4", sio.Packet("1"))),
    (
        '42["chat.agent_typing",{"chatId":"c1"}]',
        ("4", sio.Packet("2", ["chat.agent_typing", {"chatId": "c1"}])),
    ),
    ('4217["chat.message",{}]', ("4", sio.Packet("2", ["chat.message", {}], 17))),
    ("4317[null,{}]", ("4", sio.Packet("3", [None, {}], 17))),
    ('42/chat,5["x"]', ("4", sio.Packet("2", ["x"], 5))),
    ('44{"message":"nope"}', ("4", sio.Packet("4", {"message": "nope"}))),
]


@pytest.mark.parametrize(("text", "parsed"), PARSED)
def test_parse(text: str, parsed: tuple[str, Any]) -> None:
    assert sio.parse(text) == parsed


@pytest.mark.parametrize("text", ["", "4", "42[", "43x{"])
def test_parse_errors(text: str) -> None:
    with pytest.raises(sio.SioError):
        sio.parse(text)


def test_frames() -> None:
    assert sio.event_frame("chat.read", {}) == '42["chat.read",{}]'
    assert sio.event_frame("chat.read", {}, ack_id=3) == '423["chat.read",{}]'
    # What socket.io-client 2 sends for the SDK's `send("chat.read", null)` (no callback: its
    # undefined slot kept, serialised as null, and no ack id).
    assert sio.event_frame("chat.read", None, None) == '42["chat.read",null,null]'
    assert sio.ack_frame(3, None, {"id": "m1"}) == '433[null,{"id":"m1"}]'
    assert (
        sio.socket_url("https://h.example/") == "wss://h.example/socket/?EIO=3&transport=websocket"
    )
    assert sio.socket_url("http://h:1", "/io") == "ws://h:1/io/?EIO=3&transport=websocket"


async def test_client_pings_and_refused_emits(http: aiohttp.ClientSession) -> None:
    emulator = Emulator(key="k", ping_interval=0.02, ping_timeout=1)
    async with TestServer(emulator.app) as server:
        client = await sio.Client.connect(http, str(server.make_url("")))
        try:
            # Several ping rounds pass and the link stays up.
            for _ in range(3):
                assert await client.call("chat.message", {}) == [
                    {
                        "message": "Connection not initialized",
                        "type": "auth_error",
                        "event": "chat.message",
                        "code": 403,
                    }
                ]
            assert not client.closed
        finally:
            await client.close()
        with pytest.raises(sio.Disconnected):
            await client.receive()


async def test_emulator_wants_engine_io_3(http: aiohttp.ClientSession) -> None:
    async with (
        TestServer(Emulator().app) as server,
        http.get(server.make_url("/socket/?EIO=4&transport=websocket")) as r,
    ):
        assert r.status == 400


async def test_silent_server_times_out(http: aiohttp.ClientSession) -> None:
    """A server that never answers pings: the client closes the link after pingTimeout."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('0{"sid":"s","upgrades":[],"pingInterval":20,"pingTimeout":20}')
        await ws.send_str("40")
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/socket/", handler)
    async with TestServer(app) as server:
        client = await sio.Client.connect(http, str(server.make_url("")))
        async with asyncio.timeout(5):
            with pytest.raises(sio.Disconnected):
                await client.receive()
        with pytest.raises(sio.Disconnected):
            await client.call("chat.read", {})
        await client.close()


async def test_bad_handshake(http: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello")
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/socket/", handler)
    async with TestServer(app) as server:
        with pytest.raises(sio.SioError):
            await sio.Client.connect(http, str(server.make_url("")))


async def test_emit_without_ack_and_connect_without_id(http: aiohttp.ClientSession) -> None:
    """`emit` sends no ack id (nothing answers); the emulator refuses a `visitor.connect`
    without `id`, which the vendor SDK always sends (null for a new visitor)."""
    emulator = Emulator(key="k")
    async with TestServer(emulator.app) as server:
        client = await sio.Client.connect(http, str(server.make_url("")))
        try:
            (err,) = await client.call("visitor.connect", {"key": "k"})
            assert (err["code"], err["type"]) == (400, "bad_request")
            err, connected = await client.call("visitor.connect", {"key": "k", "id": None})
            assert err is None
            assert connected["visitor"]["id"]
            await client.emit("chat.read", None, None)
            # an ack'ed emit after it comes back only once the read was handled
            await client.call("chat.close", None)
        finally:
            await client.close()
    assert [p for p in emulator.packets if p[0] != "visitor.connect"] == [
        ("chat.read", [None, None], False),
        ("chat.close", [None], True),
    ]
