"""`Mailbox`: an unbounded queue with one reader, for what a vendor session hands itself.

A connector passes frames and batches from its socket's reader to `inbound()` through queues
that live as long as the session. `asyncio.Queue` allocates three deques and an `Event` (a
fourth) per instance, about 3 KiB before anything is queued: two of them were a tenth of a
visitor widget session's memory (tracemalloc, issue 24). A mailbox is a list and, while its
reader waits, one future.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")

COMPACT_AT = 64
"""Taken items the list may hold before it drops them (when they are half of it or more)."""


class Mailbox(Generic[T]):
    """FIFO, never full: `put_nowait` from anywhere in the loop, `get` by one reader at a
    time (a second concurrent `get` raises `RuntimeError`)."""

    __slots__ = ("_head", "_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._head = 0  # items[:head] were taken; dropped when the reader catches up, or
        # when they are many (`COMPACT_AT`) and at least half of the list
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items) - self._head

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while self._head == len(self._items):
            if self._waiter is not None:
                raise RuntimeError("a Mailbox has one reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items = self._items
        item = items[self._head]
        self._head += 1
        if self._head == len(items):
            items.clear()
            self._head = 0
        elif self._head >= COMPACT_AT and self._head * 2 >= len(items):
            # A reader that never quite catches up must not keep what it took alive.
            del items[: self._head]
            self._head = 0
        return item
