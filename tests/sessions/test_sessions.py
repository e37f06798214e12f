"""Frontends drive vendor sessions through the gateway (loopback dialect, both engines)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestServer

from adapters.loopback.emulator import Emulator
from gateway.web.keys import SESSIONS
from tests.support import GatewayClient, WsClient, metric, scrape

PARTICIPANT = {"from": "+15550100", "from_type": "phone", "name": "Grace"}


def participant() -> dict[str, str]:
    """A participant of this test alone (start refs are scoped per participant)."""
    return {**PARTICIPANT, "from": f"+1555{uuid.uuid4().int % 10**7:07d}"}


async def start(ws: WsClient, ref: str = "s1", who: dict[str, str] | None = None) -> str:
    await ws.send("start", ref=ref, dialect="loopback", participant=who or participant())
    started = await ws.reply("started", ref)
    assert started["op"] == "started", started
    assert started["status"] == "active"
    await ws.wait_for(
        lambda f: f["op"] == "subscribed" and f["conversation"] == started["conversation"]
    )
    return str(started["conversation"])


def texts(ws: WsClient, conversation: str) -> list[tuple[str, str]]:
    return [
        (e["sender"]["role"], e["content"]["text"])
        for e in ws.events(conversation)
        if e["type"] == "message"
    ]


async def wait_texts(ws: WsClient, conversation: str, count: int) -> list[tuple[str, str]]:
    async with asyncio.timeout(5):
        while len(texts(ws, conversation)) < count:
            await ws.wait_events(len(ws.events(conversation)) + 1, conversation)
    return texts(ws, conversation)


async def test_start_send_and_the_agent_answers_once(
    session_gateway: GatewayClient, emulator: tuple[Emulator, TestServer]
) -> None:
    platform, _ = emulator
    ws = await session_gateway.ws()
    conversation = await start(ws)
    await ws.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hello"}
    )
    ack = await ws.reply("ack", "m1")
    assert ack["op"] == "ack" and ack["id"] == f"{conversation}/m2" and ack["seq"] >= 1
    assert await wait_texts(ws, conversation, 2) == [("user", "hello"), ("agent", "echo: hello")]
    kinds = [e["type"] for e in ws.events(conversation)]
    assert kinds[:2] == ["status", "participant_joined"]
    assert kinds.count("typing") == 2
    seqs = [e["seq"] for e in ws.events(conversation)]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate: the echo shows once
    native = conversation.split(":", 1)[1]
    assert [r["text"] for r in platform.received(native) if r["type"] == "message"] == ["hello"]
    await ws.close()


async def test_a_repeated_ref_delivers_once(
    session_gateway: GatewayClient, emulator: tuple[Emulator, TestServer]
) -> None:
    platform, _ = emulator
    ws = await session_gateway.ws()
    who = participant()
    conversation = await start(ws, who=who)
    frame = {
        "ref": "same",
        "conversation": conversation,
        "content": {"kind": "text", "text": "once"},
    }
    await asyncio.gather(ws.send("send", **frame), ws.send("send", **frame))
    await ws.send("send", **frame)
    acks = []
    async with asyncio.timeout(5):
        while len(acks) < 3:
            await asyncio.sleep(0.01)
            acks = [f for f in ws.frames if f["op"] == "ack" and f["ref"] == "same"]
    assert len({(a["id"], a["seq"]) for a in acks}) == 1
    native = conversation.split(":", 1)[1]
    assert [r["text"] for r in platform.received(native) if r["type"] == "message"] == ["once"]
    # A repeated start ref does not open a second session either.
    await ws.send("start", ref="s1", dialect="loopback", participant=who)
    again = await ws.wait_for(lambda f: f["op"] == "started" and f is not ws.frames[1])
    assert again["conversation"] == conversation
    assert len(platform.chats) == 1
    await ws.close()


async def test_every_invalid_command_gets_its_error(session_gateway: GatewayClient) -> None:
    ws = await session_gateway.ws()
    conversation = await start(ws)
    cases = [
        (
            {
                "op": "send",
                "conversation": "loopback:nope",
                "content": {"kind": "text", "text": "x"},
            },
            "SESSION_NOT_FOUND",
        ),
        (
            {"op": "send", "conversation": conversation, "content": {"kind": "text"}},
            "INVALID_REQUEST",
        ),
        (
            {"op": "send", "conversation": conversation, "content": {"kind": "image"}},
            "INVALID_REQUEST",
        ),
        (
            {
                "op": "send",
                "conversation": conversation,
                "content": {"kind": "image", "url": "https://x/y.png"},
            },
            "UNSUPPORTED",
        ),
        ({"op": "read", "conversation": conversation}, "UNSUPPORTED"),
        ({"op": "forward", "conversation": conversation, "destination": "team"}, "UNSUPPORTED"),
        ({"op": "forward", "conversation": conversation}, "INVALID_REQUEST"),
        ({"op": "start", "dialect": "klingon", "participant": PARTICIPANT}, "UNKNOWN_DIALECT"),
        ({"op": "start", "dialect": "loopback"}, "INVALID_REQUEST"),
        (
            {"op": "start", "dialect": "loopback", "participant": {"from_type": "phone"}},
            "INVALID_REQUEST",
        ),
        ({"op": "recover", "conversation": "loopback:nope"}, "SESSION_NOT_FOUND"),
        ({"op": "end", "conversation": "loopback:*"}, "INVALID_REQUEST"),
        # the platform's own history, on a dialect that cannot page it
        ({"op": "history", "conversation": conversation, "source": "platform"}, "UNSUPPORTED"),
        (
            {"op": "history", "conversation": "loopback:nope", "source": "platform"},
            "SESSION_NOT_FOUND",
        ),
    ]
    for n, (frame, code) in enumerate(cases):
        await ws.send(ref=f"bad{n}", **frame)  # type: ignore[arg-type]
        error = await ws.reply("error", f"bad{n}")
        assert (error["op"], error["code"]) == ("error", code), (frame, error)
        assert error["message"]
    await ws.close()


async def test_end_arrives_as_ended_and_closes_the_session(session_gateway: GatewayClient) -> None:
    ws = await session_gateway.ws()
    conversation = await start(ws)
    await ws.send("end", ref="e", conversation=conversation)
    assert (await ws.reply("ack", "e"))["op"] == "ack"
    ended = await ws.wait_for(lambda f: f["op"] == "event" and f["event"]["type"] == "ended")
    assert ended["event"]["reason"] == "user" and ended["event"]["by"] == "user"
    await ws.send(
        "send",
        ref="late",
        conversation=conversation,
        content={"kind": "text", "text": "still there?"},
    )
    assert (await ws.reply("ack", "late"))["code"] == "SESSION_ENDED"
    await ws.send("recover", ref="r", conversation=conversation)
    recovered = await ws.reply("recovered", "r")
    assert recovered["status"] == "completed"
    assert recovered["events"][-1]["type"] == "ended"
    await ws.close()


async def test_the_agent_ends_it(
    session_gateway: GatewayClient, emulator: tuple[Emulator, TestServer]
) -> None:
    ws = await session_gateway.ws()
    conversation = await start(ws)
    await ws.send(
        "send", ref="b", conversation=conversation, content={"kind": "text", "text": "bye"}
    )
    ended = await ws.wait_for(lambda f: f["op"] == "event" and f["event"]["type"] == "ended")
    assert (ended["event"]["reason"], ended["event"]["by"]) == ("agent", "agent")
    await ws.close()


async def test_recover_returns_state_and_history_and_is_safe_twice(
    session_gateway: GatewayClient, emulator: tuple[Emulator, TestServer]
) -> None:
    platform, _ = emulator
    ws = await session_gateway.ws()
    conversation = await start(ws)
    await ws.send("send", ref="m", conversation=conversation, content={"kind": "text", "text": "a"})
    await wait_texts(ws, conversation, 2)
    await ws.close()
    other = await session_gateway.ws()
    for ref in ("r1", "r2"):
        await other.send("recover", ref=ref, conversation=conversation)
        recovered = await other.reply("recovered", ref)
        assert recovered["status"] == "active"
        assert [e["content"]["text"] for e in recovered["events"] if e["type"] == "message"] == [
            "a",
            "echo: a",
        ]
    platform.agent_says(conversation.split(":", 1)[1], "anything else?")
    events = await other.wait_events(1, conversation)
    assert events[0]["content"]["text"] == "anything else?"
    await other.close()


async def test_vendor_outage_gives_link_events_and_loses_nothing(
    session_gateway: GatewayClient, emulator: tuple[Emulator, TestServer]
) -> None:
    platform, _ = emulator
    ws = await session_gateway.ws()
    conversation = await start(ws)
    native = conversation.split(":", 1)[1]
    platform.fail_next(3)
    # Speak once the link is down: a long poll already under way would otherwise carry the
    # message before the outage begins, and nothing would be missed.
    await ws.wait_for(
        lambda f: (
            f["op"] == "event" and f["event"]["type"] == "link" and f["event"]["state"] == "down"
        )
    )
    platform.agent_says(native, "during the outage")
    restored = await ws.wait_for(
        lambda f: (
            f["op"] == "event"
            and f["event"]["type"] == "link"
            and f["event"]["state"] == "restored"
        )
    )
    links = [e for e in ws.events(conversation) if e["type"] == "link"]
    assert links[0]["state"] == "down" and links[0]["will_retry"] is True
    assert [e["attempt"] for e in links if e["state"] == "retrying"] == [1, 2, 3]
    assert restored["event"]["missed"] >= 1
    assert ("agent", "during the outage") in await wait_texts(ws, conversation, 1)
    await ws.close()


async def test_a_bad_frame_from_the_platform_is_reported_and_its_neighbours_published(
    session_gateway: GatewayClient, emulator: tuple[Emulator, TestServer]
) -> None:
    """DIALECTS.md, "Canonical mapping": one bad frame never takes good ones down with it on a
    connector's poll; it becomes an `error` event naming the frame and why."""

    async def rejected() -> float:
        counter = 'gateway_connector_frames_rejected_total{dialect="loopback"}'
        return metric(await scrape(session_gateway), counter)

    platform, _ = emulator
    counted = await rejected()
    ws = await session_gateway.ws()
    conversation = await start(ws)
    native = conversation.split(":", 1)[1]
    before = len(texts(ws, conversation))
    platform.agent_says(native, "before")
    platform.send_raw(native, {"kind": "message", "chat": native, "id": "bad", "text": 42})
    platform.agent_says(native, "after")
    assert (await wait_texts(ws, conversation, before + 2))[before:] == [
        ("agent", "before"),
        ("agent", "after"),
    ]
    errors = [e for e in ws.events(conversation) if e["type"] == "error"]
    assert [(e["code"], e["metadata"]["path"]) for e in errors] == [("INVALID_FRAME", "$.text")]
    assert await rejected() == counted + 1
    await ws.close()


