"""visitor_widget connector against the real emulator over real WebSockets on loopback."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

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
    Participant,
    ParticipantJoined,
    Receipt,
    Send,
    SetTyping,
    Start,
    Status,
    Text,
    Typing,
)

KEY = "test-key"
START = Start(
    dialect="visitor_widget",
    participant=Participant(from_="ann@example.com", from_type="email", name="Ann"),
)
FAST = {"retry_base": "0.01", "retry_max": "0.05", "timeout": "2", "retry_attempts": "50"}


class Collector:
    """Iterates `connector.inbound()` in the background; tests wait on conditions over it."""

    def __init__(self, connector: VisitorWidgetConnector) -> None:
        self.events: list[Event] = []
        self.finished = False
        self._cond = asyncio.Condition()
        self._task = asyncio.create_task(self._run(connector))

    async def _run(self, connector: VisitorWidgetConnector) -> None:
        try:
            async for batch in connector.inbound():
                async with self._cond:
                    self.events += batch
                    self._cond.notify_all()
        finally:
            async with self._cond:
                self.finished = True
                self._cond.notify_all()

    async def until(
        self, predicate: Callable[[list[Event]], bool], wait: float = 5.0
    ) -> list[Event]:
        async with asyncio.timeout(wait), self._cond:
            await self._cond.wait_for(lambda: predicate(self.events))
        return self.events

    async def has(self, kind: type[Event], wait: float = 5.0, **fields: Any) -> Event:
        def match(e: Event) -> bool:
            return isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())

        await self.until(lambda events: any(match(e) for e in events), wait)
        return next(e for e in self.events if match(e))

    async def finish(self, wait: float = 5.0) -> None:
        async with asyncio.timeout(wait), self._cond:
            await self._cond.wait_for(lambda: self.finished)

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


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
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make(server: TestServer, http: aiohttp.ClientSession) -> Callable[..., VisitorWidgetConnector]:
    def make(**options: str) -> VisitorWidgetConnector:
        settings = DialectSettings(
            url=str(server.make_url("")), options={"key": KEY, **FAST, **options}
        )
        connector = VisitorWidgetAdapter().connector(settings, http)
        assert isinstance(connector, VisitorWidgetConnector)
        return connector

    return make


@pytest.fixture
async def session(
    make: Callable[..., VisitorWidgetConnector],
) -> AsyncIterator[tuple[VisitorWidgetConnector, Collector, list[Event]]]:
    connector = make()
    opened = list(await connector.open(START))
    collector = Collector(connector)
    yield connector, collector, opened
    await connector.close()
    await collector.finish()


async def test_start(session: Any, emulator: Emulator) -> None:
    connector, collector, opened = session
    chat = emulator.chat_of(connector.snapshot()["visitor_id"])
    assert connector.conversation_id == f"visitor_widget:{chat.id}"
    assert [type(e) for e in opened] == [Status, Availability]
    assert (opened[0].status, opened[1].online) == ("queued", True)
    name, data = emulator.received[0]
    assert name == "visitor.connect"
    assert data == {"key": KEY, "name": "Ann", "email": "ann@example.com", "lang": "en"}
    joined = await collector.has(ParticipantJoined)
    assert joined.participant.role == "agent"
    assert joined.participant.name == "Emma"
    await collector.has(Status, status="active")


async def test_messages_both_ways_and_echo_once(session: Any, emulator: Emulator) -> None:
    connector, collector, _ = session
    await collector.has(ParticipantJoined)
    for text in ("one", "two", "three"):
        (sent,) = await connector.send(say(connector, text))
        assert isinstance(sent, Message)
        assert sent.sender.role == "user"
        assert emulator.received[-1] == (
            "chat.message",
            {"content": {"type": "text", "text": text}},
        )
        await collector.until(lambda ev, t=text: f"echo: {t}" in texts(ev))
    chat = emulator.chat_of(connector.snapshot()["visitor_id"])
    user_rows = [r["id"] for r in chat.messages if r["subType"] == "contact"]
    assert texts(collector.events) == ["echo: one", "echo: two", "echo: three"]
    assert not {f"{connector.conversation_id}/{r}" for r in user_rows} & {
        e.id for e in collector.events
    }
    assert len({e.id for e in collector.events}) == len(collector.events)
    typing = [e.active for e in collector.events if isinstance(e, Typing)]
    assert typing == [True, False] * 3


async def test_typing_and_read_both_ways(session: Any, emulator: Emulator) -> None:
    connector, collector, _ = session
    chat = emulator.chat_of(connector.snapshot()["visitor_id"])
    assert (
        await connector.send(SetTyping(conversation=connector.conversation_id, preview="He")) == []
    )
    assert chat.typing == {"is": True, "text": "He"}
    await connector.send(MarkRead(conversation=connector.conversation_id))
    receipt = await collector.has(Receipt)
    assert (receipt.status, receipt.sender.role, receipt.up_to) == (
        "read",
        "user",
        chat.last_read_at,
    )


async def test_bye_ends_the_session(session: Any) -> None:
    connector, collector, _ = session
    await connector.send(say(connector, "bye"))
    ended = await collector.has(Ended)
    assert (ended.reason, ended.by) == ("agent", "agent")
    await collector.finish()
    assert texts(collector.events)[-1] == "echo: bye"
    with pytest.raises(SessionNotFound):
        await connector.send(say(connector, "anyone?"))


async def test_end_command(session: Any) -> None:
    connector, collector, _ = session
    assert await connector.send(End(conversation=connector.conversation_id)) == []
    ended = await collector.has(Ended)
    assert (ended.reason, ended.by) == ("user", "user")
    await collector.finish()


async def test_agent_controls(session: Any, emulator: Emulator) -> None:
    connector, collector, _ = session
    chat_id = connector.snapshot()["chat_id"]
    row = await emulator.agent_says(chat_id, "Hi from Emma")
    message = await collector.has(Message, id=f"{connector.conversation_id}/{row['id']}")
    assert message.sender.role == "agent"
    await emulator.set_account_status("offline")
    await collector.has(Availability, online=False)
    await emulator.server_error(chat_id, "Internal failure")
    error = await collector.has(Error)
    assert (error.code, error.recoverable, error.metadata["vendor_code"]) == (
        "VENDOR_ERROR",
        True,
        500,
    )
    await emulator.end_session(chat_id)
    await collector.has(Ended, reason="agent")
    await collector.finish()


async def test_forced_reconnect_loses_nothing(session: Any, emulator: Emulator) -> None:
    connector, collector, _ = session
    await collector.has(Status, status="active")
    chat_id = connector.snapshot()["chat_id"]
    emulator.refuse_connections = True
    await emulator.drop_connections()
    await collector.has(Link, state="down")
    await collector.has(Link, state="retrying", attempt=2)
    missed = await emulator.agent_says(chat_id, "said while you were away")
    pending = asyncio.create_task(connector.send(say(connector, "queued")))  # waits for the link
    emulator.refuse_connections = False
    restored = await collector.has(Link, state="restored")
    assert restored.missed == 1
    assert restored.attempt is not None
    assert restored.attempt >= 2
    await collector.has(Message, id=f"{connector.conversation_id}/{missed['id']}")
    (sent,) = await pending
    await collector.until(lambda ev: "echo: queued" in texts(ev))
    ids = [e.id for e in collector.events]
    assert len(ids) == len(set(ids))
    assert sent.id not in ids
    # Neither status nor availability is re-emitted by the reconnect's `initialized`.
    assert sum(isinstance(e, Status) for e in collector.events) == 1
    assert not any(isinstance(e, Availability) for e in collector.events)


async def test_gives_up_after_max_attempts(
    make: Callable[..., VisitorWidgetConnector], emulator: Emulator
) -> None:
    connector = make(retry_attempts="2")
    await connector.open(START)
    collector = Collector(connector)
    emulator.refuse_connections = True
    await emulator.drop_connections()
    await collector.finish()
    links = [e for e in collector.events if isinstance(e, Link)]
    assert [(e.state, e.attempt) for e in links] == [
        ("down", None),
        ("retrying", 1),
        ("retrying", 2),
        ("down", None),
    ]
    assert links[-1].will_retry is False
    assert isinstance(collector.events[-1], Ended)
    assert collector.events[-1].reason == "error"
    await connector.close()


async def test_resume_from_snapshot(
    make: Callable[..., VisitorWidgetConnector], emulator: Emulator
) -> None:
    first = make()
    await first.open(START)
    collector = Collector(first)
    chat_id = first.snapshot()["chat_id"]
    seen = await emulator.agent_says(chat_id, "before takeover")
    await collector.has(Message, id=f"{first.conversation_id}/{seen['id']}")
    await collector.has(Status, status="active")
    await collector.until(lambda ev: first.snapshot()["last_id"] == seen["id"])
    state = first.snapshot()
    await first.close()
    await collector.finish()

    missed = await emulator.agent_says(chat_id, "during takeover")
    second = make()
    fetched = await second.resume(state)
    assert second.conversation_id == first.conversation_id
    assert [e.id for e in fetched] == [f"{first.conversation_id}/{missed['id']}"]
    collector = Collector(second)
    (sent,) = await second.send(say(second, "after"))
    await collector.until(lambda ev: "echo: after" in texts(ev))
    assert sent.id not in {e.id for e in collector.events}
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


async def test_unreachable(http: aiohttp.ClientSession) -> None:
    settings = DialectSettings(url="http://127.0.0.1:9", options={"key": KEY, **FAST})
    with pytest.raises(VendorError):
        await VisitorWidgetAdapter().connector(settings, http).open(START)


async def test_file_upload(session: Any, emulator: Emulator, server: TestServer) -> None:
    connector, collector, _ = session
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
    await collector.until(
        lambda ev: bool(emulator.chat_of(connector.snapshot()["visitor_id"]).messages)
    )
    assert sent.id not in {e.id for e in collector.events}


async def test_resume_an_ended_session(make: Callable[..., VisitorWidgetConnector]) -> None:
    first = make()
    await first.open(START)
    collector = Collector(first)
    await first.send(End(conversation=first.conversation_id))
    await collector.finish()
    state = first.snapshot()
    await first.close()
    second = make()
    assert await second.resume(state) == []
    collector = Collector(second)
    await collector.finish()
    assert collector.events == []
    await second.close()


def test_bad_option(make: Callable[..., VisitorWidgetConnector]) -> None:
    with pytest.raises(RequestError, match="RETRY_BASE"):
        make(retry_base="soon")
