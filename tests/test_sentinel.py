"""A Sentinel-managed primary failing over while traffic flows (real sentinels, item 1 of #26).

A primary, its replica and three `redis-server --sentinel` on loopback; the gateway takes the
`redis+sentinel://…/<master>/<db>` URL. A failover (ordered with `SENTINEL FAILOVER`, or the
primary killed) must lose no acknowledged event, deliver none twice, leave no subscriber deaf,
and make the gateway unready (503) only while there is no primary to write to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.config import Settings
from gateway.hub.redis import stream_keys
from gateway.web.app import HUB, create_app
from tests.redis_topology import SentinelSet
from tests.support import GatewayClient, WsClient, loopback_message

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    topology = SentinelSet()
    try:
        yield topology
    finally:
        topology.close()


async def _gateway(aiohttp_client: Callable[..., Any], url: str, **settings: Any) -> GatewayClient:
    app = create_app(Settings(redis_url=url, dialects=["loopback"], auth="none", **settings))
    return GatewayClient(await aiohttp_client(app))


async def _send(gateway: GatewayClient, conversation: str, numbers: range) -> tuple[list[int], int]:
    """Send each message until a 2xx (a webhook sender's retry); the acknowledged ones and how
    many answers were 503."""
    acknowledged: list[int] = []
    refused = 0
    for n in numbers:
        while True:
            status, body = await gateway.ingest("loopback", loopback_message(conversation, n))
            if status == 202:
                acknowledged.append(n)
                break
            assert status == 503 and body["error"]["code"] == "STORE_UNAVAILABLE", body
            refused += 1
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.01)
    return acknowledged, refused


async def _delivered_once_in_order(ws: WsClient, conv: str, count: int) -> None:
    await ws.wait_events(count, conv, timeout=20)
    await asyncio.sleep(0.2)
    assert [e["seq"] for e in ws.events(conv)] == list(range(1, count + 1))
    assert [e["id"] for e in ws.events(conv)] == [f"{conv}/m{n}" for n in range(1, count + 1)]


async def _on_primary(sentinels: SentinelSet, conv: str) -> int:
    """How many events the current primary's log of `conv` holds (read from it directly)."""
    client = aioredis.Redis(port=sentinels.primary_port())
    try:
        return int(await client.xlen(stream_keys(conv)[2]))
    finally:
        await client.aclose()


async def test_ordered_failover_with_wait_loses_nothing(
    aiohttp_client: Callable[..., Any], sentinels: SentinelSet, conversation: str
) -> None:
    """`SENTINEL FAILOVER` mid-stream, with every batch confirmed by a replica (`WAIT`)."""
    gateway = await _gateway(aiohttp_client, sentinels.url, redis_min_replicas_ack=1)
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    firehose = await gateway.ws()
    await firehose.subscribe("loopback:*")
    sending = asyncio.create_task(_send(gateway, conversation, range(1, 61)))
    await ws.wait_events(15, conv)
    old = sentinels.primary_port()
    await asyncio.to_thread(sentinels.failover)
    assert sentinels.primary_port() != old
    async with asyncio.timeout(30):
        acknowledged, _ = await sending
    assert acknowledged == list(range(1, 61))
    await _delivered_once_in_order(ws, conv, 60)
    await _delivered_once_in_order(firehose, conv, 60)
    assert await _on_primary(sentinels, conv) == 60  # the writes went to the new primary
    assert (await gateway.get("/readyz"))[0] == 200
    # The new primary's publishes reach this replica's link: a fresh event arrives live.
    await _send(gateway, conversation, range(61, 62))
    await ws.wait_events(61, conv)
    assert gateway.client.app[HUB].reconnects >= 1  # the link moved, and re-read the cursors
    await ws.close()
    await firehose.close()


async def test_primary_killed_unready_until_promoted_then_resumes(
    aiohttp_client: Callable[..., Any], sentinels: SentinelSet, conversation: str
) -> None:
    """The primary dies (SIGKILL): /readyz and ingest answer 503 until the sentinels promote
    the replica; then writes land there and subscribers resume by themselves."""
    gateway = await _gateway(aiohttp_client, sentinels.url)
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    sending = asyncio.create_task(_send(gateway, conversation, range(1, 41)))
    await ws.wait_events(10, conv)
    old = sentinels.primary_port()
    dead = sentinels.primary if old == sentinels.primary.port else sentinels.replica
    dead.kill()
    async with asyncio.timeout(10):
        while (await gateway.get("/readyz"))[0] != 503:
            await asyncio.sleep(0.05)
    async with asyncio.timeout(30):
        acknowledged, refused = await sending
    assert refused > 0 and acknowledged == list(range(1, 41))
    assert sentinels.primary_port() != old
    # Asynchronous replication may lose what the dead primary had not passed on; every event
    # acknowledged after the promotion is in the new primary's log, and the subscriber saw
    # each stored event once, in order.
    events = await ws.wait_events(await _on_primary(sentinels, conv), conv, timeout=20)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    assert events[-1]["id"] == f"{conv}/m40"
    assert (await gateway.get("/readyz"))[0] == 200
    dead.start()  # back as a replica of the new primary (the sentinels reconfigure it)
    await ws.close()
