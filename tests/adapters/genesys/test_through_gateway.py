"""Genesys through the real gateway parts: webhook ingest into the web app (memory hub), and
the connector's output published to the hub as the sessions layer does it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.genesys.emulator import Emulator
from gateway.adapter import Connector
from gateway.hub import Hub
from gateway.model import Link, Message, Send, Text
from tests.adapters.genesys.conftest import START, texts
from tests.support import GatewayClient, Inbound, stored

FIXTURES = Path(__file__).parents[2] / "fixtures" / "genesys"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture
def hub_url() -> str:
    """The memory hub only: these bodies carry fixed chat ids, and a Redis may outlive a run."""
    return "memory://"


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any]) -> GatewayClient:
    client: GatewayClient = await make_gateway(dialects=["genesys"])
    return client


async def test_ingest_dedups_reposts_and_restored_replays(gateway: GatewayClient) -> None:
    status, body = await gateway.ingest("genesys", fixture("gms_refresh_envelope"))
    assert status == 202
    assert (body["accepted"], body["duplicates"], body["ignored"]) == (8, 0, 0)
    status, body = await gateway.ingest("genesys", fixture("gms_refresh_envelope"))
    assert (body["accepted"], body["duplicates"]) == (0, 8)
    # the widget view of GMS entries 3 and 2 of the same chat (widget lines 2 and 1: the
    # widget counts from 0), live and replayed with `restored: true`
    conversation = "0001HaBT6FA0003N"
    status, body = await gateway.ingest(
        "genesys", fixture("widget_restored_replay"), conversation=conversation
    )
    assert (body["accepted"], body["duplicates"]) == (0, 3)
    status, log = await gateway.get(f"/v1/conversations/genesys:{conversation}/events")
    assert [e["seq"] for e in log["events"]] == list(range(1, 9))


async def test_a_widget_line_is_not_taken_for_another_gms_entry(gateway: GatewayClient) -> None:
    """Widget line 8 is GMS entry 9, a line the GMS envelope (entries 1-8) does not hold: it is
    stored, not dropped as a duplicate of entry 8 (a `Notice`)."""
    await gateway.ingest("genesys", fixture("gms_refresh_envelope"))
    conversation = "0001HaBT6FA0003N"
    line = {
        "type": "MessageReceived",
        "index": 8,
        "timestamp": 1432845103000,
        "party": {"id": "00015A7CCE8C0005", "type": "Agent", "name": "Anna"},
        "content": {"text": "Found it", "type": "text"},
    }
    _, body = await gateway.ingest("genesys", line, conversation=conversation)
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    _, log = await gateway.get(f"/v1/conversations/genesys:{conversation}/events")
    assert [(e["id"].rsplit("/", 1)[1], e["type"]) for e in log["events"][-2:]] == [
        ("8", "notice"),
        ("9", "message"),
    ]


async def test_a_reposted_body_without_times_is_a_duplicate(gateway: GatewayClient) -> None:
    body = [
        {"type": "AgentTyping", "isTyping": True, "chatId": "c-untimed"},
        {"type": "Interrupted", "chatId": "c-untimed"},
        {"type": "Error", "error": {"code": 100}, "chatId": "c-untimed"},
    ]
    _, first = await gateway.ingest("genesys", body)
    _, again = await gateway.ingest("genesys", body)
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (3, 0, 3)


async def test_ingest_rejects_a_bad_batch_whole(gateway: GatewayClient) -> None:
    frames = fixture("bad_second_frame_missing_content")
    status, body = await gateway.ingest("genesys", frames, conversation="c-bad")
    assert status == 422
    assert (body["error"]["code"], body["error"]["index"]) == ("INVALID_FRAME", 1)
    _, log = await gateway.get("/v1/conversations/genesys:c-bad/events")
    assert log["events"] == []


# --- connector → hub ------------------------------------------------------------------------


async def test_echo_stored_once_and_takeover_loses_nothing(
    make: Callable[..., Connector], emulator: Emulator, memory_hub: Hub, inbounds: list[Inbound]
) -> None:
    hub = memory_hub
    first = make()
    await hub.publish(await first.open(START))
    conv = first.conversation_id
    chat = conv.removeprefix("genesys:")
    inbound = Inbound(first, publish_to=hub)
    inbounds.append(inbound)
    (sent,) = await first.send(Send(conversation=conv, content=Text(text="hello")))
    await hub.publish([sent])
    await inbound.until(lambda ev: "echo: hello" in texts(ev))
    emulator.drop_connections(1)
    await emulator.agent_says(chat, "during the outage")
    await inbound.until(lambda ev: any(isinstance(e, Link) and e.state == "restored" for e in ev))
    state = msgspec.json.decode(msgspec.json.encode(first.snapshot()))  # persisted as JSON
    await first.close()
    await inbound.finished()
    await emulator.agent_says(chat, "between replicas")

    second = make()
    await hub.publish(await second.resume(state))
    takeover = Inbound(second, publish_to=hub)
    inbounds.append(takeover)
    (again,) = await second.send(Send(conversation=conv, content=Text(text="hello")))
    await hub.publish([again])
    await takeover.until(lambda ev: texts(ev).count("echo: hello") == 1)

    log = await stored(hub, conv)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert len({e.id for e in log}) == len(log)
    said = [
        (e.sender.role, e.content.text)
        for e in log
        if isinstance(e, Message) and isinstance(e.content, Text)
    ]
    assert said == [
        ("user", "hello"),
        ("agent", "echo: hello"),
        ("agent", "during the outage"),
        ("agent", "between replicas"),
        ("user", "hello"),
        ("agent", "echo: hello"),
    ]


async def test_ingest_of_a_reply_that_ended_by_error(gateway: GatewayClient) -> None:
    """The reply's own events (its error, `ended` reason `error`) come through ingest's two
    phases too, after its entries; re-posted, they are duplicates."""
    status, body = await gateway.ingest("genesys", fixture("gms_chat_ended_by_error"))
    assert (status, body["accepted"]) == (202, 3)
    _, log = await gateway.get("/v1/conversations/genesys:0001HaBT6FA0003N/events")
    assert [e["type"] for e in log["events"]] == ["participant_left", "error", "ended"]
    assert (log["events"][-1]["reason"], log["events"][-1]["by"]) == ("error", "system")
    _, again = await gateway.ingest("genesys", fixture("gms_chat_ended_by_error"))
    assert (again["accepted"], again["duplicates"]) == (0, 3)
