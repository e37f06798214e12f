"""The hub under test: each engine in turn (`hub_url`, from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.hub import Hub, create_hub


@pytest.fixture
async def hub(hub_url: str) -> AsyncIterator[Hub]:
    engine = create_hub(hub_url, maxlen=200)
    await engine.start()
    yield engine
    await engine.close()
