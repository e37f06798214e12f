"""What a hub keeps is bounded (issue #23 item 5): the dedup index by the log's length, every
conversation by an idle TTL, and the memory engine by a number of conversations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis

from gateway.context import ConversationContext
from gateway.hub import Hub, create_hub
from gateway.hub.memory import MemoryHub
from gateway.hub.redis import RedisHub, context_key, epoch_key, stream_keys
from tests.hub.events import Collect, ended, message


@pytest.fixture
async def short_lived(hub_url: str) -> AsyncIterator[Hub]:
    engine = create_hub(hub_url, maxlen=50, idle_ttl=1)
    await engine.start()
    yield engine
    await engine.close()


async def _ids_kept(hub: Hub, conv: str) -> int:
    if isinstance(hub, RedisHub):
        return int(await hub._redis.hlen(stream_keys(conv)[1]))
    assert isinstance(hub, MemoryHub)
    return len(hub._logs[conv].ids)


async def test_the_dedup_index_is_trimmed_with_the_log(short_lived: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    for start in range(1, 1001, 100):
        await short_lived.publish([message(conv, n) for n in range(start, start + 100)])
    assert await _ids_kept(short_lived, conv) == 50
    assert (await short_lived.publish([message(conv, 1000)]))[0].duplicate
    assert (await short_lived.publish([message(conv, 951)]))[0].duplicate


async def test_a_conversation_that_never_ends_expires_when_idle(
    short_lived: Hub, conversation: str
) -> None:
    conv = f"t:{conversation}"
    await short_lived.publish([message(conv, 1)])
    if isinstance(short_lived, RedisHub):
        redis: aioredis.Redis = short_lived._redis
        for key in (*stream_keys(conv), epoch_key(conv)):
            assert 0 < await redis.ttl(key) <= 1, key
        assert await redis.ttl(context_key(conv)) == -2
    assert await short_lived.head(conv) == 1
    await asyncio.sleep(1.3)
    assert await short_lived.head(conv) == 0
    if isinstance(short_lived, MemoryHub):  # gone from memory, not only hidden
        await short_lived.publish([message(f"{conv}-other", 1)])
        assert conv not in short_lived._logs


async def test_the_memory_engine_forgets_the_least_recently_written_beyond_its_cap(
    conversation: str,
) -> None:
    hub = MemoryHub(max_conversations=10)
    await hub.start()
    first = f"t:{conversation}-0"
    sink = Collect()
    subscription = await hub.subscribe(first, sink, since=0)
    subscription.start()
    await hub.publish([message(first, 1)])
    await sink.until(1, first)
    for n in range(1, 30):
        await hub.publish([message(f"t:{conversation}-{n}", 1)])
    await hub.publish([message(f"t:{conversation}-29", 2)])
    assert len(hub._logs) == 10 and hub.evicted == 20
    assert list(hub._logs)[-1] == f"t:{conversation}-29"
    assert await hub.head(first) == 0
    # Its subscriber is told when the forgotten conversation starts again, not left deaf.
    await hub.publish([message(first, 2)])
    await sink.until(3, first)
    assert [s for c, s, _ in sink.got if c == first] == [1, -1, 1]
    await hub.close()


async def test_redis_moves_an_open_logs_expiry_once_it_is_a_hundredth_off(
    redis_url: str, conversation: str
) -> None:
    """The five keys end together, `idle_ttl` after the last event give or take 1 %; `ended`
    (and an event after it) moves them at once."""
    conv = f"t:{conversation}"
    hub = RedisHub(redis_url, ended_ttl=3600, idle_ttl=10_000)
    await hub.start()
    keys = (*stream_keys(conv), context_key(conv), epoch_key(conv))
    try:
        redis: aioredis.Redis = hub._redis

        async def ends() -> set[int]:
            return {int(await redis.execute_command("PEXPIRETIME", key)) for key in keys}

        async def age(ms: int) -> None:  # as if `ms` had passed since the keys' end was set
            for key in keys:
                await redis.pexpire(key, await redis.pttl(key) - ms)

        await hub.remember({conv: ConversationContext(own_address="x")})
        await hub.publish([message(conv, 1)])
        first = await ends()
        assert len(first) == 1 and 9_990 < await redis.ttl(keys[0]) <= 10_000
        await age(50_000)  # half a percent of idle: left where it is
        kept = await ends()
        await hub.publish([message(conv, 2)])
        assert await ends() == kept
        await age(100_000)  # one and a half: moved back to `idle` from now, all five
        await hub.publish([message(conv, 3)])
        assert len(await ends()) == 1 and 9_990 < await redis.ttl(keys[0]) <= 10_000
        await hub.publish([message(conv, 4), ended(conv)])
        assert len(await ends()) == 1 and 3_590 < await redis.ttl(keys[0]) <= 3_600
        again = msgspec.structs.replace(ended(conv), id=f"{conv}/end-again")
        await hub.publish([message(conv, 5), again, message(conv, 6)])  # the last one counts
        assert len(await ends()) == 1 and 9_990 < await redis.ttl(keys[0]) <= 10_000
        await hub.publish([message(conv, 6)])  # a duplicate alone moves nothing
        assert len(await ends()) == 1
    finally:
        await hub.close()
