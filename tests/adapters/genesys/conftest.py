"""Fixtures of the genesys tests: the emulated GMS service on loopback and connectors to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.genesys import GenesysAdapter
from adapters.genesys.emulator import Emulator
from gateway.adapter import Connector, DialectSettings
from gateway.model import Event, Message, Participant, ParticipantJoined, Start, Status, Text

WAIT = 5.0
START = Start(dialect="genesys", participant=Participant(from_="Bob"), subject="Refund")


class Inbox:
    """Runs `connector.inbound()` in a task and keeps every event, for waiting on conditions."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.events: list[Event] = []
        self.batches = 0
        self.finished = False
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for batch in self.connector.inbound():
                self.events.extend(batch)
                self.batches += 1
                self._changed.set()
        finally:
            self.finished = True
            self._changed.set()

    async def until(self, predicate: Callable[[list[Event]], bool]) -> list[Event]:
        async with asyncio.timeout(WAIT):
            while not predicate(self.events):
                self._changed.clear()
                await self._changed.wait()
        return self.events

    async def done(self) -> list[Event]:
        async with asyncio.timeout(WAIT):
            await self.task
        return self.events

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def texts(events: list[Event], role: str | None = None) -> list[str]:
    return [
        e.content.text
        for e in events
        if isinstance(e, Message)
        and isinstance(e.content, Text)
        and (role is None or e.sender.role == role)
    ]


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(service="support")


@pytest.fixture
async def gms(aiohttp_server: Any, emulator: Emulator) -> TestServer:
    server: TestServer = await aiohttp_server(emulator.app)
    return server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make(
    gms: TestServer, emulator: Emulator, http: aiohttp.ClientSession
) -> Callable[..., Connector]:
    def build(**options: str) -> Connector:
        defaults = {
            "poll_interval": "0.01",
            "retry_base": "0.01",
            "retry_cap": "0.04",
            "max_attempts": "4",
        }
        url = str(gms.make_url(emulator.path))
        settings = DialectSettings(url=url, options={**defaults, **options})
        return GenesysAdapter().connector(settings, http)

    return build


@pytest.fixture
async def inboxes() -> AsyncIterator[list[Inbox]]:
    running: list[Inbox] = []
    yield running
    for inbox in running:
        await inbox.stop()


@pytest.fixture
async def session(make: Callable[..., Connector], inboxes: list[Inbox]) -> tuple[Connector, Inbox]:
    connector = make()
    opened = await connector.open(START)
    assert [type(e) for e in opened] == [Status, ParticipantJoined]
    inbox = Inbox(connector)
    inbox.events.extend(opened)
    inboxes.append(inbox)
    await inbox.until(
        lambda ev: any(
            isinstance(e, ParticipantJoined) and e.participant.role == "agent" for e in ev
        )
    )
    return connector, inbox
