"""The hub's bounded connection pool, on a real Redis: callers past the bound wait for a
connection to come back, and give up with `ConnectionError` after the pool's timeout."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.redis_pool import BoundedPool


async def test_callers_past_the_bound_wait_then_give_up(redis_url: str) -> None:
    pool = BoundedPool.from_url(redis_url, max_connections=2, timeout=0.3)
    client = aioredis.Redis(connection_pool=pool)
    key = f"pool-{uuid.uuid4().hex}"
    try:
        # two callers hold both connections for 1 s (BLPOP on an empty list)
        held = [asyncio.create_task(client.blpop([key], timeout=1)) for _ in range(2)]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await client.ping()
        assert 0.25 <= time.monotonic() - started < 0.9
        # with a longer timeout, a caller gets the first connection given back
        pool.timeout = 5
        waiting = asyncio.create_task(client.ping())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert await asyncio.gather(*held) == [None, None]
        assert await waiting is True
        # nothing leaked: the bound is whole again
        assert await asyncio.gather(*(client.ping() for _ in range(20))) == [True] * 20
        assert len(pool._in_use_connections) == 0 and not pool._slots.locked()
    finally:
        await client.aclose()
        await pool.aclose()
