"""The signalwire dialect end to end: a frontend on the unified WebSocket (`/v1/ws`) drives a
conversation on the emulator through the gateway, on both hub engines (memory and Redis).

Every test uses its own agent address (the conversation id) and participant (start refs are
scoped per participant): the Redis engine is shared by the whole suite.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.signalwire.emulator import Emulator
from adapters.signalwire.native import Cursor, encode_cursor
from gateway.web.keys import HUB, SESSIONS
from tests.adapters.signalwire.conftest import FAST
from tests.support import GatewayClient, WsClient

GREETING = "Hi! How can I help?"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_signalwire(
    make_gateway: Callable[..., Any], hosts: dict[str, str], emulator: Emulator
) -> AsyncIterator[Callable[..., Any]]:
    """`await make_signalwire(**options)`: the gateway with the signalwire dialect pointed at
    the in-process emulator.

    At teardown (before the emulator and the gateways go) every conversation still open is
    ended by the platform and its `ended` awaited: a session handed over at shutdown would
    stay runnable in the shared Redis, and a later test's gateway would take it over.
    """
    made: list[GatewayClient] = []

    async def make(**extra: str) -> GatewayClient:
        options = {**hosts, "token": "good-token", **FAST, **extra}
        client: GatewayClient = await make_gateway(
            dialects=["signalwire"], dialect_settings={"signalwire": options}
        )
        made.append(client)
        return client

    yield make
    live = [c for c in made if not c.client.server.closed]
    open_ = [c for c in emulator.conversations.values() if not c.ended]
    if not live or not open_:
        return
    ws = await live[0].ws()
    await ws.send("subscribe", conversation="signalwire:*", ref="all")
    await ws.reply("subscribed", "all")
    for conv in open_:
        await emulator.end_session(conv.id)
    for conv in open_:
        await ws.wait_for(
            lambda f, c=f"signalwire:{conv.id}": (
                f["op"] == "event"
                and f["event"]["type"] == "ended"
                and f["event"]["conversation_id"] == c
            )
        )
    await ws.close()


@pytest.fixture
async def gateway(make_signalwire: Callable[..., Any]) -> GatewayClient:
    client: GatewayClient = await make_signalwire()
    return client


async def start(ws: WsClient, address: str, ref: str = "s1") -> str:
    """Start a conversation with `address`; returns its id once the socket is subscribed."""
    who = {"from": unique("ann"), "name": "Ann"}
    await ws.send("start", ref=ref, dialect="signalwire", participant=who, agent_id=address)
    started = await ws.reply("started", ref)
    assert started["op"] == "started", started
    assert started["status"] == "active"
    conversation = str(started["conversation"])
    await ws.wait_for(lambda f: f["op"] == "subscribed" and f["conversation"] == conversation)
    return conversation


def native(conversation: str) -> str:
    """The platform's id of a canonical conversation id (`signalwire:<address>`)."""
    return conversation.split(":", 1)[1]


def messages(ws: WsClient, conversation: str) -> list[dict[str, Any]]:
    return [e for e in ws.events(conversation) if e["type"] == "message"]


def texts(ws: WsClient, conversation: str) -> list[tuple[str, str]]:
    return [(m["sender"]["role"], m["content"]["text"]) for m in messages(ws, conversation)]


async def wait_text(ws: WsClient, conversation: str, text: str) -> dict[str, Any]:
    """The event frame of the first message with `text`."""
    frame = await ws.wait_for(
        lambda f: (
            f["op"] == "event"
            and f["event"]["conversation_id"] == conversation
            and f["event"]["type"] == "message"
            and f["event"]["content"].get("text") == text
        )
    )
    return frame["event"]  # type: ignore[no-any-return]


def assert_log_whole(ws: WsClient, conversation: str) -> None:
    """Seqs 1..n with no gap and no repeat, and every event id once."""
    events = ws.events(conversation)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events
    assert len({e["id"] for e in events}) == len(events), events


