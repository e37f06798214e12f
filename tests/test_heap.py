"""`gateway.heap`: survivors of a full collection leave the collector's walk; a cycle among them
is still reclaimed once the frozen heap has grown enough for a complete collection."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway import heap


class Node:
    """A container that can be made into a cycle and watched by a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def thawed() -> Iterator[None]:
    """The process's collector as it was: nothing left frozen by the test."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_full_collection_freezes_what_survived_it(thawed: None) -> None:
    policy = heap._Policy()
    policy.base = 10**12  # no complete collection: only the freezing is looked at
    alive = cycle()  # reachable only through itself: garbage a full collection would free …
    survivor = Node()
    policy.after_collection("stop", {"generation": 2})
    assert gc.get_freeze_count() > 0
    del survivor
    gc.collect()
    assert alive() is not None  # … but frozen, the collector no longer walks it


def test_young_collections_freeze_nothing(thawed: None) -> None:
    policy = heap._Policy()
    for generation in (0, 1):
        policy.after_collection("stop", {"generation": generation})
    policy.after_collection("start", {"generation": 2})
    assert gc.get_freeze_count() == 0


def test_a_complete_collection_frees_frozen_cycles_and_refreezes_the_living(thawed: None) -> None:
    policy = heap._Policy()
    garbage = cycle()
    kept = Node()
    kept.other = kept
    gc.freeze()
    gc.collect()
    assert garbage() is not None
    policy.complete()
    assert garbage() is None
    assert kept.other is kept
    assert policy.base > 0 and gc.get_freeze_count() > 0  # the living are frozen again


async def test_a_doubled_frozen_heap_schedules_one_complete_collection(thawed: None) -> None:
    policy = heap._Policy(floor=0, check_s=60)
    policy.base = 1  # any frozen heap is twice that
    garbage = cycle()
    policy.after_collection("stop", {"generation": 2})  # freezes it, as if it had survived
    assert policy.scheduled
    policy.after_collection("stop", {"generation": 2})  # a second one schedules nothing more
    gc.collect()
    assert garbage() is not None
    await asyncio.sleep(0)  # the loop runs the complete collection
    assert not policy.scheduled
    assert garbage() is None
    assert policy.base > 0 and gc.get_freeze_count() > 0  # the living are frozen again
    gc.freeze()
    policy.base = 1
    policy.after_collection("stop", {"generation": 2})
    assert not policy.scheduled  # counted once within check_s


async def test_a_complete_collection_schedules_no_other(thawed: None) -> None:
    policy = heap._Policy(floor=0, check_s=0)
    policy.base = 1
    gc.callbacks.append(policy.after_collection)
    try:
        cycle()
        policy.after_collection("stop", {"generation": 2})
        assert policy.scheduled
        await asyncio.sleep(0)  # the complete collection, whose own full collection ran the hook
        assert not policy.scheduled
        await asyncio.sleep(0)
        assert not policy.scheduled
    finally:
        gc.callbacks.remove(policy.after_collection)


async def test_below_the_floor_the_count_collects_nothing(thawed: None) -> None:
    policy = heap._Policy(floor=10**12)
    garbage = cycle()
    policy.after_collection("stop", {"generation": 2})
    await asyncio.sleep(0)
    assert not policy.scheduled and policy.base == 0
    assert garbage() is not None  # frozen, and no complete collection ran


def test_without_a_loop_nothing_is_scheduled(thawed: None) -> None:
    policy = heap._Policy(floor=0)
    policy.base = 1
    policy.after_collection("stop", {"generation": 2})
    assert not policy.scheduled  # no running loop in this thread: the next one will do
