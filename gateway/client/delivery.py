"""One subscription's delivery: each event once and, per conversation, in seq order; and the
`Subscription` an application iterates.

The socket may carry an event more than once (a conversation covered by a pattern and by its
own subscription, a replay after a resume) and, across a resume, out of order (a pattern's live
event before the replay that precedes it). A `Delivery` keeps a cursor per conversation (the
last seq it delivered), drops what is at or below it, holds what lies beyond the next seq until
the gap is filled, and passes ephemeral events (seq 0) straight through. The TypeScript SDK's
`Subscription` (clients/typescript/src/subscription.ts) does the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from fnmatch import fnmatchcase

from gateway.hub import is_pattern
from gateway.model import Event


class Delivery:
    """The ordering state of one subscription target; `emit` receives what may be delivered."""

    def __init__(
        self,
        target: str,
        emit: Callable[[Event], None],
        gapped: Callable[[str], None] | None = None,
    ) -> None:
        """`gapped(conversation)`: a conversation began to hold events beyond a gap (the client
        then checks whether the log still has what is missing)."""
        self.target = target
        self.exact = not is_pattern(target)
        self.cursors: dict[str, int] = {}
        # An exact subscription knows its cursor once its first `subscribed` arrives; what comes
        # before that waits.
        self.ready = not self.exact
        self._emit = emit
        self._gapped = gapped
        self._held: dict[str, dict[int, Event]] = {}
        self._waiting: list[Event] = []

    def matches(self, conversation: str) -> bool:
        return conversation == self.target if self.exact else fnmatchcase(conversation, self.target)

    def start(self, seq: int) -> None:
        """The subscription starts after `seq`: release what waited for it."""
        self.cursors[self.target] = seq
        self._held.pop(self.target, None)
        self.ready = True
        waiting, self._waiting = self._waiting, []
        for event in waiting:
            self.offer(event)

    def offer(self, event: Event) -> None:
        seq = event.seq
        if seq == 0:
            self._emit(event)
            return
        if not self.ready:
            self._waiting.append(event)
            return
        conversation = event.conversation_id
        cursor = self.cursors.get(conversation, seq - 1)  # a pattern's first sight: start here
        if seq <= cursor:
            return
        if seq > cursor + 1:
            if conversation not in self._held:
                self._held[conversation] = {}
                if self._gapped is not None:
                    self._gapped(conversation)
            self._held[conversation][seq] = event
            self.cursors[conversation] = cursor
            return
        self.cursors[conversation] = seq
        self._emit(event)
        self._release(conversation, seq + 1)

    def first_held(self, conversation: str) -> int | None:
        """The lowest seq held beyond a gap, if any."""
        held = self._held.get(conversation)
        return min(held) if held else None

    def skip_to(self, conversation: str, seq: int) -> None:
        """The events before `seq` are gone from the gateway's log (retention): go on from it."""
        if seq - 1 <= self.cursors.get(conversation, 0):
            return
        self.cursors[conversation] = seq - 1
        self._release(conversation, seq)

    def _release(self, conversation: str, following: int) -> None:
        held = self._held.get(conversation)
        if held is None:
            return
        while (later := held.pop(following, None)) is not None:
            self.cursors[conversation] = following
            self._emit(later)
            following += 1
        for old in [s for s in held if s < following]:
            del held[old]
        if not held:
            del self._held[conversation]


class Subscription:
    """The events of one subscribe call: `async for event in subscription`. The iteration ends
    when it is unsubscribed or the client closes."""

    def __init__(self, target: str, leave: Callable[[Subscription], Awaitable[None]]) -> None:
        self.target = target
        self.seq = 0
        self._leave = leave
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.closed = False

    def _put(self, event: Event | None) -> None:
        if not self.closed:
            self._queue.put_nowait(event)
            if event is None:
                self.closed = True

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while (event := await self._queue.get()) is not None:
            yield event

    async def next(self) -> Event:
        """The next event (`StopAsyncIteration` once the subscription has ended)."""
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def unsubscribe(self) -> None:
        await self._leave(self)