async def test_start_agent_messages_send_and_echo_once(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    address = unique("agent")
    ws = await gateway.ws()
    conversation = await start(ws, address)
    assert conversation == f"signalwire:{address}"
    await wait_text(ws, conversation, GREETING)
    for text in ("one", "two", "three"):
        await emulator.agent_says(address, text)
    await wait_text(ws, conversation, "three")

    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hello"}
    )
    ack = await ws.reply("ack", "m1")
    assert ack["op"] == "ack", ack
    await wait_text(ws, conversation, "echo: hello")
    sent = [m for m in messages(ws, conversation) if m["content"]["text"] == "hello"]
    assert len(sent) == 1  # the platform's echo (is_author) and the send's result: one event
    assert sent[0]["sender"]["role"] == "user"
    assert (ack["id"], ack["seq"]) == (sent[0]["id"], sent[0]["seq"])
    row = next(r for r in emulator.conversations[address].rows if r.get("text") == "hello")
    assert ack["id"] == f"{conversation}/{row['id']}"
    assert ("POST", "/api/fabric/messages", {"conversation_id": address, "text": "hello"}) in (
        emulator.received
    )
    assert texts(ws, conversation) == [
        ("agent", GREETING),
        ("agent", "one"),
        ("agent", "two"),
        ("agent", "three"),
        ("user", "hello"),
        ("agent", "echo: hello"),
    ]
    assert ws.events(conversation)[0]["type"] == "status"
    assert_log_whole(ws, conversation)
    await ws.close()


