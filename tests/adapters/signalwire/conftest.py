"""Shared by the signalwire connector tests: the emulator on loopback, its REST API and its
Relay socket on two servers of their own (two hosts, as the SDK sees the platform), and
connectors made against it (closed at teardown); `opened` starts one with a
`tests.support.Inbound` on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.signalwire import SignalWireAdapter
from adapters.signalwire.connector import SignalWireConnector
from adapters.signalwire.emulator import Emulator
from gateway.adapter import DialectSettings
from gateway.model import Participant, Start, Status
from gateway.vendor_http import VendorHttp
from tests.support import Inbound

ADDR = "agent-address-1"
START = Start(dialect="signalwire", participant=Participant(from_="Ann"), agent_id=ADDR)
FAST = {"backoff_s": "0.01", "backoff_max_s": "0.05", "echo_timeout_s": "2", "page_size": "3"}


@pytest.fixture
def emulator() -> Emulator:
    return Emulator({"good-token": "subscriber-1"})


@pytest.fixture
async def platform(aiohttp_server: Any, emulator: Emulator) -> TestServer:
    """The REST host."""
    server: TestServer = await aiohttp_server(emulator.rest)
    return server


@pytest.fixture
async def relay(aiohttp_server: Any, emulator: Emulator) -> TestServer:
    """The Relay host: the socket at `/`."""
    server: TestServer = await aiohttp_server(emulator.relay)
    return server


@pytest.fixture
def hosts(platform: TestServer, relay: TestServer) -> dict[str, str]:
    """The connector options that point it at the two hosts."""
    return {
        "url": str(platform.make_url("")),
        "relay_url": str(relay.make_url("/").with_scheme("ws")),
    }


Factory = Callable[..., SignalWireConnector]


@pytest.fixture
async def make(hosts: dict[str, str], vendor_http: VendorHttp) -> AsyncIterator[Factory]:
    made: list[SignalWireConnector] = []

    def factory(**options: str) -> SignalWireConnector:
        url, relay_url = hosts["url"], hosts["relay_url"]
        settings = DialectSettings(
            url=url, options={"token": "good-token", "relay_url": relay_url, **FAST, **options}
        )
        connector = SignalWireAdapter().connector(settings, vendor_http)
        assert isinstance(connector, SignalWireConnector)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.close()


async def opened(make: Factory, **options: str) -> tuple[SignalWireConnector, Inbound]:
    connector = make(**options)
    events = await connector.open(START)
    (status,) = events
    assert isinstance(status, Status)
    assert status.status == "active"
    return connector, Inbound(connector)
