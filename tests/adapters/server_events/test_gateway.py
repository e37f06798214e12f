"""End to end: a frontend on the unified WebSocket drives a server_events chat on the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.server_events.emulator import Emulator
from gateway.config import Settings
from gateway.web.app import create_app
from tests.support import GatewayClient, WsClient

PARTICIPANT = {"from": "Grace", "name": "Grace"}


@pytest.fixture
async def stack(aiohttp_server: Any, aiohttp_client: Any) -> tuple[Emulator, GatewayClient]:
    emulator = Emulator(app_id="e2e", poll_hold=0.3, agent_delay=0, greeting="Hello!")
    platform = await aiohttp_server(emulator.app)
    options = {
        "url": str(platform.make_url("/clientweb/api/v1")),
        "app_id": "e2e",
        "retry_base": "0.01",
        "retry_max": "0.04",
        "poll_timeout": "5",
    }
    settings = Settings(dialects=["server_events"], dialect_settings={"server_events": options})
    return emulator, GatewayClient(await aiohttp_client(create_app(settings)))


def texts(ws: WsClient, conversation: str) -> list[tuple[str, str]]:
    return [
        (e["sender"]["role"], e["content"]["text"])
        for e in ws.events(conversation)
        if e["type"] == "message" and e["content"]["kind"] == "text"
    ]


async def test_a_chat_through_the_unified_websocket(stack: tuple[Emulator, GatewayClient]) -> None:
    emulator, gateway = stack
    ws = await gateway.ws()
    await ws.send("start", ref="s1", dialect="server_events", participant=PARTICIPANT)
    started = await ws.reply("started", "s1")
    assert started["op"] == "started", started
    conversation = started["conversation"]
    await ws.wait_for(lambda f: f["op"] == "event" and f["event"]["type"] == "message")
    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hi"}
    )
    ack = await ws.reply("ack", "m1")
    assert ack["op"] == "ack", ack
    await ws.wait_for(
        lambda f: f["op"] == "event" and f["event"].get("content", {}).get("text") == "echo: hi"
    )
    assert texts(ws, conversation) == [("agent", "Hello!"), ("user", "hi"), ("agent", "echo: hi")]
    mine = [
        e
        for e in ws.events(conversation)
        if e["type"] == "message" and e["sender"]["role"] == "user"
    ]
    assert [e["id"] for e in mine] == [ack["id"]]  # the echo never shows a second time
    seqs = [e["seq"] for e in ws.events(conversation)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    native = conversation.split(":", 1)[1]
    assert [
        e["msg"] for e in emulator.received(native) if e["event"] == "chat_session_message"
    ] == ["hi"]
    await ws.send("typing", ref="t1", conversation=conversation, active=True)
    assert (await ws.reply("ack", "t1"))["op"] == "ack"
    await ws.send("end", ref="e1", conversation=conversation)
    assert (await ws.reply("ack", "e1"))["op"] == "ack"
    ended = await ws.wait_for(lambda f: f["op"] == "event" and f["event"]["type"] == "ended")
    assert (ended["event"]["reason"], ended["event"]["by"]) == ("user", "user")
    assert "chat_session_typing" in [e["event"] for e in emulator.received(native)]
    await ws.close()


async def test_ingest_needs_the_conversation(stack: tuple[Emulator, GatewayClient]) -> None:
    _, gateway = stack
    frame = {"event": "chat_session_message", "msg_id": "m1", "msg": "x", "timestamp": 1}
    status, body = await gateway.ingest("server_events", frame)
    assert status == 400
    assert body["error"]["code"] == "INVALID_REQUEST"
    status, body = await gateway.ingest("server_events", frame, conversation="c9")
    assert (status, body["accepted"]) == (202, 1)
    assert body["events"][0]["id"] == "server_events:c9/m1"