async def test_a_role_announced_on_one_path_holds_on_the_other(
    session_gateway: GatewayClient, emulator: tuple[Emulator, TestServer]
) -> None:
    """DIALECTS.md: context is the conversation's, not the path's. A party announced by a
    webhook is known to the connector's frames, and one announced through the connector is
    known to a webhook's: the same frame maps to the same event whichever way it comes."""
    platform, _ = emulator
    ws = await session_gateway.ws()
    conversation = await start(ws)
    native = conversation.split(":", 1)[1]
    before = len(texts(ws, conversation))
    joined = {"kind": "joined", "chat": native, "from": {"id": "hook-bot", "role": "bot"}}
    assert (await session_gateway.ingest("loopback", joined))[0] == 202
    platform.send_raw(
        native,
        {"kind": "joined", "chat": native, "ts": 1, "from": {"id": "sup", "role": "supervisor"}},
    )
    for n, who in ((1, "hook-bot"), (2, "sup")):
        platform.send_raw(
            native,
            {
                "kind": "message",
                "chat": native,
                "id": f"x{n}",
                "text": f"via poll {n}",
                "from": {"id": who},
            },
        )
    assert (await wait_texts(ws, conversation, before + 2))[before:] == [
        ("bot", "via poll 1"),
        ("supervisor", "via poll 2"),
    ]
    hooked = {
        "kind": "message",
        "chat": native,
        "id": "w1",
        "text": "via hook",
        "from": {"id": "sup"},
    }
    assert (await session_gateway.ingest("loopback", hooked))[0] == 202
    assert (await wait_texts(ws, conversation, before + 3))[-1] == ("supervisor", "via hook")
    await ws.close()


