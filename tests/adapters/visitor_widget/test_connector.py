"""visitor_widget connector against the real emulator over real WebSockets on loopback."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.visitor_widget import VisitorWidgetAdapter
from adapters.visitor_widget.connector import VisitorWidgetConnector
from adapters.visitor_widget.emulator import Emulator
from gateway.adapter import DialectSettings
from gateway.errors import RequestError, SessionNotFound, VendorError
from gateway.model import (
    Availability,
    End,
    Ended,
    Error,
    Event,
    Image,
    Link,
    MarkRead,
    Message,
    Notice,
    Participant,
    ParticipantJoined,
    ParticipantLeft,
    Receipt,
    Send,
    SetTyping,
    Start,
    Status,
    Text,
    Typing,
)
from gateway.vendor_http import VendorHttp
from tests.support import Inbound

KEY = "test-key"
START = Start(
    dialect="visitor_widget",
    participant=Participant(from_="ann@example.com", from_type="email", name="Ann"),
)
E = TypeVar("E", bound=Event)
PAGE_NULL = {"pageUrl": None, "pageTitle": None, "referer": None, "domain": None}
FAST = {"backoff_s": "0.01", "backoff_max_s": "0.05", "timeout_s": "2", "max_attempts": "50"}


async def has(inbound: Inbound, kind: type[E], **fields: Any) -> E:
    """The first collected `kind` event whose `fields` match, waiting for it."""

    def match(e: Event) -> bool:
        return isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())

    await inbound.until(lambda events: any(match(e) for e in events))
    found: E = next(e for e in inbound.events if match(e))
    return found


def say(connector: VisitorWidgetConnector, text: str) -> Send:
    return Send(conversation=connector.conversation_id, content=Text(text))


def texts(events: list[Event]) -> list[str]:
    return [
        e.content.text for e in events if isinstance(e, Message) and isinstance(e.content, Text)
    ]


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(key=KEY, agent_delay=0, typing_delay=0, reply_delay=0, echo_delay=0)


@pytest.fixture
async def server(emulator: Emulator) -> AsyncIterator[TestServer]:
    async with TestServer(emulator.app) as srv:
        yield srv


@pytest.fixture
def make(server: TestServer, vendor_http: VendorHttp) -> Callable[..., VisitorWidgetConnector]:
    def make(**options: str) -> VisitorWidgetConnector:
        settings = DialectSettings(
            url=str(server.make_url("")), options={"key": KEY, **FAST, **options}
        )
        connector = VisitorWidgetAdapter().connector(settings, vendor_http)
        assert isinstance(connector, VisitorWidgetConnector)
        return connector

    return make


@pytest.fixture
async def session(
    make: Callable[..., VisitorWidgetConnector],
) -> AsyncIterator[tuple[VisitorWidgetConnector, Inbound, list[Event]]]:
    connector = make()
    opened = list(await connector.open(START))
    inbound = Inbound(connector)
    yield connector, inbound, opened
    await connector.close()
    await inbound.finished()


async def test_start(session: Any, emulator: Emulator) -> None:
    connector, inbound, opened = session
    chat = emulator.chat_of(connector.snapshot()["visitor_id"])
    assert connector.conversation_id == f"visitor_widget:{chat.id}"
    assert [type(e) for e in opened] == [Status, Availability]
    assert (opened[0].status, opened[1].online) == ("queued", True)
    name, data = emulator.received[0]
    assert name == "visitor.connect"
    assert data == {
        "id": None,  # src/visitor.ts: always sent, null until the platform gave one
        "key": KEY,
        "name": "Ann",
        "email": "ann@example.com",
        "lang": "en",
        **PAGE_NULL,
    }
    joined = await has(inbound, ParticipantJoined)
    assert joined.participant.role == "agent"
    assert joined.participant.name == "Emma"
    await has(inbound, Status, status="active")


async def test_messages_both_ways_and_echo_once(session: Any, emulator: Emulator) -> None:
    connector, inbound, _ = session
    await has(inbound, ParticipantJoined)
    for text in ("one", "two", "three"):
        (sent,) = await connector.send(say(connector, text))
        assert isinstance(sent, Message)
        assert sent.sender.role == "user"
        assert emulator.received[-1] == (
            "chat.message",
            {"content": {"type": "text", "text": text}},
        )
        await inbound.until(lambda ev, t=text: f"echo: {t}" in texts(ev))
    chat = emulator.chat_of(connector.snapshot()["visitor_id"])
    user_rows = [r["id"] for r in chat.messages if r["subType"] == "contact"]
    assert texts(inbound.events) == ["echo: one", "echo: two", "echo: three"]
    assert not {f"{connector.conversation_id}/{r}" for r in user_rows} & {
        e.id for e in inbound.events
    }
    assert len({e.id for e in inbound.events}) == len(inbound.events)
    typing = [e.active for e in inbound.events if isinstance(e, Typing)]
    assert typing == [True, False] * 3


async def test_typing_and_read_both_ways(session: Any, emulator: Emulator) -> None:
    """Typing and read are emitted without an ack, as the SDK does (src/visitor.ts `send(name,
    data)`, which socket.io-client 2 puts on the wire with a trailing null): the emulator
    never answers them, so a connector waiting for an answer would fail here."""
    connector, inbound, _ = session
    conversation = connector.conversation_id
    chat = emulator.chat_of(connector.snapshot()["visitor_id"])
    async with asyncio.timeout(1):  # well under the ack timeout (FAST: 2 s)
        assert await connector.send(SetTyping(conversation=conversation, preview="He")) == []
        assert await connector.send(SetTyping(conversation=conversation, active=False)) == []
        assert await connector.send(MarkRead(conversation=conversation)) == []
    receipt = await has(inbound, Receipt)
    assert (receipt.status, receipt.sender.role, receipt.up_to) == (
        "read",
        "user",
        chat.last_read_at,
    )
    assert chat.typing == {"is": False, "text": None}
    assert emulator.packets[-3:] == [
        ("chat.typing", [{"typing": {"is": True, "text": "He"}}, None], False),
        ("chat.typing", [{"typing": {"is": False, "text": None}}, None], False),
        ("chat.read", [None, None], False),
    ]


async def test_close_sends_null_and_waits_for_its_ack(session: Any, emulator: Emulator) -> None:
    connector, inbound, _ = session
    await connector.send(End(conversation=connector.conversation_id))
    assert emulator.packets[-1] == ("chat.close", [None], True)
    await has(inbound, Ended)


async def test_reconnect_resends_the_identity(session: Any, emulator: Emulator) -> None:
    """Every later `visitor.connect` carries the identity the first ack returned (src/visitor.ts
    visitorConnect: the connect values, then the identity but for bannedAt/chatId/status)."""
    connector, inbound, _ = session
    visitor = connector.snapshot()["visitor_id"]
    await emulator.drop_connections()
    await has(inbound, Link, state="restored")
    first, again = [d for name, d in emulator.received if name == "visitor.connect"]
    assert first["id"] is None
    assert again == {
        **first,
        "id": visitor,
        "name": "Ann",
        "email": "ann@example.com",
        "phone": None,
        "lang": "en",
        "group": None,
        "variables": {},
        "visits": 1,
    }
    assert not {"chatId", "bannedAt", "status"} & set(again)


async def test_agent_assignment_rating_and_deletion(session: Any, emulator: Emulator) -> None:
    connector, inbound, _ = session
    await has(inbound, ParticipantJoined)
    chat_id = connector.snapshot()["chat_id"]
    assigned = await emulator.assign_agent(chat_id)
    joined = await has(
        inbound, ParticipantJoined, id=f"{connector.conversation_id}/{assigned['id']}"
    )
    assert (joined.participant.id, joined.participant.name) == ("agent-1", "Emma")
    assert joined.metadata == {"assigned_by": "agent-2"}
    unassigned = await emulator.unassign_agent(chat_id)
    left = await has(inbound, ParticipantLeft, id=f"{connector.conversation_id}/{unassigned['id']}")
    assert left.metadata == {"unassigned_by": "agent-2"}
    await emulator.rate_chat(chat_id, 4, "fine")
    rated = await has(inbound, Notice)
    assert rated.metadata == {"rating": 4, "rating_text": "fine"}
    await emulator.delete_chat(chat_id)
    ended = await has(inbound, Ended)
    assert (ended.reason, ended.metadata) == ("completed", {"deleted": True})
    await inbound.finished()


async def test_bye_ends_the_session(session: Any) -> None:
    connector, inbound, _ = session
    await connector.send(say(connector, "bye"))
    ended = await has(inbound, Ended)
    assert (ended.reason, ended.by) == ("agent", "agent")
    await inbound.finished()
    assert texts(inbound.events)[-1] == "echo: bye"
    with pytest.raises(SessionNotFound):
        await connector.send(say(connector, "anyone?"))


async def test_end_command(session: Any) -> None:
    connector, inbound, _ = session
    assert await connector.send(End(conversation=connector.conversation_id)) == []
    ended = await has(inbound, Ended)
    assert (ended.reason, ended.by) == ("user", "user")
    await inbound.finished()


async def test_agent_controls(session: Any, emulator: Emulator) -> None:
    connector, inbound, _ = session
    chat_id = connector.snapshot()["chat_id"]
    row = await emulator.agent_says(chat_id, "Hi from Emma")
    message = await has(inbound, Message, id=f"{connector.conversation_id}/{row['id']}")
    assert message.sender.role == "agent"
    await emulator.set_account_status("offline")
    await has(inbound, Availability, online=False)
    await emulator.server_error(chat_id, "Internal failure")
    error = await has(inbound, Error)
    assert (error.code, error.recoverable, error.metadata["vendor_code"]) == (
        "VENDOR_ERROR",
        True,
        500,
    )
    await emulator.end_session(chat_id)
    await has(inbound, Ended, reason="agent")
    await inbound.finished()


async def test_a_bad_frame_is_an_error_event_and_the_session_goes_on(
    session: Any, emulator: Emulator
) -> None:
    """A known event that breaks its schema cannot be re-sent by the platform: it becomes an
    `error` event naming why (the shared pipeline's isolation), and later frames still flow."""
    connector, inbound, _ = session
    chat_id = connector.snapshot()["chat_id"]
    await emulator.send_raw(chat_id, "chat.agent_typing", {"chatId": chat_id, "typing": {"is": 1}})
    error = await has(inbound, Error)
    assert (error.code, error.metadata["path"]) == ("INVALID_FRAME", "$.data.typing.is")
    row = await emulator.agent_says(chat_id, "still here")
    await has(inbound, Message, id=f"{connector.conversation_id}/{row['id']}")


async def test_a_bad_row_in_the_connect_ack_costs_that_row_alone(
    session: Any, emulator: Emulator
) -> None:
    """The ack after a reconnect is decoded as its state plus one frame per new row: a row
    that cannot be mapped is one `error` event, and the rows around it still arrive."""
    connector, inbound, _ = session
    await has(inbound, Status, status="active")
    chat_id = connector.snapshot()["chat_id"]
    chat = emulator.chats[chat_id]
    emulator.refuse_connections = True
    await emulator.drop_connections()
    await has(inbound, Link, state="down")
    bad = {**chat.messages[-1], "id": "m-bad", "createdAt": "soon"}
    chat.messages.append(bad)
    after = await emulator.agent_says(chat_id, "after the bad row")
    emulator.refuse_connections = False
    await has(inbound, Link, state="restored")
    await has(inbound, Message, id=f"{connector.conversation_id}/{after['id']}")
    error = await has(inbound, Error)
    assert (error.code, error.metadata["path"]) == ("INVALID_FRAME", "$.data.message.createdAt")


async def test_forced_reconnect_loses_nothing(session: Any, emulator: Emulator) -> None:
    connector, inbound, _ = session
    await has(inbound, Status, status="active")
    chat_id = connector.snapshot()["chat_id"]
    emulator.refuse_connections = True
    await emulator.drop_connections()
    await has(inbound, Link, state="down")
    await has(inbound, Link, state="retrying", attempt=2)
    missed = await emulator.agent_says(chat_id, "said while you were away")
    pending = asyncio.create_task(connector.send(say(connector, "queued")))  # waits for the link
    emulator.refuse_connections = False
    restored = await has(inbound, Link, state="restored")
    assert restored.missed == 1
    assert restored.attempt is not None
    assert restored.attempt >= 2
    await has(inbound, Message, id=f"{connector.conversation_id}/{missed['id']}")
    (sent,) = await pending
    await inbound.until(lambda ev: "echo: queued" in texts(ev))
    ids = [e.id for e in inbound.events]
    assert len(ids) == len(set(ids))
    assert sent.id not in ids
    # Neither status nor availability is re-emitted by the reconnect's `initialized`.
    assert sum(isinstance(e, Status) for e in inbound.events) == 1
    assert not any(isinstance(e, Availability) for e in inbound.events)


async def test_gives_up_after_max_attempts(
    make: Callable[..., VisitorWidgetConnector], emulator: Emulator
) -> None:
    connector = make(max_attempts="2")
    await connector.open(START)
    inbound = Inbound(connector)
    emulator.refuse_connections = True
    await emulator.drop_connections()
    await inbound.finished()
    links = [e for e in inbound.events if isinstance(e, Link)]
    assert [(e.state, e.attempt) for e in links] == [
        ("down", None),
        ("retrying", 1),
        ("retrying", 2),
        ("down", None),
    ]
    assert links[-1].will_retry is False
    assert isinstance(inbound.events[-1], Ended)
    assert inbound.events[-1].reason == "error"
    await connector.close()


async def test_resume_from_snapshot(
    make: Callable[..., VisitorWidgetConnector], emulator: Emulator
) -> None:
    first = make()
    await first.open(START)
    inbound = Inbound(first)
    chat_id = first.snapshot()["chat_id"]
    seen = await emulator.agent_says(chat_id, "before takeover")
    await has(inbound, Message, id=f"{first.conversation_id}/{seen['id']}")
    await has(inbound, Status, status="active")
    await inbound.until(lambda ev: first.snapshot()["last_id"] == seen["id"])
    state = first.snapshot()
    await first.close()
    await inbound.finished()

    missed = await emulator.agent_says(chat_id, "during takeover")
    second = make()
    fetched = await second.resume(state)
    assert second.conversation_id == first.conversation_id
    name, again = emulator.received[-1]
    assert name == "visitor.connect"
    assert (again["id"], again["name"], again["email"]) == (
        state["visitor_id"],
        "Ann",
        "ann@example.com",
    )
    assert [e.id for e in fetched] == [f"{first.conversation_id}/{missed['id']}"]
    inbound = Inbound(second)
    (sent,) = await second.send(say(second, "after"))
    await inbound.until(lambda ev: "echo: after" in texts(ev))
    assert sent.id not in {e.id for e in inbound.events}
    assert emulator.received[-1][0] == "chat.message"
    await second.close()


async def test_resume_unknown_visitor(make: Callable[..., VisitorWidgetConnector]) -> None:
    with pytest.raises(SessionNotFound) as info:
        await make().resume({"visitor_id": "nobody", "chat_id": "c0"})
    assert info.value.details["vendor_code"] == 404


async def test_wrong_key(make: Callable[..., VisitorWidgetConnector]) -> None:
    with pytest.raises(VendorError) as info:
        await make(key="wrong").open(START)
    assert (info.value.details["vendor_code"], info.value.details["vendor_type"]) == (
        401,
        "auth_error",
    )


async def test_unreachable(vendor_http: VendorHttp) -> None:
    settings = DialectSettings(url="http://127.0.0.1:9", options={"key": KEY, **FAST})
    with pytest.raises(VendorError):
        await VisitorWidgetAdapter().connector(settings, vendor_http).open(START)


async def test_file_upload(session: Any, emulator: Emulator, server: TestServer) -> None:
    connector, inbound, _ = session
    png = b"\x89PNG\r\n\x1a\nfake"
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Image(url=url, file_name="a.png"))
    )
    assert isinstance(sent.content, Image)
    assert sent.content.file_name == "a.png"
    assert [name for name, _ in emulator.received[-2:]] == [
        "chat.upload_init",
        "chat.upload_finish",
    ]
    assert sent.content.url is not None
    async with aiohttp.ClientSession() as http, http.get(sent.content.url) as response:
        assert await response.read() == png
    await inbound.until(
        lambda ev: bool(emulator.chat_of(connector.snapshot()["visitor_id"]).messages)
    )
    assert sent.id not in {e.id for e in inbound.events}