async def test_a_message_carries_its_metadata_and_details_to_the_platform_and_back(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    address = unique("agent")
    ws = await gateway.ws()
    conversation = await start(ws, address)
    metadata = {"order": 7, "details": {"channel": "web"}}
    content = {"kind": "text", "text": "with extras"}
    await ws.send("send", ref="m1", conversation=conversation, content=content, metadata=metadata)
    ack = await ws.reply("ack", "m1")
    assert ack["op"] == "ack", ack
    body = {
        "conversation_id": address,
        "text": "with extras",
        "metadata": {"order": 7},
        "details": {"channel": "web"},
    }
    assert ("POST", "/api/fabric/messages", body) in emulator.received
    sent = await wait_text(ws, conversation, "with extras")
    assert (sent["id"], sent["metadata"], sent["sender"]["role"]) == (ack["id"], metadata, "user")
    await ws.close()


async def test_commands_signalwire_cannot_carry_are_unsupported(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    conversation = await start(ws, unique("agent"))
    cases = [
        ({"op": "typing", "conversation": conversation}, "UNSUPPORTED"),
        ({"op": "typing", "conversation": conversation, "active": False}, "UNSUPPORTED"),
        ({"op": "read", "conversation": conversation}, "UNSUPPORTED"),
        ({"op": "end", "conversation": conversation}, "UNSUPPORTED"),
        ({"op": "forward", "conversation": conversation, "destination": "team"}, "UNSUPPORTED"),
        (
            {
                "op": "send",
                "conversation": conversation,
                "content": {"kind": "image", "url": "https://x/y.png"},
            },
            "UNSUPPORTED",
        ),
        (
            {"op": "send", "conversation": conversation, "content": {"kind": "text", "text": " "}},
            "INVALID_REQUEST",
        ),
    ]
    for n, (frame, code) in enumerate(cases):
        await ws.send(ref=f"bad{n}", **frame)  # type: ignore[arg-type]
        error = await ws.reply("error", f"bad{n}")
        assert (error["op"], error["code"]) == ("error", code), (frame, error)
    # Nothing of the above reached the platform, and SignalWire has no typing or receipts to
    # deliver inbound either: the log holds the status and the greeting only.
    await wait_text(ws, conversation, GREETING)
    assert [e["type"] for e in ws.events(conversation)] == ["status", "message"]
    await ws.close()


async def test_the_end_of_the_session_arrives_as_ended(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    address = unique("agent")
    ws = await gateway.ws()
    conversation = await start(ws, address)
    await ws.send(
        "send", ref="b", conversation=conversation, content={"kind": "text", "text": "bye"}
    )
    assert (await ws.reply("ack", "b"))["op"] == "ack"
    frame = await ws.wait_for(lambda f: f["op"] == "event" and f["event"]["type"] == "ended")
    ended = frame["event"]
    assert (ended["conversation_id"], ended["reason"], ended["by"]) == (
        conversation,
        "agent",
        "agent",
    )
    assert ws.events(conversation)[-1]["type"] == "ended"
    assert_log_whole(ws, conversation)
    await ws.send("recover", ref="r", conversation=conversation)
    recovered = await ws.reply("recovered", "r")
    assert recovered["status"] == "completed"
    assert [e["id"] for e in recovered["events"]] == [e["id"] for e in ws.events(conversation)]
    await ws.close()


async def test_a_dropped_vendor_link_reports_link_events_and_loses_nothing(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    address = unique("agent")
    ws = await gateway.ws()
    conversation = await start(ws, address)
    await wait_text(ws, conversation, GREETING)

    def link(state: str) -> Callable[[dict[str, Any]], bool]:
        return lambda f: f["op"] == "event" and f["event"].get("state") == state

    emulator.refuse_connections = True  # an outage: the reconnect must wait for it
    await emulator.drop_connections()
    await ws.wait_for(link("retrying"))
    for text in ("while", "you", "were", "away"):  # more than one history page (page_size 3)
        await emulator.agent_says(address, text)
    emulator.refuse_connections = False
    restored = (await ws.wait_for(link("restored")))["event"]
    assert restored["missed"] == 4
    await wait_text(ws, conversation, "away")

    await emulator.drop_connections()  # a blip: the next connect succeeds at once
    await emulator.agent_says(address, "live again")
    await wait_text(ws, conversation, "live again")
    await ws.wait_for(lambda f: link("restored")(f) and f["event"]["id"] != restored["id"])

    states = [e["state"] for e in ws.events(conversation) if e["type"] == "link"]
    assert states[:2] == ["down", "retrying"]
    assert states.count("restored") == 2
    assert [t for _, t in texts(ws, conversation)] == [
        GREETING,
        "while",
        "you",
        "were",
        "away",
        "live again",
    ]
    assert_log_whole(ws, conversation)
    await ws.close()


async def test_dialects_shows_the_capabilities(gateway: GatewayClient) -> None:
    status, body = await gateway.get("/v1/dialects")
    assert status == 200
    (signalwire,) = [d for d in body["dialects"] if d["name"] == "signalwire"]
    assert signalwire["capabilities"] == ["history", "ingest", "recover", "send", "start"]
    assert signalwire["content_kinds"] == ["text"]
    assert signalwire["typing_preview"] is False


async def test_the_newer_join_with_our_own_fabric_address(
    make_signalwire: Callable[..., Any], emulator: Emulator
) -> None:
    me, address = unique("me"), unique("agent")
    gateway: GatewayClient = await make_signalwire(address_id=me)
    ws = await gateway.ws()
    conversation = await start(ws, address)
    (group,) = [c.id for c in emulator.conversations.values() if c.address == address]
    assert conversation == f"signalwire:{group}"
    await wait_text(ws, conversation, GREETING)
    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hello"}
    )
    ack = await ws.reply("ack", "m1")
    await wait_text(ws, conversation, "echo: hello")
    (sent,) = [m for m in messages(ws, conversation) if m["content"]["text"] == "hello"]
    assert (ack["id"], sent["sender"]["role"], sent["sender"]["id"]) == (sent["id"], "user", me)
    assert emulator.texts(group) == [GREETING, "hello", "echo: hello"]
    assert_log_whole(ws, conversation)
    await ws.close()


async def two_replicas(
    make_signalwire: Callable[..., Any], hub_url: str
) -> tuple[GatewayClient, GatewayClient, WsClient, str]:
    """Two gateways on one Redis, and a conversation started on the first (skips on memory)."""
    if hub_url.startswith("memory"):
        pytest.skip("replicas share sessions through Redis only")
    first: GatewayClient = await make_signalwire()
    second: GatewayClient = await make_signalwire()
    ws = await first.ws()
    return first, second, ws, await start(ws, unique("agent"))


async def test_another_replica_takes_the_session_over_and_loses_nothing(
    make_signalwire: Callable[..., Any], emulator: Emulator, hub_url: str
) -> None:
    first, second, ws, conversation = await two_replicas(make_signalwire, hub_url)
    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hi"}
    )
    await wait_text(ws, conversation, "echo: hi")
    await ws.close()
    await first.client.close()  # hands the session over: snapshot saved, lease released
    await emulator.agent_says(native(conversation), "between owners")

    ws2 = await second.ws()
    await ws2.send("recover", ref="r", conversation=conversation)
    recovered = await ws2.reply("recovered", "r")
    assert (recovered["op"], recovered["status"]) == ("recovered", "active"), recovered
    await ws2.wait_for(lambda f: f["op"] == "subscribed" and f["conversation"] == conversation)
    await emulator.agent_says(native(conversation), "new owner")
    await wait_text(ws2, conversation, "new owner")
    events = recovered["events"] + ws2.events(conversation)
    said = [(e["sender"]["role"], e["content"]["text"]) for e in events if e["type"] == "message"]
    assert said == [
        ("agent", GREETING),
        ("user", "hi"),
        ("agent", "echo: hi"),
        ("agent", "between owners"),
        ("agent", "new owner"),
    ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    await ws2.close()


async def test_subscribing_right_after_started_delivers_each_event_once(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    # A regression test of a core race (fixed in f40551d: the last subscribe answered wins).
    # Hold the auto-subscription's hub call until the client's own subscribe has gone through,
    # as a slow store round trip does (the race showed ~1 run in 3 on Redis without this).
    hub = gateway.client.app[HUB]
    subscribe = hub.subscribe
    client_done = asyncio.Event()
    calls: list[int | None] = []

    async def slow_subscribe(
        target: str, sink: Any, since: int | None = None, epoch: str | None = None
    ) -> Any:
        calls.append(since)
        if len(calls) == 1:
            await client_done.wait()
        subscription = await subscribe(target, sink, since, epoch)
        if len(calls) > 1:
            client_done.set()
        return subscription

    hub.subscribe = slow_subscribe
    address = unique("agent")
    ws = await gateway.ws()
    who = {"from": unique("ann")}
    await ws.send("start", ref="s1", dialect="signalwire", participant=who, agent_id=address)
    started = await ws.reply("started", "s1")
    conversation = started["conversation"]
    await ws.subscribe(conversation)  # redundant, but a replacement, never a second stream
    await ws.wait_for(lambda f: f["op"] == "subscribed" and f.get("ref") is None)
    await emulator.agent_says(address, "once")
    await wait_text(ws, conversation, "once")
    await emulator.agent_says(address, "twice?")
    await wait_text(ws, conversation, "twice?")
    # `started` promised a subscription from seq 1: each event once, none missing.
    seqs = [e["seq"] for e in ws.events(conversation)]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    await ws.close()


async def history_page(ws: WsClient, conversation: str, ref: str, **fields: Any) -> dict[str, Any]:
    await ws.send("history", ref=ref, conversation=conversation, source="platform", **fields)
    return await ws.reply("history", ref)


def page_texts(page: dict[str, Any]) -> list[str]:
    return [e["content"]["text"] for e in page["events"]]


async def test_platform_history_pages_back_and_forth(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    """`history` with `source: "platform"` pages the platform's chat rows as the SDK does:
    call logs and other conversations left out, `has_next`/`has_prev` with cursors, every
    message once in either direction, over platform pages that hold call logs too."""
    address = unique("agent")
    ws = await gateway.ws()
    conversation = await start(ws, address)
    await wait_text(ws, conversation, GREETING)
    for n in range(6):
        await emulator.agent_says(address, f"a{n}")
        emulator.add_call_log(address)
    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "mine"}
    )
    await ws.reply("ack", "m1")
    await wait_text(ws, conversation, "echo: mine")
    chat = [GREETING, *(f"a{n}" for n in range(6)), "mine", "echo: mine"]

    first = await history_page(ws, conversation, "h0", limit=4)
    assert first["op"] == "history" and first["source"] == "platform", first
    assert page_texts(first) == chat[-4:]  # the newest page, oldest first
    assert (first["has_next"], first["has_prev"]) == (True, False)
    assert "prev" not in first
    (mine,) = [e for e in first["events"] if e["content"]["text"] == "mine"]
    assert mine["sender"]["role"] == "user"
    assert mine["id"] == next(
        e["id"] for e in messages(ws, conversation) if e["content"]["text"] == "mine"
    )
    assert all("seq" not in e for e in first["events"])  # read from the platform, not the log

    pages, page = [first], first
    while page["has_next"]:
        page = await history_page(ws, conversation, f"h{len(pages)}", cursor=page["next"], limit=4)
        pages.append(page)
    assert [t for p in reversed(pages) for t in page_texts(p)] == chat
    assert not page["has_next"] and page["has_prev"]

    back: list[str] = page_texts(page)
    while page["has_prev"]:
        page = await history_page(ws, conversation, f"b{len(back)}", cursor=page["prev"], limit=4)
        back += page_texts(page)
    assert sorted(back) == sorted(chat) and len(back) == len(chat)

    # The HTTP form answers the same page.
    status, body = await gateway.get(f"/v1/conversations/{conversation}/history", limit=4)
    assert status == 200, body
    assert page_texts(body) == chat[-4:] and body["next"] == first["next"]
    status, body = await gateway.get(
        f"/v1/conversations/{conversation}/history", limit=4, cursor=first["next"]
    )
    assert page_texts(body) == page_texts(pages[1])
    await ws.close()


async def test_platform_history_refuses_bad_requests_precisely(
    gateway: GatewayClient, emulator: Emulator, platform: TestServer
) -> None:
    address = unique("agent")
    ws = await gateway.ws()
    conversation = await start(ws, address)
    foreign = encode_cursor(Cursor(url="http://127.0.0.1:9/api/fabric/conversations/x/messages"))
    other = encode_cursor(
        Cursor(url=str(platform.make_url("/api/fabric/conversations/someone-else/messages")))
    )
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"source": "platform", "cursor": "not-a-cursor"}, "INVALID_REQUEST", "$.cursor"),
        ({"source": "platform", "cursor": foreign}, "INVALID_REQUEST", "$.cursor"),
        ({"source": "platform", "cursor": other}, "INVALID_REQUEST", "$.cursor"),
        ({"source": "platform", "before": 3}, "INVALID_REQUEST", "$.before"),
        ({"source": "platform", "limit": 0}, "INVALID_REQUEST", "$.limit"),
        ({"source": "platform", "limit": 101}, "INVALID_REQUEST", "$.limit"),
        ({"cursor": "x"}, "INVALID_REQUEST", "$.cursor"),  # the gateway's log pages by `before`
    ]
    requests_before = len(emulator.received)
    for n, (fields, code, path) in enumerate(cases):
        await ws.send("history", ref=f"e{n}", conversation=conversation, **fields)
        error = await ws.reply("error", f"e{n}")
        assert (error["code"], error["path"]) == (code, path), (fields, error)
    assert len(emulator.received) == requests_before  # nothing was fetched for them
    await ws.send("history", ref="nf", conversation="signalwire:nobody", source="platform")
    assert (await ws.reply("error", "nf"))["code"] == "SESSION_NOT_FOUND"
    status, body = await gateway.get(f"/v1/conversations/{conversation}/history", limit="x")
    error = body["error"]
    assert (status, error["code"], error["path"]) == (400, "INVALID_REQUEST", "query.limit")
    await ws.close()


