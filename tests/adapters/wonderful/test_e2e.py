"""The wonderful dialect end to end: a frontend on the unified WebSocket (`/v1/ws`) drives a
session on the emulated platform through the gateway, on both hub engines."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.wonderful.emulator import GREETING, Emulator
from tests.adapters.wonderful.conftest import history_read
from tests.support import GatewayClient, WsClient

Frame = dict[str, Any]


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any], server: TestServer) -> GatewayClient:
    """The gateway with the wonderful dialect alone, pointed at the emulator (`server`)."""
    options = {
        "api_key": "test-key",
        "agent_id": "agent-uuid",
        "backoff_s": "0",
        "heartbeat_s": "5",
        "timeout_s": "5",
    }
    settings = {"url": str(server.make_url("")), **options}
    client: GatewayClient = await make_gateway(
        dialects=["wonderful"], dialect_settings={"wonderful": settings}
    )
    return client


def participant() -> dict[str, str]:
    """A participant of this test alone: start refs are scoped per participant, and the
    Redis engine is shared by the whole suite."""
    return {"from": f"e2e-{uuid.uuid4().hex[:12]}@example.com", "from_type": "email"}


async def start(ws: WsClient, ref: str = "s1") -> str:
    """Start a conversation; returns its id once `started` and its auto-subscription are in."""
    await ws.send("start", ref=ref, dialect="wonderful", participant=participant())
    started = await ws.reply("started", ref)
    assert started["op"] == "started", started
    assert started["status"] == "active"
    conversation = str(started["conversation"])
    await ws.wait_for(lambda f: f["op"] == "subscribed" and f["conversation"] == conversation)
    return conversation


def messages(ws: WsClient, conversation: str) -> list[tuple[str, str]]:
    return [
        (e["sender"]["role"], e["content"]["text"])
        for e in ws.events(conversation)
        if e["type"] == "message" and e["content"]["kind"] == "text"
    ]


async def said(ws: WsClient, conversation: str, role: str, text: str) -> Frame:
    """Wait for the message event `(role, text)`; returns the event."""
    frame = await ws.wait_for(
        lambda f: (
            f["op"] == "event"
            and f["event"]["conversation_id"] == conversation
            and f["event"]["type"] == "message"
            and (f["event"]["sender"]["role"], f["event"]["content"].get("text")) == (role, text)
        )
    )
    return dict(frame["event"])


async def event_of(ws: WsClient, conversation: str, kind: str, **fields: Any) -> Frame:
    frame = await ws.wait_for(
        lambda f: (
            f["op"] == "event"
            and f["event"]["conversation_id"] == conversation
            and f["event"]["type"] == kind
            and all(f["event"].get(k) == v for k, v in fields.items())
        )
    )
    return dict(frame["event"])


def platform_texts(emulator: Emulator, conversation: str) -> list[tuple[str, str]]:
    """The session's messages as the platform holds them, in canonical roles."""
    roles = {"customer": "user", "agent": "bot"}
    session = emulator.sessions[conversation.removeprefix("wonderful:")]
    return [(roles[m["speaker"]], m["data"]["text"]) for m in session.messages]


def assert_whole(ws: WsClient, conversation: str) -> None:
    """Seqs 1..n with no gap and no repeat, and every event id once."""
    events = ws.events(conversation)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)


async def test_a_conversation_from_start_to_the_agents_goodbye(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    ws = await gateway.ws()
    conversation = await start(ws)
    sid = conversation.removeprefix("wonderful:")
    await said(ws, conversation, "bot", GREETING)

    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hello"}
    )
    ack = await ws.reply("ack", "m1")
    assert ack["op"] == "ack", ack
    hello = emulator.sessions[sid].messages[1]
    assert (hello["speaker"], hello["data"]["text"]) == ("customer", "hello")
    assert ack["id"] == f"{conversation}/{hello['eventId']}"
    user = await said(ws, conversation, "user", "hello")
    assert (ack["seq"], ack["id"]) == (user["seq"], user["id"])
    await said(ws, conversation, "bot", "echo: hello")

    for n in range(3):
        await emulator.agent_says(sid, f"note {n}")
    await said(ws, conversation, "bot", "note 2")

    await ws.send(
        "send", ref="m2", conversation=conversation, content={"kind": "text", "text": "bye"}
    )
    assert (await ws.reply("ack", "m2"))["op"] == "ack"
    ended = await event_of(ws, conversation, "ended")
    assert ended["reason"] == "completed"  # `communication_ended` says no more

    expected = [
        ("bot", GREETING),
        ("user", "hello"),
        ("bot", "echo: hello"),
        *[("bot", f"note {n}") for n in range(3)],
        ("user", "bye"),
        ("bot", "Goodbye!"),
    ]
    assert messages(ws, conversation) == expected == platform_texts(emulator, conversation)
    assert emulator.sessions[sid].received == [
        {"type": "message", "text": "hello"},
        {"type": "message", "text": "bye"},
    ]
    kinds = [e["type"] for e in ws.events(conversation)]
    assert kinds[:2] == ["status", "link"]
    assert "typing" not in kinds and "read" not in kinds  # the platform has neither
    assert_whole(ws, conversation)  # the echo of each user message shows once
    await ws.close()


