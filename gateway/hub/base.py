"""The hub contract, and the subscription logic both engines share.

A hub keeps one log per conversation (seq 1, 2, 3 …), deduplicates events by id, and fans every
stored event out to the subscriptions whose conversation or pattern matches. Engines differ only
in where the log lives and how an event reaches the process (`memory`: a dict and a call;
`redis`: Streams, Lua and one pub/sub connection); `Subscription` carries the guarantees:

- a subscription starts at a cursor (the `since` its client gave, or the conversation's head),
  replays the log after it, then delivers live events, with no gap and no duplicate;
- a live event whose seq is not the next one (a lost pub/sub message, a Redis reconnect) makes
  the subscription re-read the log from its cursor before it delivers anything newer;
- replays wait for the sink to drain, so a resume of 10,000 events never overflows a socket.

Next to its log, a hub keeps each conversation's `ConversationContext` (`contexts`, `remember`):
what decoding learned that no single frame carries, shared by every replica and ended with the log.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Collection, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Protocol

import msgspec
import structlog

from gateway.context import ConversationContext
from gateway.errors import RequestError
from gateway.model import Event

log = structlog.get_logger(__name__)

REPLAY_PAGE = 500


class Published(msgspec.Struct, frozen=True):
    """The outcome of publishing one event: its id, its seq (0 for ephemeral events), and
    whether the hub already had it (then `seq` is the one it was stored with)."""

    id: str
    seq: int
    duplicate: bool = False


class Sink(Protocol):
    """Where a subscription delivers (a WebSocket connection, in production)."""

    def deliver(self, conversation: str, seq: int, payload: bytes) -> None:
        """Take one stored event (`seq` 0: ephemeral) without blocking. A sink that cannot keep
        up closes itself; it never makes the caller wait."""

    async def drained(self) -> None:
        """Return once the sink has room for a page of replayed events."""


def is_pattern(conversation: str) -> bool:
    """Whether a subscription target is a glob pattern (`genesys:*`, `*`) rather than one id."""
    return any(c in conversation for c in "*?[")


class Subscription:
    """One client's interest in a conversation or a pattern, with a cursor per conversation.

    Made by `Hub.subscribe`, which returns it buffering; the caller announces it (e.g. sends
    `subscribed`) and then calls `start()`, so nothing is delivered before the announcement.
    """

    __slots__ = ("_buffers", "_fills", "closed", "cursors", "exact", "hub", "sink", "target")

    def __init__(self, hub: Hub, target: str, sink: Sink) -> None:
        self.hub = hub
        self.target = target
        self.exact = not is_pattern(target)
        self.sink = sink
        self.cursors: dict[str, int] = {}
        self._buffers: dict[str, list[tuple[int, bytes]]] = {}
        self._fills: dict[str, asyncio.Task[None]] | None = None  # replays under way
        self.closed = False

    @property
    def seq(self) -> int:
        """For an exact subscription: the last seq delivered (or the start cursor)."""
        return self.cursors.get(self.target, 0)

    def matches(self, conversation: str) -> bool:
        return conversation == self.target if self.exact else fnmatchcase(conversation, self.target)

    def start(self) -> None:
        """Begin delivering: replay from the cursor, then live events."""
        if self.exact:
            self._fill(self.target)

    def on_event(self, conversation: str, seq: int, payload: bytes) -> None:
        """Called by the engine for every event of a matching conversation, in publish order."""
        if self.closed:
            return
        if seq == 0:
            self.sink.deliver(conversation, 0, payload)
            return
        buffer = self._buffers.get(conversation)
        if buffer is not None:
            buffer.append((seq, payload))
            return
        last = self.cursors.get(conversation)
        if last is None:  # a pattern's first sight of this conversation: start here
            last = seq - 1
        if seq <= last:
            return
        if seq > last + 1:
            self.cursors[conversation] = last
            self._buffers[conversation] = [(seq, payload)]
            self._fill(conversation)
            return
        self.cursors[conversation] = seq
        self.sink.deliver(conversation, seq, payload)

    def recheck(self) -> None:
        """Re-read every conversation from its cursor (after the engine may have missed events,
        e.g. across a Redis reconnect)."""
        for conversation in list(self.cursors):
            if conversation not in self._buffers:  # a conversation being replayed is covered
                self._fill(conversation)

    def _fill(self, conversation: str) -> None:
        self._buffers.setdefault(conversation, [])
        task = asyncio.create_task(self._run_fill(conversation))
        if self._fills is None:
            self._fills = {}
        self._fills[conversation] = task
        task.add_done_callback(lambda t: self._forget(conversation, t))

    def _forget(self, conversation: str, task: asyncio.Task[None]) -> None:
        if self._fills is not None and self._fills.get(conversation) is task:
            del self._fills[conversation]

    async def _run_fill(self, conversation: str) -> None:
        retry = 0.05
        while not self.closed:
            try:
                if await self._replay_and_switch_live(conversation):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # store down: keep buffering and try again
                log.warning("hub.replay_failed", conversation_id=conversation, error=str(exc))
                await asyncio.sleep(retry)
                retry = min(retry * 2, 2.0)

    async def _replay_and_switch_live(self, conversation: str) -> bool:
        """Deliver the log after the cursor; True once caught up and delivering live again."""
        cursor = self.cursors.get(conversation, 0)
        while True:
            await self.sink.drained()
            page = await self.hub.read(conversation, after=cursor, limit=REPLAY_PAGE)
            if self.closed:
                return True
            for seq, payload in page:
                if seq > cursor:
                    cursor = seq
                    self.sink.deliver(conversation, seq, payload)
            self.cursors[conversation] = cursor
            if len(page) < REPLAY_PAGE:
                break
        # No await from here on: the buffer cannot grow while it is switched back to live.
        buffered = [(s, p) for s, p in self._buffers.pop(conversation, ()) if s > cursor]
        if not self._buffers:
            self._buffers = {}  # a dict keeps its grown table when emptied; idle ones are many
        if all(s == cursor + i for i, (s, _) in enumerate(buffered, 1)):
            for seq, payload in buffered:
                self.sink.deliver(conversation, seq, payload)
                cursor = seq
            self.cursors[conversation] = cursor
            return True
        self._buffers[conversation] = []  # still a hole: those events are in the log, read again
        return False

    def close(self) -> None:
        """Stop delivering and leave the hub. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for task in list((self._fills or {}).values()):
            task.cancel()
        self.hub._detach(self)