async def test_http_commands(
    session_gateway: GatewayClient, emulator: tuple[Emulator, TestServer]
) -> None:
    client = session_gateway.client
    async with client.post(
        "/v1/conversations",
        json={
            "ref": "h1",
            "dialect": "loopback",
            "participant": participant(),
        },
    ) as response:
        assert response.status == 201
        started = await response.json()
    conversation = started["conversation"]
    async with client.post(
        f"/v1/conversations/{conversation}/messages",
        json={
            "ref": "hm",
            "content": {"kind": "text", "text": "via http"},
        },
    ) as response:
        assert response.status == 200
        ack = await response.json()
    assert ack["id"].startswith(conversation)
    async with client.post(
        f"/v1/conversations/{conversation}/typing", json={"active": True}
    ) as response:
        assert response.status == 200
    async with client.post(f"/v1/conversations/{conversation}/read", json={}) as response:
        assert (response.status, (await response.json())["error"]["code"]) == (422, "UNSUPPORTED")
    async with client.post(f"/v1/conversations/{conversation}/dance", json={}) as response:
        assert response.status == 404
    async with client.post(f"/v1/conversations/{conversation}/messages", data=b"[1]") as response:
        assert (response.status, (await response.json())["error"]["code"]) == (
            400,
            "INVALID_REQUEST",
        )
    async with client.post(
        "/v1/conversations/loopback:none/messages", json={"content": {"kind": "text", "text": "x"}}
    ) as response:
        assert (response.status, (await response.json())["error"]["code"]) == (
            404,
            "SESSION_NOT_FOUND",
        )
    platform, _ = emulator
    native = conversation.split(":", 1)[1]
    assert [r.get("text", r.get("active")) for r in platform.received(native)] == ["via http", True]


