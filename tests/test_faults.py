"""The Redis store crashing and coming back while traffic flows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.config import Settings
from gateway.web.app import create_app
from tests.redis_server import RedisServer
from tests.support import GatewayClient, loopback_message


async def test_redis_restart_mid_stream_loses_nothing(
    aiohttp_client: Callable[..., Any], redis_factory: Callable[[], RedisServer], conversation: str
) -> None:
    server = redis_factory()
    gateway = GatewayClient(
        await aiohttp_client(
            create_app(Settings(redis_url=server.url, dialects=["loopback"], auth="none"))
        )
    )
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    acknowledged: list[int] = []
    refused = 0

    async def sender() -> None:
        nonlocal refused
        for n in range(1, 61):
            refused += await gateway.ingest_until_accepted(conversation, n)
            acknowledged.append(n)
            await asyncio.sleep(0.01)

    sending = asyncio.create_task(sender())
    await ws.wait_events(15, conv)
    server.kill()
    async with asyncio.timeout(10):
        while (await gateway.get("/readyz"))[0] != 503:
            await asyncio.sleep(0.05)
    _, ready = await gateway.get("/readyz")
    assert ready["hub"] is False and ready["error"]["code"] == "NOT_READY"
    await asyncio.sleep(0.3)
    server.start()
    async with asyncio.timeout(15):
        await sending
    assert refused > 0
    events = await ws.wait_events(60, conv, timeout=15)
    await asyncio.sleep(0.1)
    assert [e["seq"] for e in ws.events(conv)] == list(range(1, 61))
    assert [e["id"] for e in events] == [f"{conv}/m{n}" for n in range(1, 61)]
    _, log = await gateway.get(f"/v1/conversations/{conv}/events", limit=1000)
    assert [e["id"] for e in log["events"]] == [f"{conv}/m{n}" for n in acknowledged]
    assert (await gateway.get("/readyz"))[0] == 200
    await ws.close()


async def test_subscriber_that_lost_messages_repairs_the_gap(
    aiohttp_client: Callable[..., Any], redis_url: str, conversation: str
) -> None:
    """Events stored while a replica's pub/sub missed them are replayed from the log."""
    import redis.asyncio as aioredis

    from gateway.hub.redis import epoch_key, stream_keys
    from gateway.hub.wire import encode_stored
    from gateway.model import Message, Party, Text

    gateway = GatewayClient(
        await aiohttp_client(
            create_app(Settings(redis_url=redis_url, dialects=["loopback"], auth="none"))
        )
    )
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    await gateway.ingest("loopback", loopback_message(conversation, 1))
    # Store seq 2 behind the hub's back (as if its PUBLISH never reached this replica).
    client = aioredis.Redis.from_url(redis_url)
    seq_key, ids_key, log_key = stream_keys(conv)
    missed = Message(
        id=f"{conv}/lost",
        conversation_id=conv,
        dialect="loopback",
        at="2024-01-01T00:00:00.000Z",
        sender=Party(role="agent"),
        content=Text("x"),
    )
    seq = await client.incr(seq_key)
    await client.hset(ids_key, missed.id, seq)
    epoch = (await client.get(epoch_key(conv))).decode()
    await client.xadd(log_key, {"e": encode_stored(missed, seq, epoch)}, id=f"{seq}-0")
    await client.aclose()
    await gateway.ingest("loopback", loopback_message(conversation, 3))
    events = await ws.wait_events(3, conv)
    assert [(e["seq"], e["id"].rsplit("/", 1)[1]) for e in events] == [
        (1, "m1"),
        (2, "lost"),
        (3, "m3"),
    ]
    await ws.close()
