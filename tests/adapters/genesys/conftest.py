"""Fixtures of the genesys tests: the emulated GMS service on loopback and connectors to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.genesys import GenesysAdapter
from adapters.genesys.emulator import Emulator
from gateway.adapter import Connector, DialectSettings
from gateway.model import Event, Message, Participant, ParticipantJoined, Start, Status, Text
from gateway.vendor_http import VendorHttp
from tests.support import Inbound

START = Start(dialect="genesys", participant=Participant(from_="Bob"), subject="Refund")


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
def make(gms: TestServer, emulator: Emulator, vendor_http: VendorHttp) -> Callable[..., Connector]:
    def build(**options: str) -> Connector:
        defaults = {
            "poll_interval_s": "0.01",
            "backoff_s": "0.01",
            "backoff_max_s": "0.04",
            "max_attempts": "4",
            "transport": "polling",  # the REST tests; test_cometd.py asks for "cometd"
        }
        url = str(gms.make_url(emulator.path))
        settings = DialectSettings(url=url, options={**defaults, **options})
        return GenesysAdapter().connector(settings, vendor_http)

    return build


@pytest.fixture
async def inbounds() -> AsyncIterator[list[Inbound]]:
    running: list[Inbound] = []
    yield running
    for inbox in running:
        await inbox.stop()


async def opened(connector: Connector, inbounds: list[Inbound]) -> Inbound:
    """Start `connector`'s chat and run its inbound until the agent has joined."""
    events = await connector.open(START)
    assert [type(e) for e in events] == [Status, ParticipantJoined]
    inbox = Inbound(connector)
    inbox.events.extend(events)
    inbounds.append(inbox)
    await inbox.until(
        lambda ev: any(
            isinstance(e, ParticipantJoined) and e.participant.role == "agent" for e in ev
        )
    )
    return inbox


@pytest.fixture
async def session(
    make: Callable[..., Connector], inbounds: list[Inbound]
) -> tuple[Connector, Inbound]:
    connector = make()
    return connector, await opened(connector, inbounds)
