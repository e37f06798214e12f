"""visitor_widget end to end: a frontend on the unified WebSocket drives a visitor session on the
emulated platform through the gateway (both hub engines, the emulator served in-process)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.visitor_widget.emulator import Emulator
from gateway.web.keys import SESSIONS
from tests.support import GatewayClient, WsClient

KEY = "e2e-key"
FAST = {"backoff_s": "0.01", "backoff_max_s": "0.05", "timeout_s": "2", "max_attempts": "50"}


@pytest.fixture
def platform() -> Emulator:
    return Emulator(key=KEY, agent_delay=0, typing_delay=0, reply_delay=0, echo_delay=0)


@pytest.fixture
async def server(platform: Emulator, aiohttp_server: Callable[..., Any]) -> TestServer:
    srv: TestServer = await aiohttp_server(platform.app)
    return srv


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any], server: TestServer) -> GatewayClient:
    settings = {"url": str(server.make_url("")), "key": KEY, **FAST}
    client: GatewayClient = await make_gateway(
        dialects=["visitor_widget"], dialect_settings={"visitor_widget": settings}
    )
    return client


def participant() -> dict[str, str]:
    """A visitor of this test alone (start refs are scoped per participant `from`)."""
    email = f"v{uuid.uuid4().hex[:12]}@example.com"
    return {"from": email, "from_type": "email", "name": "Vera"}


async def start(ws: WsClient, ref: str = "s1") -> tuple[str, dict[str, Any]]:
    await ws.send("start", ref=ref, dialect="visitor_widget", participant=participant())
    started = await ws.reply("started", ref)
    assert started["op"] == "started", started
    conversation = str(started["conversation"])
    await ws.wait_for(lambda f: f["op"] == "subscribed" and f["conversation"] == conversation)
    return conversation, started


def of_type(ws: WsClient, conversation: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in ws.events(conversation) if e["type"] == kind]


def texts(ws: WsClient, conversation: str) -> list[tuple[str, str]]:
    return [
        (e["sender"]["role"], e["content"]["text"])
        for e in of_type(ws, conversation, "message")
        if e["content"]["kind"] == "text"
    ]


async def event(ws: WsClient, conversation: str, kind: str, **fields: Any) -> dict[str, Any]:
    frame = await ws.wait_for(
        lambda f: (
            f["op"] == "event"
            and f["event"]["conversation_id"] == conversation
            and f["event"]["type"] == kind
            and all(f["event"].get(k) == v for k, v in fields.items())
        )
    )
    return dict(frame["event"])


async def said(ws: WsClient, conversation: str, text: str) -> None:
    await event(ws, conversation, "message", content={"kind": "text", "text": text})


def assert_gapless(ws: WsClient, conversation: str) -> None:
    """Seqs 1..n without gap or repeat, and no event id twice."""
    events = ws.events(conversation)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)


def chat_of(platform: Emulator, conversation: str) -> Any:
    return platform.chats[conversation.split(":", 1)[1]]


async def test_a_conversation_end_to_end(gateway: GatewayClient, platform: Emulator) -> None:
    ws = await gateway.ws()
    conversation, started = await start(ws)
    assert started["status"] == "queued"  # the chat waits for an agent
    chat = chat_of(platform, conversation)
    joined = await event(ws, conversation, "participant_joined")
    assert (joined["participant"]["role"], joined["participant"]["name"]) == ("agent", "Emma")
    await event(ws, conversation, "status", status="active")

    # The user's message reaches the platform, is acked with its event id, shows once.
    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hello"}
    )
    ack = await ws.reply("ack", "m1")
    assert ack["op"] == "ack", ack
    (row,) = [r for r in chat.messages if r["subType"] == "contact"]
    assert row["content"]["text"] == "hello"
    assert ack["id"] == f"{conversation}/{row['id']}"
    await said(ws, conversation, "echo: hello")

    # The scripted agent's messages arrive in order.
    for text in ("first", "second", "third"):
        await platform.agent_says(chat.id, text)
    await said(ws, conversation, "third")
    assert texts(ws, conversation) == [
        ("user", "hello"),
        ("agent", "echo: hello"),
        ("agent", "first"),
        ("agent", "second"),
        ("agent", "third"),
    ]
    (mine,) = [e for e in of_type(ws, conversation, "message") if e["sender"]["role"] == "user"]
    assert (mine["id"], mine["seq"]) == (ack["id"], ack["seq"])  # the echo was not added

    # Typing and receipts, both ways where the platform has them.
    assert [e["active"] for e in of_type(ws, conversation, "typing")] == [True, False]
    assert {e["sender"]["role"] for e in of_type(ws, conversation, "typing")} == {"agent"}
    await ws.send("typing", ref="t1", conversation=conversation, active=True, preview="He")
    assert (await ws.reply("ack", "t1"))["op"] == "ack"
    assert chat.typing == {"is": True, "text": "He"}
    await ws.send("read", ref="r1", conversation=conversation)
    assert (await ws.reply("ack", "r1"))["op"] == "ack"
    receipt = await event(ws, conversation, "receipt")
    assert (receipt["status"], receipt["sender"]["role"]) == ("read", "user")
    assert receipt["up_to"] == chat.last_read_at

    # "bye": the agent answers and closes the chat; it arrives as `ended`.
    await ws.send(
        "send", ref="m2", conversation=conversation, content={"kind": "text", "text": "bye"}
    )
    assert (await ws.reply("ack", "m2"))["op"] == "ack"
    ended = await event(ws, conversation, "ended")
    assert (ended["reason"], ended["by"]) == ("agent", "agent")
    assert texts(ws, conversation)[-2:] == [("user", "bye"), ("agent", "echo: bye")]
    assert_gapless(ws, conversation)
    sent = [d["content"]["text"] for name, d in platform.received if name == "chat.message"]
    assert sent == ["hello", "bye"]
    await ws.close()


async def test_the_user_ends_it(gateway: GatewayClient, platform: Emulator) -> None:
    ws = await gateway.ws()
    conversation, _ = await start(ws)
    await ws.send("end", ref="e", conversation=conversation)
    assert (await ws.reply("ack", "e"))["op"] == "ack"
    ended = await event(ws, conversation, "ended")
    assert (ended["reason"], ended["by"]) == ("user", "user")
    assert chat_of(platform, conversation).status == "closed"
    assert_gapless(ws, conversation)
    await ws.close()


async def test_core_recover_right_after_ended_says_completed(
    gateway: GatewayClient, platform: Emulator, monkeypatch: pytest.MonkeyPatch, hub_url: str
) -> None:
    if hub_url.startswith("memory://"):
        pytest.skip("the memory store keeps the owner's own record object: no window there")
    store = gateway.client.app[SESSIONS].store
    save = store.save

    async def slow_save(record: Any, ttl: float | None = None) -> None:
        if record.status == "ended":
            await asyncio.sleep(0.2)  # a slow store write (what is tested, not a wait)
        await save(record, ttl)

    monkeypatch.setattr(store, "save", slow_save)
    ws = await gateway.ws()
    conversation, _ = await start(ws)
    await ws.send("end", ref="e", conversation=conversation)
    await event(ws, conversation, "ended")
    await ws.send("recover", ref="r", conversation=conversation)
    recovered = await ws.reply("recovered", "r")
    await ws.close()
    assert recovered["status"] == "completed"


async def test_vendor_link_drop_gives_link_events_and_loses_nothing(
    gateway: GatewayClient, platform: Emulator
) -> None:
    ws = await gateway.ws()
    conversation, _ = await start(ws)
    chat = chat_of(platform, conversation)
    await event(ws, conversation, "status", status="active")
    platform.refuse_connections = True
    await platform.drop_connections()
    down = await event(ws, conversation, "link", state="down")
    assert down["will_retry"] is True
    await event(ws, conversation, "link", state="retrying", attempt=2)
    await platform.agent_says(chat.id, "said while you were away")
    await ws.send(
        "send", ref="q", conversation=conversation, content={"kind": "text", "text": "queued"}
    )  # waits for the link
    platform.refuse_connections = False
    restored = await event(ws, conversation, "link", state="restored")
    assert restored["missed"] == 1
    assert (await ws.reply("ack", "q"))["op"] == "ack"
    await said(ws, conversation, "echo: queued")
    assert ("agent", "said while you were away") in texts(ws, conversation)
    assert [t for t in texts(ws, conversation) if t[0] == "user"] == [("user", "queued")]
    assert sum(e["status"] == "active" for e in of_type(ws, conversation, "status")) == 1
    assert_gapless(ws, conversation)
    await ws.close()


async def test_recover_from_another_socket(gateway: GatewayClient, platform: Emulator) -> None:
    ws = await gateway.ws()
    conversation, _ = await start(ws)
    await ws.send("send", ref="m", conversation=conversation, content={"kind": "text", "text": "a"})
    await said(ws, conversation, "echo: a")
    await ws.close()
    other = await gateway.ws()
    await other.send("recover", ref="r", conversation=conversation)
    recovered = await other.reply("recovered", "r")
    assert recovered["status"] == "active"
    assert [e["content"]["text"] for e in recovered["events"] if e["type"] == "message"] == [
        "a",
        "echo: a",
    ]
    await other.subscribe(conversation, since=recovered["last_seq"])
    await platform.agent_says(chat_of(platform, conversation).id, "anything else?")
    await said(other, conversation, "anything else?")
    await other.close()


async def test_what_the_platform_cannot_carry_is_unsupported(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    conversation, _ = await start(ws)
    cases = [
        {"op": "forward", "conversation": conversation, "destination": "sales"},
        {
            "op": "send",
            "conversation": conversation,
            "content": {"kind": "audio", "url": "https://x/a.ogg"},
        },
        {
            "op": "send",
            "conversation": conversation,
            "content": {"kind": "location", "latitude": 1.0, "longitude": 2.0},
        },
        {
            "op": "send",
            "conversation": conversation,
            "content": {"kind": "action", "action": "end"},
        },
    ]
    for n, frame in enumerate(cases):
        await ws.send(ref=f"u{n}", **frame)  # type: ignore[arg-type]
        error = await ws.reply("error", f"u{n}")
        assert (error["op"], error["code"]) == ("error", "UNSUPPORTED"), (frame, error)
    await ws.close()


async def test_dialects_lists_the_capabilities(gateway: GatewayClient) -> None:
    status, body = await gateway.get("/v1/dialects")
    assert status == 200
    (described,) = [d for d in body["dialects"] if d["name"] == "visitor_widget"]
    assert described["capabilities"] == sorted(
        ["ingest", "start", "recover", "send", "typing", "read", "end", "files"]
    )
    assert described["content_kinds"] == ["file", "image", "text", "url"]
    assert described["typing_preview"] is True


async def test_a_lazily_created_chat(gateway: GatewayClient, platform: Emulator) -> None:
    """The platform creates the chat with the first message: the conversation is named by
    the visitor and keeps that name once the chat exists."""
    platform.lazy_chat = True
    ws = await gateway.ws()
    conversation, started = await start(ws)
    assert not platform.chats
    (visitor,) = [v for v in platform.visitors.values() if v["chatId"] is None]
    assert conversation == f"visitor_widget:{visitor['id']}"
    assert started["status"] == "active"  # no chat status yet: the gateway's default
    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hello"}
    )
    ack = await ws.reply("ack", "m1")
    assert ack["op"] == "ack", ack
    chat = platform.chat_of(visitor["id"])
    assert ack["id"] == f"{conversation}/{chat.messages[0]['id']}"
    await said(ws, conversation, "echo: hello")
    await event(ws, conversation, "participant_joined")
    assert texts(ws, conversation) == [("user", "hello"), ("agent", "echo: hello")]
    assert_gapless(ws, conversation)
    await ws.close()


async def test_a_timeless_frame_posted_twice_is_stored_once(gateway: GatewayClient) -> None:
    chat = f"c{uuid.uuid4().hex[:10]}"
    body = {"event": "chat.agent_typing", "data": {"chatId": chat, "typing": {"is": True}}}
    first = await gateway.ingest("visitor_widget", body)
    again = await gateway.ingest("visitor_widget", body)
    assert (first[0], first[1]["accepted"], first[1]["duplicates"]) == (202, 1, 0)
    assert (again[0], again[1]["accepted"], again[1]["duplicates"]) == (202, 0, 1)
