"""Fixtures of the wonderful tests: the emulated platform on loopback and connectors to it
(`collect` runs a connector's inbound in the shared `tests.support.Inbound` waiter)."""

from __future__ import annotations

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
from tests.support import Inbound


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
async def server(emulator: Emulator, aiohttp_server: Any) -> TestServer:
    server: TestServer = await aiohttp_server(emulator.app)
    return server


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
        await inbound.stop()
