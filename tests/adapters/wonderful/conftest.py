"""Fixtures of the wonderful tests: the emulated platform on loopback and connectors to it
(`collect` runs a connector's inbound in the shared `tests.support.Inbound` waiter)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.wonderful import WonderfulAdapter
from adapters.wonderful.connector import WonderfulConnector
from adapters.wonderful.emulator import SESSIONS, Emulator
from gateway.adapter import DialectSettings
from gateway.model import Event, Message, Text
from gateway.vendor_http import VendorHttp
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
async def make(server: TestServer, vendor_http: VendorHttp) -> AsyncIterator[Make]:
    """A connector to the emulator; keyword arguments override its settings' options."""
    made: list[WonderfulConnector] = []

    def make(**options: str) -> WonderfulConnector:
        defaults = {
            "api_key": "test-key",
            "agent_id": "agent-uuid",
            "backoff_s": "0",
            "heartbeat_s": "5",
            "timeout_s": "5",
        }
        settings = DialectSettings(url=str(server.make_url("")), options=defaults | options)
        connector = WonderfulAdapter().connector(settings, vendor_http)
        assert isinstance(connector, WonderfulConnector)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.close()


async def history_read(emulator: Emulator, count: int = 1) -> None:
    """Wait until the session history was read `count` times (the connector reads it at the
    end of each of the agent's turns): what the platform says after that is not in it."""
    async with asyncio.timeout(5):
        while (
            sum(r.path.startswith(SESSIONS + "/") and r.method == "GET" for r in emulator.received)
            < count
        ):
            await asyncio.sleep(0.01)


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
