"""The unified WebSocket: subscribe/resume, patterns, history, errors, slow clients."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest

from tests.support import GatewayClient, loopback_message


async def test_welcome_ping(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    welcome = ws.frames[0]
    assert welcome["op"] == "welcome" and welcome["version"] == 1
    assert welcome["dialects"] == ["loopback"]
    await ws.send("ping", ref="p1")
    assert await ws.reply("pong", "p1") == {"op": "pong", "ref": "p1"}
    await ws.close()


async def test_live_events_reach_subscribers(gateway: GatewayClient, conversation: str) -> None:
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    subscribed = await ws.subscribe(conv)
    assert subscribed["seq"] == 0
    await gateway.ingest("loopback", [loopback_message(conversation, n) for n in (1, 2, 3)])
    events = await ws.wait_events(3, conv)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[0]["content"] == {"kind": "text", "text": "text 1"}
    await ws.close()


async def test_resume_after_socket_drop_has_no_gap_and_no_duplicate(
    gateway: GatewayClient, conversation: str
) -> None:
    conv = f"loopback:{conversation}"
    first = await gateway.ws()
    await first.subscribe(conv)
    await gateway.ingest("loopback", [loopback_message(conversation, n) for n in (1, 2, 3)])
    seen = await first.wait_events(3, conv)
    first.ws._response.connection.transport.abort()  # type: ignore[union-attr]  # a dropped link
    await asyncio.gather(
        *(gateway.ingest("loopback", loopback_message(conversation, n)) for n in (4, 5))
    )
    second = await gateway.ws()
    resumed = await second.subscribe(conv, since=seen[-1]["seq"])
    assert resumed["seq"] == 3
    ingest_more = asyncio.create_task(
        gateway.ingest("loopback", [loopback_message(conversation, n) for n in range(6, 30)])
    )
    await second.wait_events(26, conv)
    await ingest_more
    await asyncio.sleep(0.05)
    assert [e["seq"] for e in second.events(conv)] == list(range(4, 30))
    await second.close()


async def test_pattern_subscriptions(gateway: GatewayClient, conversation: str) -> None:
    ws = await gateway.ws()
    frame = await ws.subscribe("loopback:*")
    assert frame["seq"] == 0
    await gateway.ingest(
        "loopback",
        [
            loopback_message(f"{conversation}a", 1),
            loopback_message(f"{conversation}b", 1),
            loopback_message(f"{conversation}a", 2),
        ],
    )
    events = await ws.wait_events(3)
    per_conversation = sorted((e["conversation_id"][-1], e["seq"]) for e in events)
    assert per_conversation == [("a", 1), ("a", 2), ("b", 1)]  # seq order holds per conversation
    assert [e["seq"] for e in events if e["conversation_id"].endswith("a")] == [1, 2]
    await ws.send("unsubscribe", conversation="loopback:*", ref="u")
    assert (await ws.reply("unsubscribed", "u"))["conversation"] == "loopback:*"
    await gateway.ingest("loopback", [loopback_message(f"{conversation}a", 3)])
    await ws.send("ping", ref="after")
    await ws.reply("pong", "after")
    assert len(ws.events()) == 3
    await ws.close()


async def test_history(gateway: GatewayClient, conversation: str) -> None:
    conv = f"loopback:{conversation}"
    await gateway.ingest("loopback", [loopback_message(conversation, n) for n in range(1, 8)])
    ws = await gateway.ws()
    await ws.send("history", conversation=conv, limit=3, ref="h1")
    page = await ws.reply("history", "h1")
    assert [e["seq"] for e in page["events"]] == [5, 6, 7] and page["has_more"] is True
    await ws.send("history", conversation=conv, before=5, limit=10, ref="h2")
    page = await ws.reply("history", "h2")
    assert [e["seq"] for e in page["events"]] == [1, 2, 3, 4] and page["has_more"] is False
    await ws.close()


@pytest.mark.parametrize(
    ("frame", "code", "path"),
    [
        ("{nope", "MALFORMED_JSON", None),
        ('{"op": "dance"}', "INVALID_REQUEST", "$.op"),
        ('{"ref": "r", "op": "subscribe"}', "INVALID_REQUEST", None),
        ('{"ref": "r", "op": "subscribe", "conversation": 5}', "INVALID_REQUEST", "$.conversation"),
        (
            '{"ref": "r", "op": "subscribe", "conversation": "loopback:*", "since": 3}',
            "INVALID_REQUEST",
            "$.since",
        ),
        (
            '{"ref": "r", "op": "subscribe", "conversation": "x", "since": -1}',
            "INVALID_REQUEST",
            "$.since",
        ),
        (
            '{"ref": "r", "op": "history", "conversation": "x", "limit": 0}',
            "INVALID_REQUEST",
            "$.limit",
        ),
        (
            '{"ref": "r", "op": "history", "conversation": "loopback:*"}',
            "INVALID_REQUEST",
            "$.conversation",
        ),
        (
            '{"ref": "r", "op": "send", "conversation": "x", "content": {"kind": "text"}}',
            "INVALID_REQUEST",
            "$.content",
        ),
        (
            '{"ref": "r", "op": "send", "conversation": "x", "content": {"kind": "image"}}',
            "INVALID_REQUEST",
            None,
        ),
        ("[1, 2]", "INVALID_REQUEST", "$"),
    ],
)
async def test_every_bad_frame_gets_an_error(
    gateway: GatewayClient, frame: str, code: str, path: str | None
) -> None:
    ws = await gateway.ws()
    await ws.send_raw(frame)
    error = await ws.wait_for(lambda f: f["op"] == "error")
    assert error["code"] == code, error
    assert error["message"]
    if path is not None:
        assert error["path"] == path
    if '"ref": "r"' in frame:
        assert error["ref"] == "r"
    await ws.send("ping", ref="still-alive")
    await ws.reply("pong", "still-alive")
    await ws.close()


async def test_binary_and_oversize_frames(make_gateway: Any) -> None:
    gateway: GatewayClient = await make_gateway(ws_max_frame_bytes=1024)
    ws = await gateway.ws()
    await ws.ws.send_bytes(b'{"op": "ping"}')
    error = await ws.wait_for(lambda f: f["op"] == "error")
    assert error["code"] == "INVALID_REQUEST"
    await ws.send_raw('{"op": "ping", "ref": "' + "x" * 2000 + '"}')
    async with asyncio.timeout(5):
        await ws._reader
    assert ws.ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def _evictions(gateway: GatewayClient) -> float:
    async with gateway.client.get("/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("gateway_ws_evictions_total "):
                return float(line.split()[1])
    return 0.0


async def test_slow_reader_is_evicted_and_others_are_not_held_up(
    make_gateway: Any, conversation: str
) -> None:
    gateway: GatewayClient = await make_gateway(ws_send_queue=64)
    conv = f"loopback:{conversation}"
    fast = await gateway.ws()
    await fast.subscribe(conv)
    evictions = await _evictions(gateway)
    # A client that subscribes and then never reads: a raw socket with a tiny receive buffer.
    host, port = gateway.client.server.host, gateway.client.server.port
    raw = socket.socket()
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(raw, (host, port))
        await loop.sock_sendall(
            raw,
            (
                f"GET /v1/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        payload = f'{{"op":"subscribe","conversation":"{conv}"}}'.encode()
        await loop.sock_sendall(raw, bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        await asyncio.sleep(0.1)
        big = "x" * 8000
        sent = 0
        # Kernel buffers absorb a few MB first: keep ingesting until the gateway gives up on it.
        while await _evictions(gateway) == evictions:
            assert sent < 8000, "the stuck reader was never evicted"
            status, _ = await gateway.ingest(
                "loopback",
                [loopback_message(conversation, n, text=big) for n in range(sent + 1, sent + 21)],
            )
            assert status == 202
            sent += 20
        events = await fast.wait_events(sent, conv, timeout=30)
        assert [e["seq"] for e in events] == list(range(1, sent + 1))
    finally:
        raw.close()
    await fast.close()


async def test_a_command_cut_off_by_a_lost_socket_still_acts_once_per_ref(
    aiohttp_client: Any,
) -> None:
    """A socket lost while its `send` is at the platform: the command runs to its end anyway,
    so the same ref re-sent on a new socket gets the stored answer and the platform sees the
    message once (cancelled with its socket, it acted again)."""
    from gateway.config import Settings
    from gateway.demo import setup_demo
    from gateway.web.app import create_app

    app = create_app(Settings(dialects=["loopback"], auth="none"))
    setup_demo(app, pace=0.1)
    gateway = GatewayClient(await aiohttp_client(app))
    first = await gateway.ws()
    await first.send("start", dialect="loopback", participant={"from": "ana"}, ref="s1")
    conversation = (await first.reply("started", "s1"))["conversation"]
    rounds = 12
    for n in range(rounds):
        frame = {"conversation": conversation, "content": {"kind": "text", "text": f"cut {n}"}}
        await first.send("send", ref=f"r{n}", **frame)
        await asyncio.sleep(0.001 * n)  # somewhere on its way to the platform
        await first.ws.close()
        first = await gateway.ws()
        await first.send("send", ref=f"r{n}", **frame)
        assert (await first.reply("ack", f"r{n}"))["op"] == "ack"
    await asyncio.sleep(0.5)  # a second copy, if any, would be in the log by now
    status, body = await gateway.get(f"/v1/conversations/{conversation}/events", since=0)
    assert status == 200 and not body["has_more"]
    texts = [e["content"]["text"] for e in body["events"] if e["type"] == "message"]
    for n in range(rounds):
        assert texts.count(f"cut {n}") == 1, texts
