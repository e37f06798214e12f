"""Genesys end to end: a frontend on the unified WebSocket (`/v1/ws`) drives a GMS chat on the
emulator, through the sessions layer, on both hub engines (memory and Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.genesys.emulator import Emulator
from tests.support import GatewayClient, WsClient

OPTIONS = {
    "poll_interval_s": "0.02",
    "backoff_s": "0.01",
    "backoff_max_s": "0.05",
    "max_attempts": "6",
}


@pytest.fixture
async def gms(aiohttp_server: Callable[..., Any]) -> tuple[Emulator, TestServer]:
    emulator = Emulator(service="support")
    server: TestServer = await aiohttp_server(emulator.app)
    return emulator, server


@pytest.fixture
async def gateway(
    make_gateway: Callable[..., Any], gms: tuple[Emulator, TestServer]
) -> GatewayClient:
    emulator, server = gms
    url = str(server.make_url(emulator.path))
    client: GatewayClient = await make_gateway(
        dialects=["genesys"], dialect_settings={"genesys": {"url": url, **OPTIONS}}
    )
    return client


def participant() -> dict[str, str]:
    """A participant of this test alone (start refs are scoped per participant, and the Redis
    engine is shared by the whole suite)."""
    return {"from": f"bob-{uuid.uuid4().hex[:10]}", "from_type": "name", "name": "Bob"}


async def start(ws: WsClient) -> str:
    """Start a chat; it is `queued` until the agent joins, and the caller is subscribed."""
    await ws.send("start", ref="s1", dialect="genesys", participant=participant(), subject="Refund")
    started = await ws.reply("started", "s1")
    assert (started["op"], started["status"]) == ("started", "queued"), started
    conversation = str(started["conversation"])
    assert conversation.startswith("genesys:")
    await ws.wait_for(lambda f: f["op"] == "subscribed" and f["conversation"] == conversation)
    return conversation


async def event(ws: WsClient, conversation: str, kind: str, **fields: Any) -> dict[str, Any]:
    """The first event of `kind` in `conversation` whose fields have the given values."""

    def wanted(frame: dict[str, Any]) -> bool:
        if frame["op"] != "event":
            return False
        e = frame["event"]
        return (e["conversation_id"], e["type"]) == (conversation, kind) and all(
            e.get(k) == v for k, v in fields.items()
        )

    return dict((await ws.wait_for(wanted))["event"])


def said(ws: WsClient, conversation: str) -> list[tuple[str, str]]:
    return [
        (e["sender"]["role"], e["content"].get("text", e["content"].get("url")))
        for e in ws.events(conversation)
        if e["type"] == "message"
    ]


def assert_gap_free(ws: WsClient, conversation: str) -> None:
    events = ws.events(conversation)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)


def chat_of(conversation: str) -> str:
    return conversation.split(":", 1)[1]


async def test_start_agent_messages_in_order_and_the_echo_once(
    gateway: GatewayClient, gms: tuple[Emulator, TestServer]
) -> None:
    emulator, _ = gms
    ws = await gateway.ws()
    conversation = await start(ws)
    chat = chat_of(conversation)
    assert emulator.sessions[chat].form["subject"] == "Refund"
    await event(ws, conversation, "status", status="active")  # queued → active on the join
    statuses = [e["status"] for e in ws.events(conversation) if e["type"] == "status"]
    assert statuses == ["queued", "active"]

    for n in range(1, 4):
        await emulator.agent_says(chat, f"agent {n}")
    await event(ws, conversation, "message", content={"kind": "text", "text": "agent 3"})
    assert said(ws, conversation) == [
        ("agent", "agent 1"),
        ("agent", "agent 2"),
        ("agent", "agent 3"),
    ]

    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hello"}
    )
    ack = await ws.reply("ack", "m1")
    assert ack["op"] == "ack", ack
    (entry,) = [
        e
        for e in emulator.sessions[chat].transcript
        if e["type"] == "Message" and e["from"]["type"] == "Client"
    ]
    assert entry["text"] == "hello"
    assert ack["id"] == f"{conversation}/{entry['index']}"  # the id the poll's copy has
    # (the own message is published with the ack, so an agent message GMS wrote between the
    # last poll and the send shows after it: wait for the answer before sending again)
    await event(ws, conversation, "message", content={"kind": "text", "text": "echo: hello"})
    await ws.send(
        "send",
        ref="m2",
        conversation=conversation,
        content={"kind": "url", "url": "https://example.com/order/7"},
    )
    assert (await ws.reply("ack", "m2"))["op"] == "ack"
    await event(
        ws,
        conversation,
        "message",
        content={"kind": "text", "text": "echo: https://example.com/order/7"},
    )
    assert [f["message"] for f in emulator.ops(chat, "send")] == [
        "hello",
        "https://example.com/order/7",
    ]
    assert said(ws, conversation) == [
        ("agent", "agent 1"),
        ("agent", "agent 2"),
        ("agent", "agent 3"),
        ("user", "hello"),
        ("agent", "echo: hello"),
        ("user", "https://example.com/order/7"),
        ("agent", "echo: https://example.com/order/7"),
    ]
    (mine,) = [e for e in ws.events(conversation) if e["id"] == ack["id"]]
    assert mine["seq"] == ack["seq"]
    assert_gap_free(ws, conversation)
    await ws.close()


async def test_typing_both_ways_and_no_receipts(
    gateway: GatewayClient, gms: tuple[Emulator, TestServer]
) -> None:
    emulator, _ = gms
    ws = await gateway.ws()
    conversation = await start(ws)
    chat = chat_of(conversation)
    await event(ws, conversation, "status", status="active")
    await ws.send("typing", ref="t1", conversation=conversation, active=True, preview="I wa")
    assert (await ws.reply("ack", "t1"))["op"] == "ack"
    await ws.send("typing", ref="t2", conversation=conversation, active=False)
    assert (await ws.reply("ack", "t2"))["op"] == "ack"
    assert [f.get("message") for f in emulator.ops(chat, "startTyping")] == ["I wa"]
    assert len(emulator.ops(chat, "stopTyping")) == 1
    mine = await event(ws, conversation, "typing", active=True, preview="I wa")
    assert mine["sender"]["role"] == "user"
    await event(ws, conversation, "typing", active=False)

    await emulator.agent_typing(chat)
    theirs = await event(
        ws,
        conversation,
        "typing",
        active=True,
        sender={"role": "agent", "id": "2", "name": "Anna"},  # `participantId` 2
    )
    assert theirs.get("preview") is None
    # GMS has no read receipts: the gateway refuses them before any request is made
    await ws.send("read", ref="r", conversation=conversation)
    assert (await ws.reply("ack", "r"))["code"] == "UNSUPPORTED"
    assert not [e for e in ws.events(conversation) if e["type"] == "receipt"]
    assert_gap_free(ws, conversation)
    await ws.close()


async def test_the_user_ends_it(gateway: GatewayClient, gms: tuple[Emulator, TestServer]) -> None:
    emulator, _ = gms
    ws = await gateway.ws()
    conversation = await start(ws)
    await event(ws, conversation, "status", status="active")
    await ws.send("end", ref="e", conversation=conversation)
    assert (await ws.reply("ack", "e"))["op"] == "ack"
    ended = await event(ws, conversation, "ended")
    assert (ended["reason"], ended["by"]) == ("user", "user")
    assert len(emulator.ops(chat_of(conversation), "disconnect")) == 1
    await ws.send(
        "send",
        ref="late",
        conversation=conversation,
        content={"kind": "text", "text": "still there?"},
    )
    assert (await ws.reply("ack", "late"))["code"] == "SESSION_ENDED"
    # the connector's own end, the client's ParticipantLeft and chatEnded are one `ended`
    await event(ws, conversation, "participant_left")
    assert [e["type"] for e in ws.events(conversation)].count("ended") == 1
    await ws.close()


async def test_the_agent_ends_it(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    conversation = await start(ws)
    await ws.send(
        "send", ref="b", conversation=conversation, content={"kind": "text", "text": "bye"}
    )
    assert (await ws.reply("ack", "b"))["op"] == "ack"
    ended = await event(ws, conversation, "ended")
    assert (ended["reason"], ended["by"]) == ("agent", "agent")
    kinds = [e["type"] for e in ws.events(conversation)]
    assert kinds[-2:] == ["participant_left", "ended"]
    assert_gap_free(ws, conversation)
    await ws.close()


async def test_a_dropped_vendor_link_gives_link_events_and_loses_nothing(
    gateway: GatewayClient, gms: tuple[Emulator, TestServer]
) -> None:
    emulator, _ = gms
    ws = await gateway.ws()
    conversation = await start(ws)
    chat = chat_of(conversation)
    await event(ws, conversation, "status", status="active")
    emulator.drop_connections(2)
    await emulator.agent_says(chat, "during the outage")
    restored = await event(ws, conversation, "link", state="restored")
    links = [e for e in ws.events(conversation) if e["type"] == "link"]
    assert [(e["state"], e.get("attempt")) for e in links] == [
        ("down", None),
        ("retrying", 1),
        ("retrying", 2),
        ("restored", 2),
    ]
    assert links[0]["will_retry"] is True
    assert restored["missed"] >= 1
    await event(ws, conversation, "message", content={"kind": "text", "text": "during the outage"})
    await emulator.agent_says(chat, "after it")
    await event(ws, conversation, "message", content={"kind": "text", "text": "after it"})
    assert said(ws, conversation) == [("agent", "during the outage"), ("agent", "after it")]
    assert_gap_free(ws, conversation)
    await ws.close()


async def test_what_genesys_cannot_carry_is_unsupported(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    conversation = await start(ws)
    cases = [
        {"op": "read", "conversation": conversation},
        {"op": "forward", "conversation": conversation, "destination": "billing"},
        {
            "op": "send",
            "conversation": conversation,
            "content": {"kind": "image", "url": "https://example.com/a.png"},
        },
        {
            "op": "send",
            "conversation": conversation,
            "content": {"kind": "file", "url": "https://example.com/a.pdf", "name": "a.pdf"},
        },
    ]
    for n, frame in enumerate(cases):
        await ws.send(ref=f"u{n}", **frame)  # type: ignore[arg-type]
        error = await ws.reply("error", f"u{n}")
        assert (error["op"], error["code"]) == ("error", "UNSUPPORTED"), (frame, error)
    # Recovering is the gateway's own (its history and the connector's snapshot).
    await ws.send("recover", ref="r", conversation=conversation)
    recovered = await ws.reply("recovered", "r")
    assert (recovered["op"], recovered["status"]) == ("recovered", "active")
    await ws.close()


async def test_dialects_shows_the_capabilities(gateway: GatewayClient) -> None:
    status, body = await gateway.get("/v1/dialects")
    assert status == 200
    (genesys,) = [d for d in body["dialects"] if d["name"] == "genesys"]
    assert genesys["capabilities"] == ["end", "ingest", "send", "start", "typing"]
    assert genesys["content_kinds"] == ["text", "url"]
    assert genesys["typing_preview"] is True