async def test_idle_sessions_are_released_and_resume_on_use(
    make_gateway: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> None:
    platform, server = emulator
    gateway: GatewayClient = await make_gateway(
        session_idle_s=0.3,
        # The idle check runs at each renewal (every ttl/3). A lease this short is still lost
        # only by a stall of over a second, which a loaded CI machine could reach with 0.3 s:
        # the session was then taken over (and polled) instead of released.
        lease_ttl_s=1.5,
        dialect_settings={"loopback": {"url": str(server.make_url("")), "poll_wait": "0.1"}},
    )
    ws = await gateway.ws()
    conversation = await start(ws)
    async with gateway.client.get("/readyz") as response:
        assert response.status == 200
    owned = gateway.client.app[SESSIONS].owned
    async with asyncio.timeout(10):  # idle for longer than session_idle_s: let go
        while conversation in owned:
            await asyncio.sleep(0.05)
    platform.agent_says(conversation.split(":", 1)[1], "while you were away")
    await asyncio.sleep(0.3)
    assert not any(
        e.get("content", {}).get("text") == "while you were away" for e in ws.events(conversation)
    )  # released: nobody polls the platform
    await ws.send(
        "send", ref="back", conversation=conversation, content={"kind": "text", "text": "back"}
    )
    assert (await ws.reply("ack", "back"))["op"] == "ack"
    got = await wait_texts(ws, conversation, 3)
    assert ("agent", "while you were away") in got and ("user", "back") in got
    await ws.close()


async def test_metrics_follow_sessions_and_vendor_requests(
    session_gateway: GatewayClient, hub_url: str
) -> None:
    before = await scrape(session_gateway)
    ws = await session_gateway.ws()
    conversation = await start(ws)
    await ws.send("send", ref="m", conversation=conversation, content={"kind": "text", "text": "x"})
    await ws.reply("ack", "m")
    after = await scrape(session_gateway)
    owned = 'gateway_sessions_owned{dialect="loopback",state="up"}'
    assert metric(after, owned) == metric(before, owned) + 1
    posts = 'gateway_vendor_request_seconds_count{dialect="loopback",method="POST"}'
    assert metric(after, posts) >= metric(before, posts) + 2  # the start and the send
    assert 'gateway_ws_frames_total{op="send",outcome="ok"}' in after
    if hub_url.startswith("redis"):
        assert metric(after, "gateway_hub_round_trips_total") > metric(
            before, "gateway_hub_round_trips_total"
        )
    await ws.close()