@pytest.mark.parametrize(
    ("command", "reason"),
    [({"op": "end"}, "user"), ({"op": "forward", "destination": "billing"}, "forwarded")],
)
async def test_the_user_ends_or_forwards_it(
    gateway: GatewayClient, emulator: Emulator, command: Frame, reason: str
) -> None:
    ws = await gateway.ws()
    conversation = await start(ws)
    await ws.send(ref="c", conversation=conversation, **command)
    assert (await ws.reply("ack", "c"))["op"] == "ack"
    ended = await event_of(ws, conversation, "ended")
    assert (ended["reason"], ended["by"]) == (reason, "user")
    assert any(r.path.endswith(f"/{command['op']}") for r in emulator.received)
    await ws.send(
        "send", ref="late", conversation=conversation, content={"kind": "text", "text": "?"}
    )
    assert (await ws.reply("ack", "late"))["code"] == "SESSION_ENDED"
    await ws.close()


async def test_a_vendor_reconnect_gives_link_events_and_loses_nothing(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    ws = await gateway.ws()
    conversation = await start(ws)
    sid = conversation.removeprefix("wonderful:")
    await said(ws, conversation, "bot", GREETING)
    await history_read(emulator)  # the greeting's turn is over: the outage's line is missed

    emulator.hold_connections()  # the platform restarts: one refused connect, then a wait
    await emulator.drop_connections(refuse_next=1)
    await emulator.agent_says(sid, "during the outage")
    emulator.release_connections()
    restored = await event_of(ws, conversation, "link", state="restored")
    assert restored["missed"] == 1
    links = [
        (e["state"], e.get("will_retry"), e.get("attempt"))
        for e in ws.events(conversation)
        if e["type"] == "link"
    ]
    assert links == [
        ("up", None, None),
        ("down", True, None),
        ("retrying", None, 1),
        ("retrying", None, 2),
        ("restored", None, None),
    ]

    await said(ws, conversation, "bot", "during the outage")
    await emulator.agent_says(sid, "after it")
    await ws.send(
        "send", ref="m", conversation=conversation, content={"kind": "text", "text": "hi"}
    )
    assert (await ws.reply("ack", "m"))["op"] == "ack"
    await said(ws, conversation, "bot", "echo: hi")
    assert (
        messages(ws, conversation)
        == platform_texts(emulator, conversation)
        == [
            ("bot", GREETING),
            ("bot", "during the outage"),
            ("bot", "after it"),
            ("user", "hi"),
            ("bot", "echo: hi"),
        ]
    )
    assert_whole(ws, conversation)
    await ws.close()


async def test_a_media_send_whose_answer_is_lost_is_delivered_once(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    ws = await gateway.ws()
    conversation = await start(ws)
    sid = conversation.removeprefix("wonderful:")
    emulator.lose_answers(1)  # carried out, then answered 502: the connector retries
    image = {"kind": "image", "url": "https://x/1.png"}
    await ws.send("send", ref="m", conversation=conversation, content=image)
    ack = await ws.reply("ack", "m")
    assert ack["op"] == "ack", ack
    await emulator.agent_says(sid, "nice picture")  # the turn's end: the history is read
    await said(ws, conversation, "bot", "nice picture")
    assert emulator.sessions[sid].received == [{"type": "image", "mediaUrl": "https://x/1.png"}]
    images = [e for e in ws.events(conversation) if e["type"] == "message" and e["id"] == ack["id"]]
    assert [(e["sender"]["role"], e["content"]) for e in images] == [("user", image)]
    assert_whole(ws, conversation)
    await ws.close()


async def test_what_the_platform_cannot_carry_is_unsupported(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    conversation = await start(ws)
    cases: list[Frame] = [
        {"op": "typing", "active": True},
        {"op": "read"},
        {"op": "send", "content": {"kind": "audio", "url": "https://x/a.ogg"}},
        {"op": "send", "content": {"kind": "location", "latitude": 1.0, "longitude": 2.0}},
        {"op": "send", "content": {"kind": "url", "url": "https://x"}},
    ]
    for n, frame in enumerate(cases):
        await ws.send(ref=f"u{n}", conversation=conversation, **frame)
        error = await ws.reply("error", f"u{n}")
        assert (error["op"], error["code"]) == ("error", "UNSUPPORTED"), (frame, error)
    await ws.send(
        "send",
        ref="ok",
        conversation=conversation,
        content={"kind": "image", "url": "https://x/y.png"},
    )
    assert (await ws.reply("ack", "ok"))["op"] == "ack"  # what it can carry still goes
    await ws.close()


async def test_dialects_shows_the_capabilities(gateway: GatewayClient) -> None:
    status, body = await gateway.get("/v1/dialects")
    assert status == 200
    assert body["dialects"] == [
        {
            "name": "wonderful",
            "capabilities": ["end", "forward", "ingest", "recover", "send", "start"],
            "content_kinds": ["file", "image", "text"],
            "typing_preview": False,
        }
    ]