class Hub(abc.ABC):
    """A log per conversation plus fan-out to subscriptions. Engines implement the storage."""

    round_trips: int = 0
    """Requests made to the store (a batch publish is one): read by the metrics."""
    reconnects: int = 0
    """Times the fan-out link to the store was re-established."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (and start listening). Raises `StoreUnavailable` if the store is down."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect; subscriptions stop receiving."""

    @abc.abstractmethod
    async def publish(self, events: Sequence[Event]) -> list[Published]:
        """Dedup, sequence, append and fan out `events` (in order); one result per event.

        Events already in the log (same id) are reported as duplicates and change nothing;
        ephemeral events (`signal`) are fanned out with seq 0 and never stored. The whole batch
        is written in one round trip. Raises `StoreUnavailable` if the store cannot be reached,
        in which case the caller must assume nothing was stored and retry the whole batch.
        """

    @abc.abstractmethod
    async def read(
        self, conversation: str, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        """Stored events with seq > `after`, oldest first, at most `limit`, as (seq, JSON)."""

    @abc.abstractmethod
    async def read_before(
        self, conversation: str, *, before: int | None = None, limit: int = 50
    ) -> list[tuple[int, bytes]]:
        """The `limit` stored events just before seq `before` (the newest ones when None),
        oldest first."""

    @abc.abstractmethod
    async def head(self, conversation: str) -> int:
        """The last seq assigned in `conversation` (0 when it has none)."""

    @abc.abstractmethod
    async def contexts(self, conversations: Collection[str]) -> dict[str, ConversationContext]:
        """The stored context of each conversation named (`gateway.context.EMPTY` for one with
        none), read in one round trip. Raises `StoreUnavailable` if the store cannot be reached.
        """

    @abc.abstractmethod
    async def remember(self, learned: Mapping[str, ConversationContext]) -> None:
        """Lay each learned context over its conversation's stored one, with the semantics of
        `ConversationContext.merge` (a newly known own address replaces the old one; a party's
        newest announced role wins), in one round trip.

        Atomic per conversation and field by field, so replicas remembering different parties
        at once lose nothing. A context ends with its conversation's log: it expires with it
        `ended_ttl` after `ended`, and is never trimmed (a log's trim keeps its conversation).
        One remembered before the conversation's first stored event is kept as an ended log
        would be, until that event adopts it. Raises `StoreUnavailable` if the store cannot be
        reached; remembering again is harmless (merging is idempotent).
        """

    @abc.abstractmethod
    async def ready(self) -> bool:
        """Whether the store answers and the fan-out listener is alive."""

    @abc.abstractmethod
    async def _attach(self, subscription: Subscription) -> None:
        """Start routing events of the subscription's target to it (confirmed when it returns)."""

    @abc.abstractmethod
    def _detach(self, subscription: Subscription) -> None:
        """Stop routing events to the subscription."""

    async def subscribe(self, target: str, sink: Sink, since: int | None = None) -> Subscription:
        """Subscribe `sink` to a conversation id or a pattern, buffering until `start()`.

        For a conversation, `since` is the last seq the client saw: the events after it are
        replayed first. Without it, the subscription starts at the conversation's head (its
        `seq` says which). Patterns deliver live events only, so `since` is refused for them.
        """
        subscription = Subscription(self, target, sink)
        if not subscription.exact and since is not None:
            raise RequestError("`since` needs one conversation, not a pattern", path="$.since")
        if since is not None and since < 0:
            raise RequestError("`since` must be 0 or more", path="$.since")
        if subscription.exact:  # live events buffer from the moment the hub routes them
            subscription._buffers[target] = []
        await self._attach(subscription)
        if subscription.exact:
            try:
                cursor = since if since is not None else await self.head(target)
            except BaseException:
                subscription.close()
                raise
            subscription.cursors[target] = cursor
        return subscription

    async def wait_closed(self, subscriptions: Sequence[Subscription]) -> None:
        """Close subscriptions and let their replay tasks finish cancelling."""
        tasks = [t for s in subscriptions for t in (s._fills or {}).values()]
        for s in subscriptions:
            s.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
