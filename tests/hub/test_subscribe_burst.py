"""A burst of subscriptions on the Redis hub: one pub/sub link per process, and its
subscription passes shared by the callers that wait at the same time (a pass diffs every
channel the link wants, so one pass per caller made a burst of N cost N²: 10 % of a
3,000-session start burst's samples).

Redis counts the SUBSCRIBE calls (`INFO commandstats`, on a server of this test's own: the
suite's shared one counts every other test's too); the hub counts its passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.hub.redis import RedisHub
from tests.hub.events import Collect, message
from tests.redis_server import RedisServer

BURST = 200


@pytest.fixture
async def server() -> AsyncIterator[str]:
    own = RedisServer().start()
    try:
        yield own.url
    finally:
        own.close()


async def _subscribe_calls(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_subscribe", {}).get("calls", 0))


async def test_a_burst_of_subscriptions_shares_its_passes(server: str) -> None:
    hub = RedisHub(server, namespace=f"sb{uuid.uuid4().hex[:8]}")
    await hub.start()
    try:
        before = await _subscribe_calls(server), hub.subscription_passes
        conversations = [f"t:{uuid.uuid4().hex}" for _ in range(BURST)]
        sinks = [Collect() for _ in conversations]
        subscriptions = await asyncio.gather(
            *(hub.subscribe(c, sink) for c, sink in zip(conversations, sinks, strict=True))
        )
        calls = await _subscribe_calls(server) - before[0]
        passes = hub.subscription_passes - before[1]
        assert 1 <= calls <= passes <= 5, (calls, passes)  # one pass per caller before: 200

        for subscription in subscriptions:
            subscription.start()
        await hub.publish([message(c, 1) for c in conversations])
        for conversation, sink in zip(conversations, sinks, strict=True):
            assert await sink.until(1, conversation) == [1]  # every subscription is live
        for subscription in subscriptions:
            subscription.close()
    finally:
        await hub.close()
