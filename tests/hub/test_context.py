"""Conversation context in the hub (`contexts`, `remember`), run against each engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from gateway.context import EMPTY, ConversationContext
from gateway.errors import StoreUnavailable
from gateway.hub import Hub, create_hub
from gateway.hub.redis import RedisHub, context_key, stream_keys
from tests.hub.events import ended, message
from tests.redis_server import RedisServer


def url_of(hub: Hub) -> str:
    return hub.url if isinstance(hub, RedisHub) else "memory://"


async def test_a_conversation_never_remembered_has_the_empty_context(
    hub: Hub, conversation: str
) -> None:
    a, b = f"t:{conversation}-a", f"t:{conversation}-b"
    assert await hub.contexts([a, b]) == {a: EMPTY, b: EMPTY}
    assert await hub.contexts([]) == {}
    await hub.publish([message(a, 1)])  # a log alone says nothing about parties
    assert await hub.contexts([a]) == {a: EMPTY}


async def test_remember_lays_the_new_over_the_stored(hub: Hub, conversation: str) -> None:
    conv, other = f"t:{conversation}", f"t:{conversation}-other"
    await hub.remember(
        {
            conv: ConversationContext(own_address="+15550001", roles={"p:1": "agent"}),
            other: ConversationContext(roles={"bot-é": "bot"}),
        }
    )
    await hub.remember({conv: ConversationContext(roles={"p:1": "bot", "p:2": "user"})})
    assert (await hub.contexts([conv]))[conv] == ConversationContext(
        own_address="+15550001", roles={"p:1": "bot", "p:2": "user"}
    ), "no own address learned: the stored one stays; a party's newest role wins"
    await hub.remember({conv: ConversationContext(own_address="+15550002")})
    before = hub.round_trips
    found = await hub.contexts([conv, other, f"{conv}-none"])
    assert found == {
        conv: ConversationContext(own_address="+15550002", roles={"p:1": "bot", "p:2": "user"}),
        other: ConversationContext(roles={"bot-é": "bot"}),
        f"{conv}-none": EMPTY,
    }
    assert hub.round_trips - before == (1 if isinstance(hub, RedisHub) else 0)
    before = hub.round_trips
    await hub.remember({})
    await hub.remember({conv: EMPTY, f"{conv}-none": EMPTY})  # nothing learned: nothing written
    assert hub.round_trips == before
    assert (await hub.contexts([f"{conv}-none"]))[f"{conv}-none"] == EMPTY


async def test_replicas_remembering_at_once_lose_nothing(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    # Two Redis replicas share the store; the memory engine is one process, so one hub.
    replica = create_hub(url_of(hub)) if isinstance(hub, RedisHub) else hub
    await replica.start()
    try:
        await asyncio.gather(
            *(
                (hub, replica)[n % 2].remember(
                    {conv: ConversationContext(roles={f"party-{n}": "agent"})}
                )
                for n in range(40)
            ),
            replica.remember({conv: ConversationContext(own_address="me")}),
        )
        (stored,) = (await hub.contexts([conv])).values()
        assert stored.own_address == "me"
        assert stored.roles == {f"party-{n}": "agent" for n in range(40)}
    finally:
        if replica is not hub:
            await replica.close()


async def test_trimming_the_log_keeps_the_context(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    await hub.remember({conv: ConversationContext(roles={"a": "agent"})})
    await hub.publish([message(conv, n) for n in range(1, 601)])  # the hub keeps 200
    assert (await hub.contexts([conv]))[conv] == ConversationContext(roles={"a": "agent"})


async def test_the_context_ends_with_its_log(hub: Hub, conversation: str) -> None:
    """An ended conversation's context expires with its log (also one remembered after
    `ended`); one remembered before any event is kept as long as an ended log, unless the
    conversation's first event adopts it."""
    done, orphan, adopted = (f"t:{conversation}-{n}" for n in ("done", "orphan", "adopted"))
    short = create_hub(url_of(hub), ended_ttl=1)
    await short.start()
    try:
        learned = ConversationContext(roles={"a": "agent"})
        await short.remember({orphan: learned, adopted: learned, done: learned})
        await short.publish([message(adopted, 1), message(done, 1), ended(done)])
        await short.remember({done: ConversationContext(roles={"late": "bot"})})
        assert (await short.contexts([done]))[done].roles == {"a": "agent", "late": "bot"}
        async with asyncio.timeout(5):
            while await short.head(done):
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)  # past the orphan's end too: it was remembered first
        assert await short.contexts([done, orphan, adopted]) == {
            done: EMPTY,
            orphan: EMPTY,
            adopted: learned,
        }
    finally:
        await short.close()


async def test_redis_gives_the_context_its_logs_expiry(redis_url: str, conversation: str) -> None:
    conv, orphan = f"t:{conversation}", f"t:{conversation}-orphan"
    hub = RedisHub(redis_url, ended_ttl=3600, idle_ttl=7200)
    await hub.start()
    client = aioredis.Redis.from_url(redis_url)
    try:
        seq_key = stream_keys(conv)[0]
        ctx_key = context_key(conv)

        async def ends(key: str) -> int:
            return int(await client.execute_command("PEXPIRETIME", key))

        await hub.remember({orphan: ConversationContext(own_address="x")})
        assert 3590 < await client.ttl(context_key(orphan)) <= 3600  # no log yet
        await hub.remember({conv: ConversationContext(own_address="x")})
        await hub.publish([message(conv, 1)])
        # Adopted by its open log: they end together, `idle_ttl` after its last event.
        assert await ends(ctx_key) == await ends(seq_key) > 0
        assert 7190 < await client.ttl(ctx_key) <= 7200
        await hub.publish([ended(conv)])
        assert await ends(ctx_key) == await ends(seq_key) > 0
        await client.persist(ctx_key)  # whatever it had, remembering gives it its log's end
        await hub.remember({conv: ConversationContext(roles={"b": "bot"})})
        assert await ends(ctx_key) == await ends(seq_key) > 0
        # A role this version does not know (a newer one wrote it) is left out, not fatal.
        await client.hset(ctx_key, "role:c", "robot")
        assert (await hub.contexts([conv]))[conv] == ConversationContext(
            own_address="x", roles={"b": "bot"}
        )
    finally:
        await client.aclose()
        await hub.close()


async def test_redis_unreachable_is_store_unavailable(
    redis_factory: Callable[[], RedisServer], conversation: str
) -> None:
    conv = f"t:{conversation}"
    server = redis_factory()
    hub = RedisHub(server.url)
    await hub.start()
    try:
        await hub.remember({conv: ConversationContext(roles={"a": "agent"})})
        server.kill()
        with pytest.raises(StoreUnavailable) as refused:
            await hub.contexts([conv])
        assert refused.value.recoverable and refused.value.status == 503
        with pytest.raises(StoreUnavailable):
            await hub.remember({conv: ConversationContext(roles={"b": "bot"})})
        server.start()  # back with its data, without the scripts it had loaded
        await hub.remember({conv: ConversationContext(roles={"b": "bot"})})
        assert (await hub.contexts([conv]))[conv].roles == {"a": "agent", "b": "bot"}
    finally:
        await hub.close()
