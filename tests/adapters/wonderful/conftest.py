"""Fixtures of the wonderful tests: the emulated platform on loopback and connectors to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.wonderful import WonderfulAdapter
from adapters.wonderful.connector import WonderfulConnector
from adapters.wonderful.emulator import Emulator
from gateway.adapter import DialectSettings
from gateway.model import Event, Message, Text


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
async def server(emulator: Emulator, aiohttp_server: Any) -> TestServer:
    server: TestServer = await aiohttp_server(emulator.app)
    return server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


Make = Callable[..., WonderfulConnector]


@pytest.fixture
async def make(server: TestServer, http: aiohttp.ClientSession) -> AsyncIterator[Make]:
    """A connector to the emulator; keyword arguments override its settings' options."""
    made: list[WonderfulConnector] = []

    def make(**options: str) -> WonderfulConnector:
        defaults = {"api_key": "test-key", "backoff": "0", "ping_interval": "5", "timeout": "5"}
        settings = DialectSettings(url=str(server.make_url("")), options=defaults | options)
        connector = WonderfulAdapter().connector(settings, http)
        assert isinstance(connector, WonderfulConnector)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.close()


WAIT = 5.0  # seconds a condition may take before the test fails (it never sleeps that long)


class Inbound:
    """Runs `connector.inbound()` in the background; tests wait on what it collected."""

    def __init__(self, connector: WonderfulConnector) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run(connector))

    async def _run(self, connector: WonderfulConnector) -> None:
        try:
            async for batch in connector.inbound():
                self.events.extend(batch)
                self._changed.set()
        finally:
            self._changed.set()

    async def until(self, predicate: Callable[[list[Event]], bool]) -> None:
        """Wait (at most `WAIT` seconds) until `predicate(events)` holds."""
        async with asyncio.timeout(WAIT):
            while True:
                self._changed.clear()
                if predicate(self.events):
                    return
                if self.task.done():
                    self.task.result()
                    raise AssertionError(f"inbound finished without it: {self.events}")
                await self._changed.wait()

    async def finished(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.task

    def texts(self) -> list[str]:
        return texts(self.events)


def texts(events: list[Event]) -> list[str]:
    return [
        e.content.text for e in events if isinstance(e, Message) and isinstance(e.content, Text)
    ]


@pytest.fixture
async def collect(make: Make) -> AsyncIterator[Callable[[WonderfulConnector], Inbound]]:
    """`collect(connector)` runs its inbound in the background (stopped at teardown)."""
    running: list[Inbound] = []

    def collect(connector: WonderfulConnector) -> Inbound:
        running.append(Inbound(connector))
        return running[-1]

    yield collect
    for inbound in running:
        inbound.task.cancel()
    await asyncio.gather(*(i.task for i in running), return_exceptions=True)
