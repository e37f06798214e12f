"""Group commit on a real Redis (`gateway.hub.group_commit`): the writes of concurrent hub
calls share round trips, and nothing else about them changes: each conversation's script is
its own atomic call, runs in the order it was handed over, and fails only its own caller.

Round trips are counted by Redis itself: `total_reads_processed` (INFO stats) grows by one
per read event on a client's socket, so a pipeline of twenty calls is one, twenty calls sent
one by one are twenty."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from gateway.errors import StoreUnavailable
from gateway.hub.base import Published
from gateway.hub.redis import RedisHub, stream_keys
from gateway.redis_url import close, connect
from tests.hub.events import message
from tests.redis_server import RedisServer

CALLERS = 20


async def _started(hub: RedisHub) -> RedisHub:
    """`hub` started, its pool's connection for writes opened (a new connection's handshake
    is reads of its own)."""
    await hub.start()
    await hub.publish([message(f"t:{uuid.uuid4().hex}", 1)])
    return hub


@pytest.fixture
async def hub(redis_url: str) -> AsyncIterator[RedisHub]:
    engine = await _started(RedisHub(redis_url, namespace=f"gc{uuid.uuid4().hex[:8]}"))
    yield engine
    await engine.close()


@pytest.fixture
async def probe(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _stats(client: aioredis.Redis) -> tuple[int, int, int]:
    """Redis's read events so far, and its EVALSHA and WAIT calls."""
    commands, stats = await client.info("commandstats"), await client.info("stats")
    calls = [commands.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "wait")]
    return stats["total_reads_processed"], calls[0], calls[1]


async def _counted(
    client: aioredis.Redis, calls: list[Any], **gather: Any
) -> tuple[list[Any], tuple[int, int, int]]:
    """The results of `calls` run at once, and what they cost Redis (`_stats` apart), the
    probe's own INFO read included."""
    before = await _stats(client)
    results = await asyncio.gather(*calls, **gather)
    after = await _stats(client)
    return results, (after[0] - before[0] - 1, after[1] - before[1], after[2] - before[2])


async def test_concurrent_publishes_share_round_trips(
    hub: RedisHub, probe: aioredis.Redis, conversation: str
) -> None:
    convs = [f"t:{conversation}-{k}" for k in range(CALLERS)]
    trips = hub.round_trips
    results, (reads, scripts, _) = await _counted(
        probe, [hub.publish([message(conv, 1)]) for conv in convs]
    )
    assert results == [[Published(f"{conv}/1", 1)] for conv in convs]
    assert scripts == CALLERS, "each conversation keeps its own atomic script call"
    # The first goes at once, alone; the others come while it is out and go together after it.
    assert reads <= 3, f"{CALLERS} calls in {reads} reads: they did not share a round trip"
    assert hub.round_trips - trips == 2, "the metric counts the two requests the store saw"
    for conv in convs:
        assert [seq for seq, _ in await hub.read(conv)] == [1]


async def test_a_script_error_fails_only_its_caller(
    hub: RedisHub, probe: aioredis.Redis, conversation: str
) -> None:
    convs = [f"t:{conversation}-{k}" for k in range(5)]
    # The second conversation's counter is a hash: its script's INCR fails (WRONGTYPE).
    await probe.hset(stream_keys(convs[1], hub.namespace)[0], "not", "a counter")
    results, (reads, scripts, _) = await _counted(
        probe, [hub.publish([message(conv, 1)]) for conv in convs], return_exceptions=True
    )
    assert reads <= 3 and scripts == 5, "the first call alone, the four others in one pipeline"
    failed = results.pop(1)
    assert isinstance(failed, StoreUnavailable) and "WRONGTYPE" in str(failed)
    assert results == [[Published(f"{conv}/1", 1)] for conv in convs if conv != convs[1]]
    assert await hub.read(convs[1]) == []


async def test_a_caller_alone_hears_its_own_error_and_reloads_lost_scripts(
    hub: RedisHub, probe: aioredis.Redis, conversation: str
) -> None:
    """A caller alone sends its one command as a command: its error is still its own, and a
    script the server lost is loaded again and called once more."""
    broken, conv = f"t:{conversation}-broken", f"t:{conversation}"
    await probe.hset(stream_keys(broken, hub.namespace)[0], "not", "a counter")
    trips = hub.round_trips
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        await hub.publish([message(broken, 1)])
    await probe.script_flush()
    [published], (_, scripts, _) = await _counted(probe, [hub.publish([message(conv, 1)])])
    assert published == [Published(f"{conv}/1", 1)]
    assert scripts == 2, "the call that heard NOSCRIPT, then the call again"
    assert hub.round_trips - trips == 3, "the failed call, and the two of the reloaded one"
    assert [seq for seq, _ in await hub.read(conv)] == [1]


