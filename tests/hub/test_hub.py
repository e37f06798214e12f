"""The hub contract, run against each engine (memory and a real Redis)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import RequestError
from gateway.hub import Hub, create_hub
from gateway.model import Signal, event_decoder
from tests.hub.events import Collect, ended, message


async def test_sequences_and_deduplicates(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    first = await hub.publish([message(conv, 1), message(conv, 2)])
    assert [(p.seq, p.duplicate) for p in first] == [(1, False), (2, False)]
    again = await hub.publish([message(conv, 2), message(conv, 3), message(conv, 1)])
    assert [(p.seq, p.duplicate) for p in again] == [(2, True), (3, False), (1, True)]
    assert await hub.head(conv) == 3
    stored = [event_decoder.decode(p) for _, p in await hub.read(conv)]
    assert [(e.seq, e.id) for e in stored] == [(1, f"{conv}/1"), (2, f"{conv}/2"), (3, f"{conv}/3")]


async def test_reads_pages_both_ways(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    await hub.publish([message(conv, n) for n in range(1, 11)])
    assert [s for s, _ in await hub.read(conv, after=3, limit=4)] == [4, 5, 6, 7]
    assert [s for s, _ in await hub.read_before(conv, before=5, limit=3)] == [2, 3, 4]
    assert [s for s, _ in await hub.read_before(conv, limit=2)] == [9, 10]
    assert await hub.read(f"t:{conversation}-none") == []
    assert await hub.head(f"t:{conversation}-none") == 0


async def test_retention_trims_oldest(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    await hub.publish([message(conv, n) for n in range(1, 601)])
    kept = [s for s, _ in await hub.read(conv, limit=1000)]
    assert kept[-1] == 600
    assert 200 <= len(kept) < 600  # Redis trims approximately (MAXLEN ~), never below maxlen
    # Dedup covers the events the log keeps (its last maxlen), and forgets the rest with them.
    assert (await hub.publish([message(conv, 401)]))[0].duplicate
    assert not (await hub.publish([message(conv, 1)]))[0].duplicate


async def test_ephemeral_events_fan_out_but_are_not_stored(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    sink = Collect()
    subscription = await hub.subscribe(conv, sink)
    subscription.start()
    signal = Signal(
        id=f"{conv}/s",
        conversation_id=conv,
        dialect="t",
        at="2024-01-01T00:00:00.000Z",
        data={"sdp": "x"},
    )
    (result,) = await hub.publish([signal])
    assert result.seq == 0
    await hub.publish([message(conv, 1)])
    await sink.until(2, conv)
    assert sink.seqs(conv) == [0, 1]
    assert [s for s, _ in await hub.read(conv)] == [1]
    subscription.close()


async def test_subscribe_since_replays_then_goes_live(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    await hub.publish([message(conv, n) for n in range(1, 6)])
    sink = Collect()
    subscription = await hub.subscribe(conv, sink, since=2)
    assert subscription.seq == 2
    subscription.start()
    publisher = asyncio.create_task(hub.publish([message(conv, n) for n in range(6, 9)]))
    assert await sink.until(6, conv) == [3, 4, 5, 6, 7, 8]
    await publisher
    await hub.publish([message(conv, 9)])
    assert await sink.until(7, conv) == [3, 4, 5, 6, 7, 8, 9]
    subscription.close()


async def test_subscribe_without_since_starts_at_head(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    await hub.publish([message(conv, 1), message(conv, 2)])
    sink = Collect()
    subscription = await hub.subscribe(conv, sink)
    assert subscription.seq == 2
    subscription.start()
    await hub.publish([message(conv, 3)])
    assert await sink.until(1, conv) == [3]
    subscription.close()


async def test_replay_larger_than_a_page(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    big = create_hub(getattr(hub, "url", "memory://"), maxlen=5000)
    await big.start()
    try:
        for start in range(0, 1200, 200):
            await big.publish([message(conv, n) for n in range(start + 1, start + 201)])
        sink = Collect()
        subscription = await big.subscribe(conv, sink, since=0)
        subscription.start()
        assert await sink.until(1200, conv) == list(range(1, 1201))
        subscription.close()
    finally:
        await big.close()


async def test_patterns_see_every_matching_conversation(hub: Hub, conversation: str) -> None:
    sink, everything = Collect(), Collect()
    dialect_sub = await hub.subscribe(f"p{conversation}:*", sink)
    all_sub = await hub.subscribe("*", everything)
    dialect_sub.start()
    all_sub.start()
    a, b, other = f"p{conversation}:a", f"p{conversation}:b", f"q{conversation}:c"
    await hub.publish([message(a, 1), message(b, 1), message(other, 1), message(a, 2)])
    assert await sink.until(2, a) == [1, 2]
    assert await sink.until(1, b) == [1]
    assert await everything.until(1, other) == [1]
    assert sink.seqs(other) == []
    with pytest.raises(RequestError):
        await hub.subscribe(f"p{conversation}:*", Collect(), since=3)
    dialect_sub.close()
    all_sub.close()


async def test_order_under_concurrent_publishers(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    sink = Collect()
    subscription = await hub.subscribe(conv, sink)
    subscription.start()
    await asyncio.gather(*(hub.publish([message(conv, n)]) for n in range(1, 101)))
    assert await sink.until(100, conv) == list(range(1, 101))
    ids = [event_decoder.decode(p).id for _, p in await hub.read(conv)]
    assert sorted(ids) == sorted(f"{conv}/{n}" for n in range(1, 101))
    subscription.close()


async def test_ended_sets_expiry(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    short = create_hub(getattr(hub, "url", "memory://"), ended_ttl=1)
    await short.start()
    try:
        await short.publish([message(conv, 1), ended(conv)])
        assert await short.head(conv) == 2
        async with asyncio.timeout(5):
            while await short.head(conv):
                await asyncio.sleep(0.1)
        assert await short.read(conv) == []
    finally:
        await short.close()


async def test_closed_subscription_stops(hub: Hub, conversation: str) -> None:
    conv = f"t:{conversation}"
    sink = Collect()
    subscription = await hub.subscribe(conv, sink)
    subscription.start()
    await hub.publish([message(conv, 1)])
    await sink.until(1, conv)
    subscription.close()
    subscription.close()
    await hub.publish([message(conv, 2)])
    await asyncio.sleep(0.05)
    assert sink.seqs(conv) == [1]


async def test_resubscribing_at_once_keeps_the_link(hub: Hub, conversation: str) -> None:
    """A conversation's last subscription closed and a new one made at once, again and again:
    the link unsubscribes and subscribes again and stays up (on a Cluster it must take Redis's
    confirmation of its own unsubscribe, should it arrive after the new subscribe, for its own,
    not for a slot that moved off its node), and the last subscription gets live events."""
    conv = f"t:{conversation}"
    for n in range(30):  # the unsubscribe's confirmation arriving before and after
        (await hub.subscribe(conv, Collect())).close()
        await asyncio.sleep(n % 6 * 0.0005)
    sink = Collect()
    subscription = await hub.subscribe(conv, sink)
    subscription.start()
    await asyncio.sleep(0.3)  # every confirmation is in
    await hub.publish([message(conv, 1)])
    assert await sink.until(1, conv) == [1]
    assert hub.reconnects == 0
    subscription.close()
