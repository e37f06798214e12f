"""Fixtures every test may use: a real Redis, the gateway app on both hub engines, a WS client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.hub import Hub, create_hub
from gateway.vendor_http import PoolLimits, VendorHttp, VendorPools
from gateway.web.app import create_app
from tests.redis_server import RedisServer, external_url
from tests.redis_topology import ClusterSet, SentinelSet
from tests.support import GatewayClient

TOPOLOGY_TESTS = (
    "tests/hub/",
    "tests/sessions/test_sessions.py",
    "tests/sessions/test_failover.py",
    "tests/test_epoch.py",
    "tests/web/test_ws.py",
    "tests/web/test_ingest.py",
)
"""Where `hub_url` also runs on Sentinel (and Cluster): the hub, fan-out, resume, dedup and
session-lease tests. Elsewhere one Redis stands for every topology."""


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis the suite may use (its own server unless GATEWAY_TEST_REDIS_URL)."""
    url = external_url()
    if url is not None:
        yield url
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def redis_factory() -> Iterator[Callable[[], RedisServer]]:
    """Start private Redis servers a test may kill and restart."""
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        servers.append(RedisServer().start())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def sentinel_url() -> Iterator[str]:
    """A `redis+sentinel://` URL: a primary, its replica and three sentinels of the suite's
    own (started once, on first use)."""
    topology = SentinelSet()
    try:
        yield topology.url
    finally:
        topology.close()


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """A `redis+cluster://` URL: three primaries with a replica each, of the suite's own
    (started once, on first use)."""
    topology = ClusterSet()
    try:
        yield topology.url
    finally:
        topology.close()


@pytest.fixture(params=["memory", "redis", "sentinel", "cluster"])
def hub_url(request: pytest.FixtureRequest) -> str:
    """Each hub engine and Redis topology in turn: tests that take it run once per engine
    (Sentinel and Cluster only in `TOPOLOGY_TESTS`, and not against GATEWAY_TEST_REDIS_URL)."""
    if request.param == "memory":
        return "memory://"
    if request.param in ("sentinel", "cluster"):
        return str(request.getfixturevalue(f"{request.param}_url"))
    return str(request.getfixturevalue("redis_url"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the Sentinel and Cluster variants of `hub_url` tests only in `TOPOLOGY_TESTS`."""
    kept, dropped = [], []
    for item in items:
        topology = any(f"{c}{t}" in item.nodeid for c in "[-" for t in ("sentinel", "cluster"))
        if topology and (external_url() or not item.nodeid.startswith(TOPOLOGY_TESTS)):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
async def memory_hub() -> AsyncIterator[Hub]:
    """A started memory hub, for connector tests that publish what they receive."""
    hub = create_hub("memory://")
    await hub.start()
    yield hub
    await hub.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for connectors under test (the gateway hands them its own)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def vendor_http() -> AsyncIterator[VendorHttp]:
    """The two pools a connector under test reaches its platform through (as the gateway
    hands each dialect: `held` for WebSockets and long polls, `requests` for the rest)."""
    pools = VendorPools(lambda dialect: PoolLimits(held=1000, requests=100))
    yield pools("test")
    await pools.close()


@pytest.fixture
def conversation() -> str:
    """A fresh native conversation id (tests never share keys in a shared Redis)."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def make_gateway(aiohttp_client: Callable[..., Any], hub_url: str) -> Callable[..., Any]:
    """Start the gateway on the hub under test: `await make_gateway(**settings)`."""

    namespace = f"t{uuid.uuid4().hex[:10]}"

    async def make(**overrides: Any) -> GatewayClient:
        settings = Settings(
            **{
                "redis_url": hub_url,
                "dialects": ["loopback"],
                "auth": "none",
                # Each test's gateway keeps to itself in the shared Redis: no session it leaves
                # behind is taken over by a later test's gateway.
                "redis_namespace": namespace,
                **overrides,
            }
        )
        client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
        return GatewayClient(client)

    return make


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any]) -> GatewayClient:
    return await make_gateway()  # type: ignore[no-any-return]