async def test_resume_an_ended_session(make: Callable[..., VisitorWidgetConnector]) -> None:
    first = make()
    await first.open(START)
    inbound = Inbound(first)
    await first.send(End(conversation=first.conversation_id))
    await inbound.finished()
    state = first.snapshot()
    await first.close()
    second = make()
    assert await second.resume(state) == []
    inbound = Inbound(second)
    await inbound.finished()
    assert inbound.events == []
    await second.close()


def test_bad_option(make: Callable[..., VisitorWidgetConnector]) -> None:
    with pytest.raises(RequestError) as info:
        make(backoff_s="soon")
    assert info.value.details["parameter"] == "backoff_s"


# -- lazy chats: the platform creates the chat with the first message -------------------------


@pytest.mark.parametrize("lazy", [False, True], ids=["chat-at-connect", "chat-on-first-message"])
async def test_open_and_talk_in_both_chat_modes(
    make: Callable[..., VisitorWidgetConnector], emulator: Emulator, lazy: bool
) -> None:
    emulator.lazy_chat = lazy
    connector = make()
    opened = await connector.open(START)
    visitor = connector.snapshot()["visitor_id"]
    assert [name for name, _ in emulator.received] == ["visitor.connect"]  # nothing else sent
    if lazy:
        assert connector.conversation_id == f"visitor_widget:{visitor}"
        assert connector.snapshot()["chat_id"] is None
        assert not emulator.chats
        assert [type(e) for e in opened] == [Availability]
        # typing and read before the chat exists are harmless
        await connector.send(SetTyping(conversation=connector.conversation_id))
        await connector.send(MarkRead(conversation=connector.conversation_id))
    else:
        assert connector.conversation_id == f"visitor_widget:{emulator.chat_of(visitor).id}"
        assert [type(e) for e in opened] == [Status, Availability]
    conversation = connector.conversation_id
    inbound = Inbound(connector)
    (sent,) = await connector.send(say(connector, "hello"))
    chat = emulator.chat_of(visitor)
    assert connector.snapshot()["chat_id"] == chat.id
    (row,) = [r for r in chat.messages if r["subType"] == "contact"]
    assert (sent.conversation_id, sent.id) == (conversation, f"{conversation}/{row['id']}")
    await inbound.until(lambda ev: "echo: hello" in texts(ev))
    await has(inbound, ParticipantJoined)
    await has(inbound, Status, status="active")
    assert connector.conversation_id == conversation  # never changes
    assert {e.conversation_id for e in inbound.events} == {conversation}
    ids = [e.id for e in inbound.events]
    assert len(ids) == len(set(ids)) and sent.id not in ids  # the echo was dropped
    assert [r["content"].get("text") for r in chat.messages if r["type"] == "message"] == [
        "hello",
        "echo: hello",
    ]
    await connector.close()
    await inbound.finished()


