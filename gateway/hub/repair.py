"""Reads of a conversation's log for subscriptions: shared, and for repairs bounded.

Subscriptions read the log to replay what a client missed (`since`) and to repair a gap (a
lost pub/sub message, a Redis reconnect). After a reconnect every subscription of a replica
wants a repair at once: thousands of conversations times every socket that follows them. So:

- **coalesced**: a read of a conversation serves every subscription that asks for the same
  conversation, from a cursor at or after the read's, while it is queued or in flight: one
  Redis read however many sockets need it;
- **rate-limited**: repair reads take a token from one bucket per hub (`rate` a second, at most
  `burst` saved up) and at most `concurrency` run at once, so a repair never takes the store's
  connections from ingest and readiness; the rest wait their turn (`backlog`);
- **paged**: one read is at most a page (`REPLAY_PAGE` events); a subscription that needs more
  asks again from where the page ended.

A read returns the log's `LogState` next to the rows, read in the same round trip, so the
reader also learns whether the log restarted under it (a new `epoch`, or a head behind it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import msgspec

REPLAY_PAGE = 500


class LogState(msgspec.Struct, frozen=True):
    """Where a conversation's log stands: `head` the last seq assigned (0: no log), `epoch` the
    log's epoch ("" when it has none yet), `first` the oldest seq still kept (0: none)."""

    head: int = 0
    epoch: str = ""
    first: int = 0


class Page(msgspec.Struct, frozen=True):
    """Stored events with seq > `after`, oldest first, and the log's state when read;
    `more`: the page was full (more may follow)."""

    after: int
    state: LogState
    rows: list[tuple[int, bytes]]
    more: bool


PageReader = Callable[[str, int, int], Awaitable[Page]]


class Reads:
    """The log reads of one hub's subscriptions (see the module's docstring)."""

    def __init__(
        self, read: PageReader, *, rate: float = 1000.0, burst: int = 100, concurrency: int = 8
    ) -> None:
        self._read = read
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._turns = asyncio.Semaphore(concurrency)
        self._shared: dict[str, tuple[int, asyncio.Future[Page]]] = {}
        self.backlog = 0
        """Repair reads waiting for their turn now."""
        self.reads = 0
        """Reads made to the store (each serving one or more subscriptions)."""
        self.shared = 0
        """Times a subscription was served by another's read instead of reading itself."""

    async def page(self, conversation: str, after: int, *, repair: bool) -> Page:
        """A page of `conversation`'s log after `after` (rows at or before it filtered out);
        `repair` reads wait for their turn."""
        current = self._shared.get(conversation)
        if current is not None and current[0] <= after:
            self.shared += 1
            page = await asyncio.shield(current[1])
            return _from(page, after)
        future: asyncio.Future[Page] = asyncio.get_running_loop().create_future()
        if current is None:
            self._shared[conversation] = (after, future)
        try:
            if repair:
                self.backlog += 1
                try:
                    async with self._turns:
                        await self._take()
                        page = await self._fetch(conversation, after)
                finally:
                    self.backlog -= 1
            else:
                page = await self._fetch(conversation, after)
            future.set_result(page)
            return page
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            if self._shared.get(conversation, (0, None))[1] is future:
                del self._shared[conversation]

    async def _fetch(self, conversation: str, after: int) -> Page:
        self.reads += 1
        return await self._read(conversation, after, REPLAY_PAGE)

    async def _take(self) -> None:
        """Spend one token, waiting for it if the bucket is empty."""
        while True:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self.rate)


def _from(page: Page, after: int) -> Page:
    """`page` as read for a cursor at or after the one it was read from."""
    if after == page.after:
        return page
    rows = [row for row in page.rows if row[0] > after]
    return Page(after=after, state=page.state, rows=rows, more=page.more)
