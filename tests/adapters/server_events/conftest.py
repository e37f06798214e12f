"""Fixtures: the platform emulator on loopback, connectors to it, and an inbound collector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from adapters.server_events import ServerEventsAdapter
from adapters.server_events.connector import ServerEventsConnector
from adapters.server_events.emulator import Emulator
from gateway.adapter import DialectSettings
from gateway.model import Event

APP_ID = "test-app"
TENANT = "acme.example.com"


class Platform:
    def __init__(self, emulator: Emulator, url: str) -> None:
        self.emulator = emulator
        self.url = url


@pytest.fixture
async def platform(aiohttp_server: Any) -> Platform:
    emulator = Emulator(
        app_id=APP_ID, tenant=TENANT, poll_hold=0.3, agent_delay=0, greeting="Hello!"
    )
    server = await aiohttp_server(emulator.app)
    return Platform(emulator, str(server.make_url("/clientweb/api/v1")))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def connect(
    platform: Platform, http: aiohttp.ClientSession
) -> Callable[..., ServerEventsConnector]:
    def make(**options: str) -> ServerEventsConnector:
        settings = DialectSettings(
            url=platform.url,
            options={
                "app_id": APP_ID,
                "tenant_url": TENANT,
                "retry_base": "0.01",
                "retry_max": "0.04",
                "max_attempts": "5",
                "poll_timeout": "5",
                **options,
            },
        )
        connector = ServerEventsAdapter().connector(settings, http)
        assert isinstance(connector, ServerEventsConnector)
        return connector

    return make


class Inbound:
    """Runs `connector.inbound()` in a task; tests wait on what it has collected."""

    def __init__(self, connector: ServerEventsConnector) -> None:
        self.connector = connector
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.connector.inbound():
            self.events.extend(batch)
            self._changed.set()
        self._changed.set()

    async def until(self, predicate: Callable[[list[Event]], bool], within: float = 5) -> None:
        async with asyncio.timeout(within):
            while not predicate(self.events):
                if self.task.done():
                    self.task.result()  # surface an exception from inbound()
                    raise AssertionError(f"inbound() finished early: {self.events}")
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def stop(self) -> None:
        await self.connector.close()
        async with asyncio.timeout(5):
            await self.task


@pytest.fixture
async def collect() -> AsyncIterator[Callable[[ServerEventsConnector], Inbound]]:
    running: list[Inbound] = []

    def start(connector: ServerEventsConnector) -> Inbound:
        inbound = Inbound(connector)
        running.append(inbound)
        return inbound

    yield start
    for inbound in running:
        if not inbound.task.done():
            await inbound.stop()
