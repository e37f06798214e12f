"""A loopback platform emulator and a gateway pointed at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.loopback.emulator import Emulator
from tests.support import GatewayClient


@pytest.fixture
async def emulator(aiohttp_server: Callable[..., Any]) -> tuple[Emulator, TestServer]:
    platform = Emulator()
    server = await aiohttp_server(platform.app)
    return platform, server


@pytest.fixture
async def session_gateway(
    make_gateway: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> GatewayClient:
    _, server = emulator
    return await make_gateway(
        dialect_settings={
            "loopback": {
                "url": str(server.make_url("")),
                "poll_wait": "1",
                "backoff_s": "0.02",
            }
        }
    )
