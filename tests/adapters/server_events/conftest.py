"""Fixtures: the platform emulator on loopback, connectors to it, and inbound collectors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from adapters.server_events import ServerEventsAdapter
from adapters.server_events.connector import ServerEventsConnector
from adapters.server_events.emulator import Emulator
from gateway.adapter import DialectSettings
from gateway.vendor_http import VendorHttp
from tests.support import Inbound

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
    return Platform(emulator, str(server.make_url("/")).rstrip("/"))


@pytest.fixture
def connect(platform: Platform, vendor_http: VendorHttp) -> Callable[..., ServerEventsConnector]:
    def make(**options: str) -> ServerEventsConnector:
        settings = DialectSettings(
            url=platform.url,
            options={
                "app_id": APP_ID,
                "tenant_url": TENANT,
                "backoff_s": "0.01",
                "backoff_max_s": "0.04",
                "max_attempts": "5",
                "timeout_s": "5",
                **options,
            },
        )
        connector = ServerEventsAdapter().connector(settings, vendor_http)
        assert isinstance(connector, ServerEventsConnector)
        return connector

    return make


@pytest.fixture
async def collect() -> AsyncIterator[Callable[[ServerEventsConnector], Inbound]]:
    """`collect(connector)` runs its `inbound()` in the background (`tests.support.Inbound`)."""
    running: list[tuple[ServerEventsConnector, Inbound]] = []

    def start(connector: ServerEventsConnector) -> Inbound:
        inbound = Inbound(connector)
        running.append((connector, inbound))
        return inbound

    yield start
    for connector, inbound in running:
        await connector.close()
        await inbound.stop()
