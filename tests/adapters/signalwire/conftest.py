"""Shared by the signalwire connector tests: the emulator on loopback, connectors made
against it (closed at teardown), and `Pump`, which drains `inbound()` for a test to wait on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.signalwire import SignalWireAdapter
from adapters.signalwire.connector import SignalWireConnector
from adapters.signalwire.emulator import Emulator
from gateway.adapter import DialectSettings
from gateway.model import Event, Link, Message, Participant, Start, Status, Text

ADDR = "agent-address-1"
START = Start(dialect="signalwire", participant=Participant(from_="Ann"), agent_id=ADDR)
FAST = {"backoff_s": "0.01", "backoff_max_s": "0.05", "echo_timeout_s": "2", "page_size": "3"}


class Pump:
    """Drains `connector.inbound()` into `events`; `wait` blocks until a condition holds."""

    def __init__(self, connector: SignalWireConnector) -> None:
        self.events: list[Event] = []
        self.done = False
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(connector))

    async def _run(self, connector: SignalWireConnector) -> None:
        async for batch in connector.inbound():
            self.events.extend(batch)
            self._changed.set()
        self.done = True
        self._changed.set()

    async def wait(self, predicate: Callable[[list[Event]], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not predicate(self.events):
                self._changed.clear()
                await self._changed.wait()

    def texts(self) -> list[str]:
        return [e.content.text for e in self.messages() if isinstance(e.content, Text)]

    def messages(self) -> list[Message]:
        return [e for e in self.events if isinstance(e, Message)]

    def links(self) -> list[Link]:
        return [e for e in self.events if isinstance(e, Link)]


@pytest.fixture
def emulator() -> Emulator:
    return Emulator({"good-token": "subscriber-1"})


@pytest.fixture
async def platform(aiohttp_server: Any, emulator: Emulator) -> TestServer:
    server: TestServer = await aiohttp_server(emulator.app)
    return server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


Factory = Callable[..., SignalWireConnector]


@pytest.fixture
async def make(platform: TestServer, http: aiohttp.ClientSession) -> AsyncIterator[Factory]:
    made: list[SignalWireConnector] = []

    def factory(**options: str) -> SignalWireConnector:
        settings = DialectSettings(
            url=str(platform.make_url("")), options={"token": "good-token", **FAST, **options}
        )
        connector = SignalWireAdapter().connector(settings, http)
        assert isinstance(connector, SignalWireConnector)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.close()


async def opened(make: Factory, **options: str) -> tuple[SignalWireConnector, Pump]:
    connector = make(**options)
    events = await connector.open(START)
    assert [type(e) for e in events] == [Status]
    assert events[0].status == "active"
    return connector, Pump(connector)