async def test_platform_history_is_read_by_the_owning_replica(
    make_signalwire: Callable[..., Any], emulator: Emulator, hub_url: str
) -> None:
    """Asked of a replica that does not own the session, the read is forwarded to the owner."""
    first, second, ws, conversation = await two_replicas(make_signalwire, hub_url)
    await wait_text(ws, conversation, GREETING)
    other = await second.ws()
    page = await history_page(other, conversation, "h1", limit=5)
    assert page_texts(page) == [GREETING], page
    assert conversation in first.client.server.app[SESSIONS].owned
    assert conversation not in second.client.server.app[SESSIONS].owned
    await other.close()
    await ws.close()


def _row(conversation: str, n: int, author: str, text: str) -> dict[str, Any]:
    """A history row as REST returns it: no `is_author`."""
    return {
        "id": f"hist-{n}",
        "conversation_id": conversation,
        "user_id": author,
        "ts": 1731412800.0 + n,
        "type": "message",
        "subtype": "chat",
        "text": text,
    }


async def webhook_roles(gateway: GatewayClient, conversation: str) -> dict[str, str]:
    """text → role of the conversation's messages in the gateway's log."""
    status, log = await gateway.get(f"/v1/conversations/{conversation}/events")
    assert status == 200, log
    return {
        e["content"]["text"]: e["sender"]["role"] for e in log["events"] if e["type"] == "message"
    }


