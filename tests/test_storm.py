"""A Redis reconnect does not become a storm of log reads (issue #23 item 2).

After the pub/sub link comes back, every subscription re-reads what it follows. Counted on
the test's own Redis (`INFO commandstats`, XRANGE calls): one read per conversation however
many sockets follow it, at the configured rate, and none for conversations a pattern stopped
following (idle); `/readyz` stays ready meanwhile, and live events still reach every socket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from gateway.config import Settings
from gateway.web.app import create_app
from gateway.web.keys import HUB
from tests.redis_server import RedisServer
from tests.support import GatewayClient, WsClient, loopback_message

SOCKETS = 5
CONVERSATIONS = 40
RATE = 20.0
BURST = 5
AT_ONCE = 2


async def _xranges(redis: aioredis.Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0))


async def _gateway(
    aiohttp_client: Callable[..., Any], server: RedisServer, **settings: Any
) -> GatewayClient:
    app = create_app(Settings(redis_url=server.url, dialects=["loopback"], auth="none", **settings))
    return GatewayClient(await aiohttp_client(app))


async def _follow_all(gateway: GatewayClient) -> list[WsClient]:
    sockets = [await gateway.ws() for _ in range(SOCKETS)]
    for ws in sockets:
        await ws.subscribe("loopback:*")
    return sockets


async def _ingest(gateway: GatewayClient, chats: list[str], n: int) -> None:
    for chat in chats:
        status, body = await gateway.ingest("loopback", loopback_message(chat, n))
        assert status == 202, body


async def _reconnect(redis: aioredis.Redis, gateway: GatewayClient) -> None:
    """Cut the replica's pub/sub links (as a Redis failover or network blip does)."""
    hub = gateway.client.app[HUB]
    before = hub.reconnects
    await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    async with asyncio.timeout(10):
        while hub.reconnects == before:
            await asyncio.sleep(0.01)


async def _repaired(gateway: GatewayClient) -> None:
    hub = gateway.client.app[HUB]
    async with asyncio.timeout(20):
        while hub.reads.backlog or hub.reads._shared:
            await asyncio.sleep(0.02)


async def test_a_reconnect_reads_each_conversation_once_at_the_set_rate(
    aiohttp_client: Callable[..., Any], redis_factory: Callable[[], RedisServer]
) -> None:
    server = redis_factory()
    gateway = await _gateway(
        aiohttp_client,
        server,
        repair_reads_per_s=RATE,
        repair_burst=BURST,
        repair_concurrency=AT_ONCE,
    )
    redis = aioredis.Redis.from_url(server.url)
    sockets = await _follow_all(gateway)
    chats = [f"storm{i}" for i in range(CONVERSATIONS)]
    await _ingest(gateway, chats, 1)
    for ws in sockets:
        await ws.wait_events(CONVERSATIONS)
    reads_before = await _xranges(redis)

    await _reconnect(redis, gateway)
    started = time.monotonic()
    await asyncio.sleep(0.5)
    early = await _xranges(redis) - reads_before
    elapsed = time.monotonic() - started
    # The bucket allows BURST at once and RATE a second after (AT_ONCE may be under way).
    assert early <= BURST + RATE * elapsed + AT_ONCE, (early, elapsed)
    assert early < CONVERSATIONS  # so the limit did hold reads back
    status, ready = await gateway.get("/readyz")
    assert status == 200 and ready["repair_backlog"] > 0, ready  # ready while repairing

    # A live event meanwhile reaches every socket, once.
    await _ingest(gateway, chats[-1:], 2)
    await _repaired(gateway)
    # One read per conversation for all SOCKETS sockets (unbounded: SOCKETS times as many).
    assert await _xranges(redis) - reads_before == CONVERSATIONS
    for ws in sockets:
        events = await ws.wait_events(CONVERSATIONS + 1)
        await asyncio.sleep(0.05)
        assert len(ws.events()) == CONVERSATIONS + 1
        assert [e["seq"] for e in events if e["conversation_id"] == f"loopback:{chats[-1]}"] == [
            1,
            2,
        ]
        await ws.close()
    await redis.aclose()


async def test_a_pattern_repairs_only_the_conversations_it_saw_lately(
    aiohttp_client: Callable[..., Any], redis_factory: Callable[[], RedisServer]
) -> None:
    server = redis_factory()
    gateway = await _gateway(aiohttp_client, server, pattern_idle_s=0.3)
    redis = aioredis.Redis.from_url(server.url)
    sockets = await _follow_all(gateway)
    old = [f"old{i}" for i in range(30)]
    await _ingest(gateway, old, 1)
    for ws in sockets:
        await ws.wait_events(len(old))
    await asyncio.sleep(0.8)  # quiet for over twice pattern_idle_s: forgotten
    recent = [f"new{i}" for i in range(4)]
    await _ingest(gateway, recent, 1)
    for ws in sockets:
        await ws.wait_events(len(old) + len(recent))
    reads_before = await _xranges(redis)
    await _reconnect(redis, gateway)
    await asyncio.sleep(0.2)
    await _repaired(gateway)
    assert await _xranges(redis) - reads_before == len(recent)
    for ws in sockets:
        await ws.close()
    await redis.aclose()