async def test_lazy_chat_resumes_under_the_visitor_conversation(
    make: Callable[..., VisitorWidgetConnector], emulator: Emulator
) -> None:
    emulator.lazy_chat = True
    first = make()
    await first.open(START)
    inbound = Inbound(first)
    await first.send(say(first, "hi"))
    await inbound.until(lambda ev: "echo: hi" in texts(ev))
    await inbound.until(lambda ev: first.snapshot()["last_id"] is not None)
    state = first.snapshot()
    await first.close()
    await inbound.finished()

    missed = await emulator.agent_says(state["chat_id"], "during takeover")
    second = make()
    fetched = await second.resume(state)
    assert second.conversation_id == first.conversation_id == state["conversation_id"]
    assert f"{first.conversation_id}/{missed['id']}" in [e.id for e in fetched]
    assert {e.conversation_id for e in fetched} == {first.conversation_id}
    await second.close()


async def test_lazy_chat_resumes_before_any_message(
    make: Callable[..., VisitorWidgetConnector], emulator: Emulator
) -> None:
    emulator.lazy_chat = True
    first = make()
    await first.open(START)
    state = first.snapshot()
    await first.close()
    second = make()
    assert await second.resume(state) == []
    assert second.conversation_id == first.conversation_id
    inbound = Inbound(second)
    (sent,) = await second.send(say(second, "now"))
    assert sent.conversation_id == first.conversation_id
    await inbound.until(lambda ev: "echo: now" in texts(ev))
    await second.close()


async def test_lazy_chat_end_before_any_message(
    make: Callable[..., VisitorWidgetConnector], emulator: Emulator
) -> None:
    emulator.lazy_chat = True
    connector = make()
    await connector.open(START)
    inbound = Inbound(connector)
    assert await connector.send(End(conversation=connector.conversation_id)) == []
    await inbound.finished()
    (ended,) = inbound.events
    assert isinstance(ended, Ended)
    assert (ended.conversation_id, ended.reason, ended.by) == (
        connector.conversation_id,
        "user",
        "user",
    )
    assert connector.snapshot()["status"] == "closed"
    assert [name for name, _ in emulator.received] == ["visitor.connect"]
    assert not emulator.chats
    with pytest.raises(SessionNotFound):
        await connector.send(say(connector, "late"))
    await connector.close()