async def test_a_webhook_history_row_of_the_connectors_own_address_is_the_users(
    gateway: GatewayClient, emulator: Emulator
) -> None:
    """The own address is the conversation's (kept in the hub by the connector), not the
    path's: a history row relayed by webhook, without `is_author`, maps as the connector's."""
    address = unique("agent")
    ws = await gateway.ws()
    conversation = await start(ws, address)
    await wait_text(ws, conversation, GREETING)
    page = {"data": [_row(address, 1, "subscriber-1", "mine"), _row(address, 2, address, "theirs")]}
    status, body = await gateway.ingest("signalwire", page)
    assert status == 202, body
    roles = await webhook_roles(gateway, conversation)
    assert (roles["mine"], roles["theirs"]) == ("user", "agent")
    await ws.close()


async def test_a_webhook_learns_the_own_address_from_an_is_author_echo(
    gateway: GatewayClient,
) -> None:
    """No connector, no configuration: the live echo (`is_author: true`) of one body names the
    own address, and a later body's history row of that author is the user's."""
    native = unique("conv")
    row = _row(native, 1, "me-9", "echoed")
    echo = {
        "jsonrpc": "2.0",
        "id": "e1",
        "method": "signalwire.event",
        "params": {"event_type": "conversation.message", "is_author": True, "params": row},
    }
    assert (await gateway.ingest("signalwire", echo))[0] == 202
    later = {"data": [_row(native, 2, "me-9", "from history"), _row(native, 3, "x", "other")]}
    assert (await gateway.ingest("signalwire", later))[0] == 202
    roles = await webhook_roles(gateway, f"signalwire:{native}")
    assert roles == {"echoed": "user", "from history": "user", "other": "agent"}


async def test_a_webhook_row_of_the_configured_address_is_the_users(
    make_signalwire: Callable[..., Any],
) -> None:
    me = unique("me")
    gateway: GatewayClient = await make_signalwire(address_id=me)
    native = unique("group")
    rows = [_row(native, 1, me, "mine"), _row(native, 2, "agent-1", "theirs")]
    assert (await gateway.ingest("signalwire", rows))[0] == 202
    roles = await webhook_roles(gateway, f"signalwire:{native}")
    assert roles == {"mine": "user", "theirs": "agent"}
