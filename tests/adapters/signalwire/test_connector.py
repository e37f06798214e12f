"""The signalwire connector against the emulator, over real HTTP and WebSocket on loopback."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.signalwire.connector import SignalWireConnector
from adapters.signalwire.emulator import Emulator
from adapters.signalwire.errors import rest_refusal
from gateway.adapter import DialectSettings
from gateway.errors import RequestError, SessionNotFound, Unsupported, VendorError
from gateway.model import (
    End,
    Ended,
    MarkRead,
    Message,
    Notice,
    Send,
    SetTyping,
    Text,
)
from gateway.vendor_http import VendorHttp
from tests.adapters.signalwire.conftest import ADDR, START, Factory, opened
from tests.support import Inbound


async def test_start_then_agent_messages_arrive_in_order(make: Factory, emulator: Emulator) -> None:
    connector, inbound = await opened(make)
    assert connector.conversation_id == f"signalwire:{ADDR}"
    await inbound.until(lambda _: inbound.texts() == ["Hi! How can I help?"])
    for text in ("one", "two", "three"):
        await emulator.agent_says(ADDR, text)
    await inbound.until(lambda _: len(inbound.texts()) == 4)
    assert inbound.texts() == ["Hi! How can I help?", "one", "two", "three"]
    assert {m.sender.role for m in inbound.of_type("message")} == {"agent"}
    assert all(m.id.startswith(f"signalwire:{ADDR}/") for m in inbound.of_type("message"))
    # every signalwire.event was acknowledged by its id
    await emulator.wait_for(lambda: len(emulator.acks) == 4)
    assert (
        "POST",
        "/api/fabric/conversations/join",
        {"conversation_id": ADDR},
    ) in emulator.received


async def test_send_reaches_the_platform_and_its_echo_is_the_same_event(
    make: Factory, emulator: Emulator
) -> None:
    connector, inbound = await opened(make)
    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Text("hello"))
    )
    assert isinstance(sent, Message)
    assert sent.sender.role == "user"
    assert (
        "POST",
        "/api/fabric/messages",
        {"conversation_id": ADDR, "text": "hello"},
    ) in emulator.received
    await inbound.until(lambda _: "echo: hello" in inbound.texts())
    echoes = [m for m in inbound.of_type("message") if m.content == Text("hello")]
    assert echoes == [sent]  # the echo decodes to exactly what send returned: one id, once
    row = next(r for r in emulator.conversations[ADDR].rows if r.get("text") == "hello")
    assert sent.id == f"signalwire:{ADDR}/{row['id']}"


async def test_user_bye_ends_the_session(make: Factory) -> None:
    connector, inbound = await opened(make)
    await connector.send(Send(conversation=connector.conversation_id, content=Text("bye")))
    await inbound.finished()
    ended = [e for e in inbound.events if isinstance(e, Ended)]
    assert len(ended) == 1
    assert ended[0].by == "agent"
    assert inbound.events[-1] is ended[0]


async def test_platform_end_arrives_as_ended(make: Factory, emulator: Emulator) -> None:
    _, inbound = await opened(make)
    await emulator.end_session(ADDR)
    await inbound.finished()
    assert isinstance(inbound.events[-1], Ended)


async def test_commands_the_platform_cannot_carry(make: Factory) -> None:
    connector, _ = await opened(make)
    conv = connector.conversation_id
    for command in (
        SetTyping(conversation=conv),
        MarkRead(conversation=conv),
        End(conversation=conv),
    ):
        with pytest.raises(Unsupported):
            await connector.send(command)
    with pytest.raises(RequestError):
        await connector.send(Send(conversation=conv, content=Text("")))


async def test_forced_reconnect_reports_link_and_loses_nothing(
    make: Factory, emulator: Emulator
) -> None:
    _, inbound = await opened(make)
    await inbound.until(lambda _: len(inbound.texts()) == 1)
    emulator.refuse_connections = True
    await emulator.drop_connections()
    await inbound.until(lambda _: any(link.state == "retrying" for link in inbound.of_type("link")))
    for text in ("while", "you", "were", "away"):  # more than one history page (page_size 3)
        await emulator.agent_says(ADDR, text)
    emulator.add_call_log(ADDR, "missed")
    emulator.refuse_connections = False
    await inbound.until(lambda _: any(link.state == "restored" for link in inbound.of_type("link")))
    links = inbound.of_type("link")
    assert links[0].state == "down"
    assert links[0].will_retry
    assert links[1].state == "retrying"
    assert links[1].attempt == 1
    assert links[1].max_attempts == 8
    restored = next(link for link in links if link.state == "restored")
    assert restored.missed == 5
    assert inbound.texts() == ["Hi! How can I help?", "while", "you", "were", "away"]
    assert [e.kind for e in inbound.events if isinstance(e, Notice)] == ["call_log"]
    await emulator.agent_says(ADDR, "live again")
    await inbound.until(lambda _: inbound.texts()[-1:] == ["live again"])
    assert len({m.id for m in inbound.of_type("message")}) == len(inbound.of_type("message"))


async def test_a_takeover_does_not_resume_the_old_owners_shared_session(
    make: Factory, emulator: Emulator
) -> None:
    """A snapshot names no Relay session (older ones did: their `protocol` and
    `authorization_state` are ignored): the old owner's socket is shared by its other
    conversations, and resuming its session elsewhere would take it from them."""
    first, _ = await opened(make)
    snapshot = first.snapshot()
    assert "protocol" not in snapshot and "authorization_state" not in snapshot
    assert snapshot["self_id"] == "subscriber-1"
    await first.close()
    (protocol,) = emulator._links
    second = make()
    await second.resume({**snapshot, "protocol": protocol, "authorization_state": "old"})
    assert "protocol" not in emulator.connects[-1]
    assert "authorization_state" not in emulator.connects[-1]


async def test_resume_from_snapshot_continues_without_loss(
    make: Factory, emulator: Emulator
) -> None:
    first, inbound = await opened(make)
    await emulator.agent_says(ADDR, "before")
    await inbound.until(lambda _: inbound.texts()[-1:] == ["before"])
    snapshot = first.snapshot()
    await first.close()
    await inbound.finished()
    await emulator.agent_says(ADDR, "during 1")
    await emulator.agent_says(ADDR, "during 2")

    second = make()
    fetched = await second.resume(snapshot)
    assert second.conversation_id == first.conversation_id
    fetched_texts = [
        e.content.text for e in fetched if isinstance(e, Message) and isinstance(e.content, Text)
    ]
    assert fetched_texts[-2:] == ["during 1", "during 2"]
    resumed = Inbound(second)
    await emulator.agent_says(ADDR, "after")
    await resumed.until(lambda _: "after" in resumed.texts())
    seen = fetched_texts + resumed.texts()
    assert seen.count("during 1") == 1
    assert seen.count("during 2") == 1
    assert seen.index("during 2") < seen.index("after")


async def test_giving_up_reports_link_down_and_ends_inbound(
    make: Factory, emulator: Emulator
) -> None:
    _, inbound = await opened(make, max_attempts="2")
    emulator.refuse_connections = True
    await emulator.drop_connections()
    await inbound.finished()
    states = [(link.state, link.attempt, link.will_retry) for link in inbound.of_type("link")]
    assert states == [
        ("down", None, True),
        ("retrying", 1, None),
        ("retrying", 2, None),
        ("down", None, False),
    ]


async def test_bad_token_is_a_vendor_error(make: Factory) -> None:
    with pytest.raises(VendorError) as info:
        await make(token="wrong").open(START)
    assert info.value.code == "VENDOR_UNAUTHORIZED"
    assert info.value.details["vendor_code"] == -32002


async def test_rest_errors_map_to_gateway_errors(make: Factory, emulator: Emulator) -> None:
    stale = {
        "conversation": "gone",
        "address_id": "gone",
        "self_id": None,
        "protocol": None,
        "since": None,
    }
    with pytest.raises(SessionNotFound) as info:
        await make().resume(stale)
    assert info.value.details["vendor_code"] == "not_found"

    connector, inbound = await opened(make)
    await emulator.end_session(ADDR)
    await inbound.finished()
    with pytest.raises(SessionNotFound):
        await connector.send(Send(conversation=connector.conversation_id, content=Text("hi?")))


async def test_not_configured(vendor_http: VendorHttp) -> None:
    SignalWireConnector(
        DialectSettings(url=None, options={"token": "t"}), vendor_http
    )  # hosts: default
    with pytest.raises(RequestError):
        SignalWireConnector(DialectSettings(url="http://x", options={}), vendor_http)
    with pytest.raises(RequestError) as info:
        SignalWireConnector(
            DialectSettings(url="http://x", options={"token": "t", "max_attempts": "many"}),
            vendor_http,
        )
    assert info.value.details["parameter"] == "max_attempts"


async def test_bad_token_is_not_recoverable(make: Factory, emulator: Emulator) -> None:
    with pytest.raises(VendorError) as info:
        await make(token="wrong").open(START)
    assert info.value.recoverable is False
    assert info.value.body()["code"] == "VENDOR_UNAUTHORIZED"
    refused = rest_refusal(401, b'{"errors": [{"code": "unauthorized", "message": "no"}]}')
    assert isinstance(refused, VendorError)
    assert (refused.code, refused.recoverable) == ("VENDOR_UNAUTHORIZED", False)
    assert rest_refusal(503, b"").recoverable is True  # an outage may pass


async def test_a_revoked_token_gives_up_at_once(make: Factory, emulator: Emulator) -> None:
    """The session's state is refused (-32003), so the connector drops it and connects afresh,
    as the SDK does; the token is refused too (-32002): no retry helps."""
    _, inbound = await opened(make, max_attempts="5")
    emulator.revoke("good-token")
    await emulator.drop_connections()
    await inbound.finished()
    links = [(link.state, link.will_retry) for link in inbound.of_type("link")]
    assert links == [("down", True), ("retrying", None), ("down", False)]
    first, resumed, fresh = emulator.connects
    assert "authorization_state" not in first
    assert set(resumed) >= {"authentication", "authorization_state", "protocol"}
    assert "authorization_state" not in fresh and "protocol" not in fresh


async def test_reconnect_sends_the_saved_authorization_state_and_protocol(
    make: Factory, emulator: Emulator
) -> None:
    """`signalwire.connect` on a reconnect: the token again, the `authorization_state` of the
    last `signalwire.authorization.state` event and the previous `protocol`, which resume
    the session."""
    _, inbound = await opened(make)
    await inbound.until(lambda _: len(inbound.texts()) == 1)
    ((protocol, link),) = emulator._links.items()
    state = link.authorization_state
    assert state is not None
    await emulator.drop_connections()
    await emulator.agent_says(ADDR, "while away")
    await inbound.until(lambda _: "while away" in inbound.texts())
    first, again = emulator.connects
    assert first["authentication"] == {"jwt_token": "good-token"}
    assert "protocol" not in first and "authorization_state" not in first
    assert again["authentication"] == {"jwt_token": "good-token"}
    assert (again["protocol"], again["authorization_state"]) == (protocol, state)
    assert list(emulator._links) == [protocol]  # the same session, resumed
    assert link.authorization_state != state  # a new state was handed out
    states = [e.state for e in inbound.of_type("link")]
    assert states == ["down", "retrying", "restored"]


async def test_a_stale_authorization_state_falls_back_to_a_fresh_connect(
    make: Factory, emulator: Emulator
) -> None:
    """A reconnect with a state the platform refuses (-32003) connects afresh, losing nothing:
    the history backfill brings what the old session had not acknowledged."""
    _, inbound = await opened(make)
    await inbound.until(lambda _: len(inbound.texts()) == 1)
    ((old, link),) = emulator._links.items()
    link.authorization_state = "rotated"  # the platform no longer knows the one we hold
    await emulator.drop_connections()
    await emulator.agent_says(ADDR, "between sessions")
    await inbound.until(lambda _: "between sessions" in inbound.texts())
    resumed, fresh = emulator.connects[1:]
    assert resumed["protocol"] == old
    assert "protocol" not in fresh and "authorization_state" not in fresh
    assert len(emulator._links) == 2  # a new session
    assert inbound.texts().count("between sessions") == 1
    later = inbound
    await emulator.agent_says(ADDR, "after")
    await later.until(lambda _: "after" in later.texts())


async def test_metadata_and_details_go_out_with_a_message_and_come_back(
    make: Factory, emulator: Emulator
) -> None:
    connector, _ = await opened(make, address_id="me-1")
    (group,) = emulator.conversations
    metadata = {"order": 7, "details": {"channel": "web"}}
    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Text("hello"), metadata=metadata)
    )
    body = {
        "group_id": group,
        "text": "hello",
        "from_fabric_address_id": "me-1",
        "metadata": {"order": 7},
        "details": {"channel": "web"},
    }
    assert ("POST", "/api/fabric/messages", body) in emulator.received
    assert isinstance(sent, Message)
    assert sent.metadata == metadata  # the echo: the platform's row, as decoded
    page = await connector.history(None, 10)
    (mine,) = [e for e in page.events if isinstance(e, Message) and e.content == Text("hello")]
    assert (mine.id, mine.metadata, mine.sender.role) == (sent.id, metadata, "user")


async def test_early_frames_before_the_connect_answer_are_kept(
    make: Factory, emulator: Emulator
) -> None:
    """Events the platform pushes before it answers `signalwire.connect` (here: redelivered
    ones) are acknowledged and delivered once the reader starts, not lost."""
    _, inbound = await opened(make)
    await inbound.until(lambda _: len(inbound.texts()) == 1)
    emulator.refuse_connections = True
    await emulator.drop_connections()
    await inbound.until(lambda events: any(getattr(e, "state", None) == "retrying" for e in events))
    early = await emulator.agent_says(ADDR, "early")  # pending: no socket to send it on
    (link,) = emulator._links.values()
    (event_id,) = [k for k, e in link.pending.items() if e["params"]["params"] == early]
    emulator.redeliver_first = True
    emulator.refuse_connections = False
    await inbound.until(lambda _: "early" in inbound.texts())
    await emulator.wait_for(lambda: event_id in emulator.acks)
    assert event_id not in link.pending
    assert inbound.texts() == ["Hi! How can I help?", "early"]
    assert [m.id for m in inbound.of_type("message")][-1] == f"signalwire:{ADDR}/{early['id']}"
    # the frame before the answer does not break the handshake: the link is live afterwards
    await emulator.agent_says(ADDR, "after")
    await inbound.until(lambda _: inbound.texts()[-1:] == ["after"])


async def test_the_newer_join_with_our_own_address(make: Factory, emulator: Emulator) -> None:
    connector, inbound = await opened(make, address_id="me-1")
    join = next(body for m, path, body in emulator.received if path.endswith("/join"))
    assert join == {"from_fabric_address_id": "me-1", "fabric_address_ids": [ADDR, "me-1"]}
    (group,) = emulator.conversations
    assert connector.conversation_id == f"signalwire:{group}"
    assert connector.snapshot()["group_id"] == group
    await inbound.until(lambda _: inbound.texts() == ["Hi! How can I help?"])

    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Text("hello"))
    )
    assert (
        "POST",
        "/api/fabric/messages",
        {"group_id": group, "text": "hello", "from_fabric_address_id": "me-1"},
    ) in emulator.received
    assert isinstance(sent, Message)
    assert (sent.sender.role, sent.sender.id) == ("user", "me-1")
    await inbound.until(lambda _: "echo: hello" in inbound.texts())
    assert [m for m in inbound.of_type("message") if m.content == Text("hello")] == [sent]

    # A takeover reads the group's history (the address joined names no conversation there):
    # our own rows, which carry no is_author, stay the user's.
    snapshot = connector.snapshot()
    await connector.close()
    await emulator.agent_says(group, "while away")
    second = make(address_id="me-1")
    fetched = await second.resume({**snapshot, "since": None})
    assert second.conversation_id == connector.conversation_id
    roles = [
        (e.sender.role, e.content.text)
        for e in fetched
        if isinstance(e, Message) and isinstance(e.content, Text)
    ]
    assert roles == [
        ("agent", "Hi! How can I help?"),
        ("user", "hello"),
        ("agent", "echo: hello"),
        ("agent", "while away"),
    ]


async def test_a_platform_that_never_answers_connect_is_unreachable(
    make: Factory, emulator: Emulator
) -> None:
    emulator.answer_connect = False
    with pytest.raises(VendorError) as info:
        await make(timeout_s="0.2").open(START)
    assert (info.value.code, info.value.recoverable) == ("VENDOR_UNREACHABLE", True)


async def test_emulator_shutdown_closes_sockets_still_connecting(
    relay: TestServer, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A socket whose `signalwire.connect` is not answered yet holds no link; shutting the
    emulator down must close it too, or the server waits on its handler (and a connector
    waits on the answer) until a timeout."""
    emulator.answer_connect = False
    ws = await http.ws_connect(relay.make_url("/"))
    await ws.send_json({"jsonrpc": "2.0", "id": "c1", "method": "signalwire.connect"})
    await emulator.wait_for(lambda: any(kind == "ws" for kind, _, _ in emulator.received))
    async with asyncio.timeout(5):
        await relay.close()
        msg = await ws.receive()
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()


async def test_a_bad_frame_on_the_socket_is_an_error_event_and_the_link_goes_on(
    make: Factory, emulator: Emulator
) -> None:
    connector, inbound = await opened(make)
    await inbound.until(lambda _: len(inbound.texts()) == 1)
    conv = emulator.conversations[ADDR]
    bad = {"id": "b1", "conversation_id": ADDR, "ts": "soon", "type": "message", "text": "x"}
    await emulator._emit(conv.subscriber, "conversation.message", bad)
    await emulator.agent_says(ADDR, "still here")
    await inbound.until(lambda _: "still here" in inbound.texts())
    (error,) = inbound.of_type("error")
    assert (error.code, error.metadata["path"]) == ("INVALID_FRAME", "$.params.params.ts")
    assert error.conversation_id == connector.conversation_id
