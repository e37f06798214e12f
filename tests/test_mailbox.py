"""`gateway.mailbox.Mailbox`: FIFO, a reader that waits, one reader at a time."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from gateway.mailbox import Mailbox


async def test_items_come_out_in_order_and_a_waiting_reader_is_woken() -> None:
    box: Mailbox[int] = Mailbox()
    box.put_nowait(1)
    box.put_nowait(2)
    assert len(box) == 2
    assert [await box.get(), await box.get()] == [1, 2]
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not reader.done()
    box.put_nowait(3)
    box.put_nowait(4)
    assert await reader == 3
    assert await box.get() == 4
    assert len(box) == 0


async def test_a_second_concurrent_reader_is_refused_and_a_cancelled_one_leaves_no_trace() -> None:
    box: Mailbox[str] = Mailbox()
    first = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await box.get()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    box.put_nowait("after")
    assert await box.get() == "after"


class _Frame:
    """An item that can be watched for being freed."""


async def test_a_reader_that_never_catches_up_does_not_keep_what_it_took() -> None:
    """Under steady load the reader stays one item behind: the list never empties, and what
    was taken must still be let go of."""
    box: Mailbox[_Frame] = Mailbox()
    box.put_nowait(_Frame())
    box.put_nowait(_Frame())
    first = await box.get()  # one stays queued behind it, and from here on always one
    gone = weakref.ref(first)
    del first
    for _ in range(1_000):
        box.put_nowait(_Frame())
        await box.get()
    gc.collect()
    assert gone() is None
    assert len(box) == 1
