"""End to end: frontends on the unified WebSocket drive server_events chats on the emulator.

Every test runs on both hub engines (`make_gateway` takes `hub_url`), against the platform
emulator served in-process (the `platform` fixture), through `/v1/ws` only (plus the HTTP
ingest and `GET /v1/dialects`, which have no WebSocket counterpart).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web

from adapters.server_events import ServerEventsAdapter
from tests.adapters.server_events.conftest import APP_ID, TENANT, Platform
from tests.support import GatewayClient, WsClient, metric, scrape


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any], platform: Platform) -> GatewayClient:
    options = {
        "url": platform.url,
        "app_id": APP_ID,
        "tenant_url": TENANT,
        "backoff_s": "0.01",
        "backoff_max_s": "0.04",
        "max_attempts": "5",
        "timeout_s": "5",
    }
    client: GatewayClient = await make_gateway(
        dialects=["server_events"], dialect_settings={"server_events": options}
    )
    return client


def participant() -> dict[str, str]:
    """A participant of this test alone (start refs are scoped per participant, and the
    Redis engine is shared by the whole suite)."""
    name = f"grace-{uuid.uuid4().hex[:10]}"
    return {"from": name, "name": "Grace"}


async def start(ws: WsClient, ref: str = "s1") -> str:
    """Start a chat; the caller is subscribed to it right after `started`."""
    await ws.send("start", ref=ref, dialect="server_events", participant=participant())
    started = await ws.reply("started", ref)
    assert started["op"] == "started", started
    assert started["status"] == "queued"  # the platform's answer to `POST chats`
    conversation = str(started["conversation"])
    assert conversation.startswith("server_events:chat-")
    await ws.wait_for(lambda f: f["op"] == "subscribed" and f["conversation"] == conversation)
    await wait_text(ws, conversation, "Hello!")  # the scripted agent joined and greeted
    return conversation


def native(conversation: str) -> str:
    return conversation.split(":", 1)[1]


def texts(ws: WsClient, conversation: str) -> list[tuple[str, str]]:
    return [
        (e["sender"]["role"], e["content"]["text"])
        for e in ws.events(conversation)
        if e["type"] == "message" and e["content"]["kind"] == "text"
    ]


async def wait_event(ws: WsClient, conversation: str, predicate: Any) -> dict[str, Any]:
    frame = await ws.wait_for(
        lambda f: (
            f["op"] == "event"
            and f["event"]["conversation_id"] == conversation
            and predicate(f["event"])
        )
    )
    return frame["event"]  # type: ignore[no-any-return]


async def wait_text(ws: WsClient, conversation: str, text: str) -> dict[str, Any]:
    return await wait_event(
        ws, conversation, lambda e: e["type"] == "message" and e["content"].get("text") == text
    )


async def command(ws: WsClient, op: str, ref: str, **fields: Any) -> dict[str, Any]:
    await ws.send(op, ref=ref, **fields)
    reply = await ws.reply("ack", ref)
    assert reply["op"] == "ack", reply
    return reply


def assert_gap_free(ws: WsClient, conversation: str) -> None:
    """Seqs 1..n with no gap and no repeat, ids unique: nothing lost, nothing doubled."""
    events = ws.events(conversation)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), ids


async def test_a_chat_through_the_unified_websocket(
    gateway: GatewayClient, platform: Platform
) -> None:
    emulator = platform.emulator
    ws = await gateway.ws()
    conversation = await start(ws)
    chat = native(conversation)
    kinds = [e["type"] for e in ws.events(conversation)]
    assert kinds[:4] == ["availability", "status", "status", "participant_joined"]
    greeting = await wait_text(ws, conversation, "Hello!")
    assert greeting["sender"] == {"role": "agent", "id": "agent-1"}  # the role the join announced

    # The agent's messages reach the subscriber in order.
    for i in range(10):
        emulator.agent_says(chat, f"a{i}")
    await wait_text(ws, conversation, "a9")
    assert [t for role, t in texts(ws, conversation) if role == "agent"] == [
        "Hello!",
        *(f"a{i}" for i in range(10)),
    ]

    # The user's message reaches the platform, is acked with its event id, shows once.
    ack = await command(
        ws, "send", "m1", conversation=conversation, content={"kind": "text", "text": "hi"}
    )
    (sent,) = [e for e in emulator.received(chat) if e["event"] == "chat_session_message"]
    assert sent["msg"] == "hi"
    assert ack["id"] == f"{conversation}/{sent['msg_id']}" and ack["seq"] >= 1
    await wait_text(ws, conversation, "echo: hi")  # the platform echoed it before answering
    mine = [
        e
        for e in ws.events(conversation)
        if e["type"] == "message" and e["sender"]["role"] == "user"
    ]
    assert [(e["id"], e["seq"]) for e in mine] == [(ack["id"], ack["seq"])]

    # Receipts and typing from the agent: read receipt for our message, then typing on/off.
    events = ws.events(conversation)
    after = [e for e in events if e["seq"] > ack["seq"]]
    assert [(e["type"], e.get("active")) for e in after] == [
        ("receipt", None),
        ("typing", True),
        ("typing", False),
        ("message", None),
    ]
    assert after[0]["status"] == "read" and after[0]["message_id"] == ack["id"]
    assert after[0]["sender"]["role"] == after[1]["sender"]["role"] == "agent"

    # Delivered receipts for every agent message go back to the platform on their own.
    agent_ids = {
        e["id"].rpartition("/")[2]
        for e in ws.events(conversation)
        if e["type"] == "message" and e["sender"]["role"] == "agent"
    }
    await emulator.until(
        lambda: (
            agent_ids
            <= {
                e["ref_msg_id"]
                for e in emulator.received(chat)
                if e["event"] == "chat_session_message_delivered"
            }
        )
    )

    # The user's typing and read receipt reach the platform.
    await command(ws, "typing", "t1", conversation=conversation, active=True)
    await command(ws, "typing", "t2", conversation=conversation, active=False)
    read = await command(ws, "read", "r1", conversation=conversation, up_to=greeting["id"])
    last = await command(ws, "read", "r2", conversation=conversation)  # the last agent message
    sent_events = [
        e for e in emulator.received(chat) if e["event"] != "chat_session_message_delivered"
    ]
    assert [e["event"] for e in sent_events[-4:]] == [
        "chat_session_typing",
        "chat_session_not_typing",
        "chat_session_message_read",
        "chat_session_message_read",
    ]
    assert sent_events[-2]["ref_msg_id"] == greeting["id"].rpartition("/")[2]
    echo_answer = texts(ws, conversation)[-1]
    assert echo_answer == ("agent", "echo: hi")
    receipts = {e["id"]: e for e in ws.events(conversation) if e["type"] == "receipt"}
    assert receipts[read["id"]]["message_id"] == greeting["id"]
    assert receipts[read["id"]]["sender"]["role"] == "user"
    assert receipts[last["id"]]["status"] == "read"

    # The user ends it: `ended` by the user, and the conversation takes no more commands.
    await command(ws, "end", "e1", conversation=conversation)
    ended = await wait_event(ws, conversation, lambda e: e["type"] == "ended")
    assert (ended["reason"], ended["by"]) == ("user", "user")
    assert "chat_session_end" in [e["event"] for e in emulator.received(chat)]
    await ws.send(
        "send", ref="late", conversation=conversation, content={"kind": "text", "text": "x"}
    )
    late = await ws.reply("ack", "late")
    assert late["code"] == "SESSION_ENDED", late
    assert_gap_free(ws, conversation)
    await ws.close()


async def test_the_agent_ends_it(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    conversation = await start(ws)
    await command(
        ws, "send", "b", conversation=conversation, content={"kind": "text", "text": "bye"}
    )
    ended = await wait_event(ws, conversation, lambda e: e["type"] == "ended")
    assert ended["reason"] == "completed"
    assert texts(ws, conversation)[-1] == ("agent", "Goodbye!")
    assert [e["type"] for e in ws.events(conversation)][-2:] == ["participant_left", "ended"]
    assert_gap_free(ws, conversation)
    await ws.close()


async def test_a_forced_reconnect_gives_link_events_and_loses_nothing(
    gateway: GatewayClient, platform: Platform
) -> None:
    emulator = platform.emulator
    ws = await gateway.ws()
    conversation = await start(ws)
    chat = native(conversation)
    await emulator.until(lambda: emulator.chats[chat].polls == 1)  # a poll is held
    emulator.drop_connections(fail_next=2)  # the held poll and the next two requests fail
    emulator.agent_says(chat, "said while the link was down")
    restored = await wait_event(
        ws, conversation, lambda e: e["type"] == "link" and e["state"] == "restored"
    )
    links = [e for e in ws.events(conversation) if e["type"] == "link"]
    assert [(e["state"], e.get("attempt")) for e in links] == [
        ("down", None),
        ("retrying", 1),
        ("retrying", 2),
        ("retrying", 3),
        ("restored", None),
    ]
    assert links[0]["will_retry"] is True
    assert restored["missed"] == 1
    await wait_text(ws, conversation, "said while the link was down")
    emulator.agent_says(chat, "after")
    await wait_text(ws, conversation, "after")
    await command(
        ws, "send", "m", conversation=conversation, content={"kind": "text", "text": "still?"}
    )
    await wait_text(ws, conversation, "echo: still?")
    assert texts(ws, conversation) == [
        ("agent", "Hello!"),
        ("agent", "said while the link was down"),
        ("agent", "after"),
        ("user", "still?"),
        ("agent", "echo: still?"),
    ]
    assert_gap_free(ws, conversation)
    await ws.close()


async def test_commands_the_platform_cannot_carry_are_unsupported(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    conversation = await start(ws)
    cases = [
        {"op": "forward", "conversation": conversation, "destination": "sales"},
        {
            "op": "send",
            "conversation": conversation,
            "content": {"kind": "audio", "url": "https://x/a.ogg", "voice": True},
        },
        {
            "op": "send",
            "conversation": conversation,
            "content": {"kind": "action", "action": "forward", "destination": "sales"},
        },
    ]
    for n, frame in enumerate(cases):
        await ws.send(ref=f"u{n}", **frame)  # type: ignore[arg-type]
        error = await ws.reply("ack", f"u{n}")
        assert (error["op"], error["code"]) == ("error", "UNSUPPORTED"), (frame, error)
        assert error["message"]
    # The session goes on.
    await command(
        ws, "send", "ok", conversation=conversation, content={"kind": "text", "text": "fine"}
    )
    await wait_text(ws, conversation, "echo: fine")
    await ws.close()


async def test_dialects_shows_the_capabilities(gateway: GatewayClient) -> None:
    status, body = await gateway.get("/v1/dialects")
    assert status == 200
    (described,) = [d for d in body["dialects"] if d["name"] == "server_events"]
    adapter = ServerEventsAdapter()
    assert described == {
        "name": "server_events",
        "capabilities": sorted(adapter.capabilities),
        "content_kinds": sorted(adapter.content_kinds),
        "typing_preview": False,
    }
    assert "forward" not in described["capabilities"]
    assert {"start", "send", "typing", "read", "end", "recover"} <= set(described["capabilities"])


async def test_images_and_files_by_file_id_and_by_url(
    gateway: GatewayClient, platform: Platform, aiohttp_server: Any
) -> None:
    async def picture(_: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG-by-url", content_type="image/png")

    async def document(_: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-by-url", content_type="application/pdf")

    files = web.Application()
    files.router.add_get("/pics/dog.png", picture)
    files.router.add_get("/docs/terms.pdf", document)
    source = await aiohttp_server(files)
    emulator = platform.emulator
    emulator.files["file-up"] = (b"\x89PNG-uploaded", "cat.png", "image/png")  # uploaded before
    ws = await gateway.ws()
    conversation = await start(ws)
    chat = native(conversation)
    sends = [
        ("i1", {"kind": "image", "file_id": "file-up", "file_name": "cat.png"}),
        ("i2", {"kind": "image", "url": str(source.make_url("/pics/dog.png"))}),
        (
            "f1",
            {
                "kind": "file",
                "url": str(source.make_url("/docs/terms.pdf")),
                "file_name": "terms.pdf",
            },
        ),
    ]
    acks = {}
    for ref, content in sends:
        acks[ref] = await command(ws, "send", ref, conversation=conversation, content=content)
    sent = [e for e in emulator.received(chat) if e["event"] == "chat_session_file"]
    assert [(e["file_type"], e.get("file_name")) for e in sent] == [
        ("image", "cat.png"),
        ("image", "dog.png"),
        ("attachment", "terms.pdf"),
    ]
    assert sent[0]["file_id"] == "file-up"
    assert emulator.files[sent[1]["file_id"]] == (b"\x89PNG-by-url", "dog.png", "image/png")
    assert emulator.files[sent[2]["file_id"]] == (
        b"%PDF-by-url",
        "terms.pdf",
        "application/pdf",
    )
    for (ref, content), native_event in zip(sends, sent, strict=True):
        assert acks[ref]["id"] == f"{conversation}/{native_event['msg_id']}"
        (event,) = [e for e in ws.events(conversation) if e["id"] == acks[ref]["id"]]
        assert event["sender"]["role"] == "user"
        assert event["content"]["kind"] == content["kind"]
    # The platform's echoes are the same events: each file shows once.
    await emulator.until(lambda: all(c.cursor == len(c.outbox) for c in emulator.chats.values()))
    mine = [
        e
        for e in ws.events(conversation)
        if e["type"] == "message" and e["sender"]["role"] == "user"
    ]
    assert [e["id"] for e in mine] == [acks[ref]["id"] for ref, _ in sends]
    # A URL the gateway cannot fetch is the caller's error, and nothing reaches the platform.
    await ws.send(
        "send",
        ref="bad",
        conversation=conversation,
        content={"kind": "image", "url": str(source.make_url("/pics/none.png"))},
    )
    error = await ws.reply("ack", "bad")
    assert (error["op"], error["code"]) == ("error", "INVALID_REQUEST")
    assert len([e for e in emulator.received(chat) if e["event"] == "chat_session_file"]) == 3
    assert_gap_free(ws, conversation)
    await ws.close()


async def test_ingest_needs_the_conversation(gateway: GatewayClient) -> None:
    chat = f"c-{uuid.uuid4().hex[:10]}"
    frame = {"event": "chat_session_message", "msg_id": "m1", "msg": "x", "timestamp": 1}
    status, body = await gateway.ingest("server_events", frame)
    assert (status, body["error"]["code"]) == (400, "INVALID_REQUEST")
    status, body = await gateway.ingest("server_events", frame, conversation=chat)
    assert (status, body["accepted"]) == (202, 1)
    assert body["events"][0]["id"] == f"server_events:{chat}/m1"


async def test_a_reposted_body_without_timestamps_deduplicates(gateway: GatewayClient) -> None:
    chat = f"c-{uuid.uuid4().hex[:10]}"
    frames = [
        {"event": "chat_session_status", "state": "connected"},
        {"event": "chat_session_party_joined", "party_id": "p1", "first_name": "Ann"},
        {"event": "chat_session_typing", "party_id": "p1"},
        {"event": "chat_session_not_typing", "party_id": "p1"},
        {"event": "chat_session_typing", "party_id": "p1"},
        {"event": "chat_session_message", "party_id": "p1", "msg_id": "m1", "msg": "hi"},
        {"event": "chat_session_timeout_warning", "msg": "still there?"},
        {"event": "chat_session_ended"},
    ]
    ws = await gateway.ws()
    await ws.subscribe(f"server_events:{chat}")
    status, first = await gateway.ingest("server_events", frames, conversation=chat)
    assert (status, first["accepted"], first["duplicates"]) == (202, len(frames), 0)
    body = msgspec.json.encode(frames)
    status, again = await gateway.ingest("server_events", None, conversation=chat, raw=body)
    assert (status, again["accepted"], again["duplicates"]) == (202, 0, len(frames))
    assert again["events"] == first["events"]
    events = await ws.wait_events(len(frames), f"server_events:{chat}")
    assert [e["type"] for e in events] == [
        "status",
        "participant_joined",
        "typing",
        "typing",
        "typing",
        "message",
        "notice",
        "ended",
    ]
    await ws.close()


async def test_platform_history_pages_the_chat_history(gateway: GatewayClient) -> None:
    """`history` with `source: "platform"` reads `GET chats/{id}/history`: the messages and
    receipts the log holds, by the same ids (typing left out), newest page first, `next` older
    and `prev` newer."""
    ws = await gateway.ws()
    conversation = await start(ws)
    for n in range(3):
        await command(
            ws,
            "send",
            f"m{n}",
            conversation=conversation,
            content={"kind": "text", "text": f"q{n}"},
        )
        await wait_text(ws, conversation, f"echo: q{n}")
    logged = [e["id"] for e in ws.events(conversation) if e["type"] in ("message", "receipt")]

    pages = []
    fields: dict[str, Any] = {}
    while True:
        await ws.send(
            "history",
            ref=f"h{len(pages)}",
            conversation=conversation,
            source="platform",
            limit=3,
            **fields,
        )
        page = await ws.reply("history", f"h{len(pages)}")
        assert page["op"] == "history" and page["source"] == "platform", page
        assert len(page["events"]) <= 3
        pages.append(page)
        if not page["has_next"]:
            break
        fields = {"cursor": page["next"]}
    assert not pages[0]["has_prev"] and pages[-1]["has_prev"] == (len(pages) > 1)
    read = [e["id"] for p in reversed(pages) for e in p["events"]]
    assert len(read) == len(set(read))
    assert set(logged) <= set(read), (logged, read)  # the platform's copies of the same ids
    assert all(e["type"] != "typing" for p in pages for e in p["events"])
    if len(pages) > 1:  # `prev` leads back to the newer page
        await ws.send(
            "history",
            ref="back",
            conversation=conversation,
            source="platform",
            limit=3,
            cursor=pages[1]["prev"],
        )
        back = await ws.reply("history", "back")
        assert [e["id"] for e in back["events"]] == [e["id"] for e in pages[0]["events"]]
    await ws.send("history", ref="bad", conversation=conversation, source="platform", cursor="x:1")
    error = await ws.reply("error", "bad")
    assert (error["code"], error["path"]) == ("INVALID_REQUEST", "$.cursor")
    await ws.close()


async def test_a_bad_frame_of_a_poll_reaches_frontends_as_an_error_beside_the_good_ones(
    gateway: GatewayClient, platform: Platform
) -> None:
    """One poll answers a frame that cannot be decoded between two good ones: the frontend sees
    both good ones (a location sent with string coordinates, as iOS sends them, and a bot's
    line) and an `error` event naming the bad frame."""
    ws = await gateway.ws()
    conversation = await start(ws)
    chat = native(conversation)
    emulator = platform.emulator
    await emulator.until(lambda: emulator.chats[chat].polls == 1)
    emulator.push(chat, "chat_session_party_joined", party_id="sc-9", type="scenario")
    emulator.push(chat, "chat_session_location", msg_id="l9", latitude="x", longitude="1")
    emulator.push(chat, "chat_session_location", msg_id="l10", latitude="1.5", longitude="-2")
    emulator.push(chat, "chat_session_message", party_id="sc-9", msg_id="b9", msg="beep")
    said = await wait_text(ws, conversation, "beep")
    assert said["sender"] == {"role": "bot", "id": "sc-9"}
    error = await wait_event(ws, conversation, lambda e: e["type"] == "error")
    assert (error["code"], error["metadata"]["path"]) == ("INVALID_FRAME", "$.latitude")
    located = next(e for e in ws.events(conversation) if e["id"] == f"{conversation}/l10")
    assert located["content"] == {"kind": "location", "latitude": 1.5, "longitude": -2.0}
    await ws.close()


async def test_a_role_announced_on_one_path_holds_on_the_other(
    gateway: GatewayClient, platform: Platform
) -> None:
    """DIALECTS.md: a party's role learned from `chat_session_party_joined` holds for its later
    events whichever body or path they arrive by. A scenario that joined through the poll is a
    bot in a webhook body; one that joined through a webhook is a bot in the poll."""
    ws = await gateway.ws()
    conversation = await start(ws)
    chat = native(conversation)
    emulator = platform.emulator
    emulator.push(chat, "chat_session_party_joined", party_id="sc-poll", type="scenario")
    await wait_event(
        ws,
        conversation,
        lambda e: e["type"] == "participant_joined" and e["participant"]["id"] == "sc-poll",
    )
    line = {"event": "chat_session_message", "party_id": "sc-poll", "msg_id": "w1", "msg": "hook"}
    status, _ = await gateway.ingest("server_events", line, conversation=chat)
    assert status == 202
    assert (await wait_text(ws, conversation, "hook"))["sender"] == {"role": "bot", "id": "sc-poll"}

    joined = {
        "event": "chat_session_party_joined",
        "party_id": "sc-hook",
        "type": "scenario",
        "timestamp": 1700000000000,
    }
    status, _ = await gateway.ingest("server_events", joined, conversation=chat)
    assert status == 202
    emulator.push(chat, "chat_session_message", party_id="sc-hook", msg_id="p1", msg="poll")
    assert (await wait_text(ws, conversation, "poll"))["sender"] == {"role": "bot", "id": "sc-hook"}
    await ws.close()


async def test_an_empty_long_poll_is_no_vendor_error_in_metrics_a_lost_chat_is(
    gateway: GatewayClient, platform: Platform
) -> None:
    errors_4xx = 'gateway_vendor_request_errors_total{dialect="server_events",kind="4xx"}'
    gets = 'gateway_vendor_request_seconds_count{dialect="server_events",method="GET"}'
    ws = await gateway.ws()
    conversation = await start(ws)
    events_path = f"/clientweb/api/v2/chats/{native(conversation)}/events"

    def polls() -> int:
        return sum(1 for request in platform.emulator.requests if request == ("GET", events_path))

    before, polled = await scrape(gateway), polls()
    await platform.emulator.until(lambda: polls() >= polled + 3, within=10)  # 0.3-s holds, empty
    after = await scrape(gateway)
    assert metric(after, gets) >= metric(before, gets) + 2
    assert metric(after, errors_4xx) == metric(before, errors_4xx)  # 400/5511: a normal answer
    platform.emulator.chats.pop(native(conversation))  # forgotten: the next poll is 404/5005
    await wait_event(ws, conversation, lambda e: e["type"] == "ended")
    assert (
        metric(await scrape(gateway), errors_4xx) >= metric(after, errors_4xx) + 1
    )  # that one counts
    await ws.close()