async def test_calls_keep_their_order_within_a_conversation(
    hub: RedisHub, probe: aioredis.Redis, conversation: str
) -> None:
    conv, other = f"t:{conversation}", f"t:{conversation}-other"
    calls = []
    for n in range(1, 31):
        calls.append(hub.publish([message(conv, n)]))
        calls.append(hub.publish([message(other, n), message(conv, 100 + n)]))
    results, (reads, scripts, _) = await _counted(probe, calls)
    assert reads < 10 and scripts == 90, "one batch (~40 kB: Redis reads it in 16 kB parts)"
    seqs = [p.seq for published in results for p in published if p.id.startswith(conv + "/")]
    assert seqs == list(range(1, 61)), "seq follows the order the calls were made in"
    stored = [msgspec.json.decode(row)["id"] for _, row in await hub.read(conv)]
    assert stored == [f"{conv}/{m}" for n in range(1, 31) for m in (n, 100 + n)]


async def test_one_wait_confirms_a_whole_batch(
    redis_url: str, probe: aioredis.Redis, conversation: str
) -> None:
    """With `min_replicas_ack`, a batch ends with one WAIT for every caller in it (here no
    replica confirms: each caller hears so, and its events were stored once)."""
    hub = RedisHub(redis_url, min_replicas_ack=1, ack_timeout=0.1)
    await hub.start()
    try:
        convs = [f"t:{conversation}-{k}" for k in range(10)]
        results, (_, scripts, waits) = await _counted(
            probe, [hub.publish([message(conv, 1)]) for conv in convs], return_exceptions=True
        )
        assert scripts == 10 and waits == 2, "the first caller's WAIT, then one for the nine"
        assert all(isinstance(r, StoreUnavailable) and "0 of 1" in str(r) for r in results)
        for conv in convs:
            assert [seq for seq, _ in await hub.read(conv)] == [1]
    finally:
        await hub.close()


async def test_concurrent_batches_confirmed_by_a_replica(
    sentinel_url: str, conversation: str
) -> None:
    hub = RedisHub(sentinel_url, min_replicas_ack=1, ack_timeout=5)
    primary = connect(sentinel_url)
    await hub.start()
    try:
        convs = [f"t:{conversation}-{k}" for k in range(10)]
        results, (_, scripts, waits) = await _counted(
            primary, [hub.publish([message(conv, 1)]) for conv in convs]
        )
        assert results == [[Published(f"{conv}/1", 1)] for conv in convs]
        assert scripts == 10 and waits == 2, "the first caller's WAIT, then one for the nine"
    finally:
        await hub.close()
        await close(primary)


async def test_scripts_lost_under_concurrent_callers_are_reloaded(
    redis_factory: Callable[[], RedisServer], conversation: str
) -> None:
    """The server forgot the scripts (a restart): every caller of the batch that hears
    NOSCRIPT reloads them and tries once more; all of their events are stored once."""
    server = redis_factory()
    hub = RedisHub(server.url)
    client = aioredis.Redis.from_url(server.url)
    await hub.start()
    try:
        await client.script_flush()
        convs = [f"t:{conversation}-{k}" for k in range(8)]
        results = await asyncio.gather(*(hub.publish([message(conv, 1)]) for conv in convs))
        assert results == [[Published(f"{conv}/1", 1)] for conv in convs]
    finally:
        await hub.close()
        await client.aclose()


async def test_a_dead_store_fails_every_caller_of_the_batch(
    redis_factory: Callable[[], RedisServer], conversation: str
) -> None:
    server = redis_factory()
    hub = RedisHub(server.url)
    await hub.start()
    try:
        server.kill()
        convs = [f"t:{conversation}-{k}" for k in range(5)]
        async with asyncio.timeout(10):
            results = await asyncio.gather(
                *(hub.publish([message(conv, 1)]) for conv in convs), return_exceptions=True
            )
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        server.start()
        assert await hub.publish([message(convs[0], 1)]) == [Published(f"{convs[0]}/1", 1)]
    finally:
        await hub.close()


async def test_a_caller_cancelled_before_its_batch_left_is_not_sent(
    hub: RedisHub, conversation: str
) -> None:
    conv = f"t:{conversation}"
    first = asyncio.create_task(hub.publish([message(conv, 1)]))
    await asyncio.sleep(0)  # no batch was out: its call left at once
    cancelled = asyncio.create_task(hub.publish([message(conv, 2)]))
    await asyncio.sleep(0)  # it handed its call over; it waits for the first's batch
    cancelled.cancel()
    assert await first == [Published(f"{conv}/1", 1)]
    assert await hub.publish([message(conv, 3)]) == [Published(f"{conv}/3", 2)]
    assert cancelled.cancelled()
