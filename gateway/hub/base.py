"""The hub contract, and the subscription logic both engines share.

A hub keeps one log per conversation (seq 1, 2, 3 …), deduplicates events by id, and fans every
stored event out to the subscriptions whose conversation or pattern matches. Engines differ only
in where the log lives and how an event reaches the process (`memory`: a dict and a call;
`redis`: Streams, Lua and one pub/sub connection); `Subscription` carries the guarantees:

- a subscription starts at a cursor (the `since` its client gave, or the conversation's head),
  replays the log after it, then delivers live events, with no gap and no duplicate;
- a live event whose seq is not the next one (a lost pub/sub message, a Redis reconnect) makes
  the subscription re-read the log from its cursor before it delivers anything newer;
- replays wait for the sink to drain, so a resume of 10,000 events never overflows a socket;
- each log has an epoch, made with its first event: a log that restarts (its store lost it)
  gets a new one, and its subscriptions say so (`Sink.restarted`) instead of skipping the new
  log's first seqs as already seen;
- the reads that replay and repair are shared between subscriptions and, for repairs,
  rate-limited (`gateway.hub.repair`): a reconnect does not become a storm of reads.

Next to its log, a hub keeps each conversation's `ConversationContext` (`contexts`, `remember`):
what decoding learned that no single frame carries, shared by every replica and ended with the log.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Collection, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Protocol

import msgspec
import structlog

from gateway.context import ConversationContext
from gateway.errors import RequestError
from gateway.hub.repair import LogState, Page, Reads
from gateway.model import Event

log = structlog.get_logger(__name__)


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

    def restarted(self, conversation: str, epoch: str) -> None:
        """The log of `conversation` restarted under epoch `epoch` (its store lost it): the
        events delivered before are of the old log, and the new log follows from seq 1."""


MAX_SEQ = 2**62
"""The largest seq a client may name (`since`, `before`): far beyond any log, within what
every engine can address (a Redis stream id is two 64-bit numbers)."""

_GLOB = frozenset("*?[]\\")


def is_pattern(conversation: str) -> bool:
    """Whether a subscription target is a pattern (`genesys:*`, `*`) rather than one id (any
    glob character counts, so that nothing glob-like is ever taken for one conversation)."""
    return any(c in conversation for c in "*?[")


def pattern_subscribers(
    patterns: Mapping[str, list[Subscription]], conversation: str
) -> list[Subscription]:
    """The subscriptions, by pattern, of the patterns `conversation` matches (a pattern is a
    prefix and a trailing `*`): one test a pattern, however many sockets share it. A new list,
    so a sink that overflows may close its subscription while the caller walks it."""
    return [
        subscription
        for target, subscriptions in patterns.items()
        if conversation.startswith(target[:-1])
        for subscription in subscriptions
    ]


def check_target(target: str) -> None:
    """Raise `RequestError` unless `target` is in the subscription language: one conversation
    id (no `*`, `?`, `[`, `]`, `\\`), or a literal prefix followed by one `*` at the end
    (`genesys:*`, `genesys:c1*`, `*`), which matches every conversation id starting with it."""
    literal = target[:-1] if target.endswith("*") else target
    if not target or any(c in _GLOB for c in literal):
        raise RequestError(
            f"{target!r} is not a conversation id nor a pattern: a pattern is a literal prefix "
            "and one `*` at its end (`genesys:*`, `*`)",
            path="$.conversation",
        )


def covers(claim: str, target: str) -> bool:
    """Whether a `read` claim allows a subscription target (checked by `check_target`).

    One conversation is allowed by a claim that matches it as a glob (the id is literal, so
    the claim's globbing is the claim's own). A pattern is allowed only by a prefix claim
    (`P*`) whose prefix it extends: its every match is then the claim's; a claim of any other
    shape allows no pattern, since containment could not be decided.
    """
    if not target.endswith("*"):
        return fnmatchcase(target, claim)
    if not claim.endswith("*") or any(c in _GLOB for c in claim[:-1]):
        return False
    return target[:-1].startswith(claim[:-1])


class Subscription:
    """One client's interest in a conversation or a pattern, with a cursor per conversation.

    Made by `Hub.subscribe`, which returns it buffering; the caller announces it (e.g. sends
    `subscribed`) and then calls `start()`, so nothing is delivered before the announcement.

    A cursor is a seq of one log epoch (`epochs`). When the log restarts under it (the store
    lost it: a new epoch, or a head behind the cursor), the cursor goes back to 0 in the new
    epoch, the sink is told (`Sink.restarted`, for a subscription to one conversation) and the
    new log follows. A pattern's cursors last while their conversations are active: one not
    seen for `Hub.pattern_idle_s` (to twice that) is forgotten, so a `*` subscription holds,
    and repairs after a reconnect, only the conversations that were recently live.
    """

    __slots__ = (
        "_buffers",
        "_fills",
        "_idle",
        "_rotate_at",
        "closed",
        "cursors",
        "epochs",
        "exact",
        "hub",
        "recovered",
        "sink",
        "target",
    )

    def __init__(self, hub: Hub, target: str, sink: Sink) -> None:
        self.hub = hub
        self.target = target
        self.exact = not is_pattern(target)
        self.sink = sink
        self.cursors: dict[str, int] = {}
        self.epochs: dict[str, str] = {}
        self.recovered: bool | None = None
        """For a resume (`since`): whether every event after it is delivered."""
        self._buffers: dict[str, list[tuple[int, str, bytes]]] = {}
        self._fills: dict[str, asyncio.Task[None]] | None = None  # replays under way
        self._idle: tuple[dict[str, int], dict[str, str]] | None = None  # a pattern's older cursors
        self._rotate_at = 0.0
        self.closed = False

    @property
    def seq(self) -> int:
        """For an exact subscription: the last seq delivered (or the start cursor)."""
        return self.cursors.get(self.target, 0)

    @property
    def epoch(self) -> str:
        """For an exact subscription: the epoch its cursor is in ("" while the log has none)."""
        return self.epochs.get(self.target, "")

    def start(self) -> None:
        """Begin delivering: replay from the cursor, then live events."""
        if self.exact:
            self._fill(self.target, repair=False)

    def on_event(self, conversation: str, seq: int, epoch: str, payload: bytes) -> None:
        """Called by the engine for every event of a matching conversation, in publish order."""
        if self.closed:
            return
        if seq == 0:
            self.sink.deliver(conversation, 0, payload)
            return
        if not self.exact:
            self._age()
        buffer = self._buffers.get(conversation)
        if buffer is not None:
            buffer.append((seq, epoch, payload))
            return
        last = self.cursors.get(conversation)
        if last is None and self._idle is not None:
            last = self._revive(conversation)
        if last is None:  # a pattern's first sight of this conversation: start here
            last = seq - 1
            self.epochs[conversation] = epoch
        else:
            known = self.epochs.get(conversation, "")
            if known != epoch:
                if known and epoch:  # the log restarted: from its start, said plainly
                    self._restart(conversation, epoch)
                    self._buffers[conversation] = [(seq, epoch, payload)]
                    self._fill(conversation, repair=True)
                    return
                self.epochs[conversation] = epoch or known
        if seq <= last:
            return
        if seq > last + 1:
            self.cursors[conversation] = last
            self._buffers[conversation] = [(seq, epoch, payload)]
            self._fill(conversation, repair=True)
            return
        self.cursors[conversation] = seq
        self.sink.deliver(conversation, seq, payload)

    def _age(self) -> None:
        """Forget a pattern's idle conversations: every `pattern_idle_s` the cursors seen since
        the last turn become the idle generation, and the idle one is dropped (all of them when
        nothing came for a whole turn). A cursor seen again moves back (`_revive`)."""
        now = time.monotonic()
        if now < self._rotate_at:
            return
        idle_s = self.hub.pattern_idle_s
        quiet = now >= self._rotate_at + idle_s
        self._rotate_at = now + idle_s
        cursors, epochs = self.cursors, self.epochs
        self._idle = None if quiet else (cursors, epochs)
        self.cursors, self.epochs = {}, {}
        for conversation in self._buffers:  # under repair: kept
            if conversation in cursors:
                self.cursors[conversation] = cursors.pop(conversation)
                self.epochs[conversation] = epochs.pop(conversation, "")

    def _revive(self, conversation: str) -> int | None:
        """A pattern's cursor of `conversation` from the idle generation (moved back into the
        current one), or None."""
        if self._idle is None:
            return None
        cursor = self._idle[0].pop(conversation, None)
        if cursor is not None:
            self.cursors[conversation] = cursor
            self.epochs[conversation] = self._idle[1].pop(conversation, "")
        return cursor

    def _restart(self, conversation: str, epoch: str) -> None:
        """The log of `conversation` restarted (epoch `epoch`): start over at its beginning."""
        self.cursors[conversation] = 0
        self.epochs[conversation] = epoch
        log.warning("hub.log_restarted", conversation_id=conversation, epoch=epoch)
        if self.exact:
            self.recovered = False
            self.sink.restarted(conversation, epoch)

    def recheck(self) -> None:
        """Re-read every conversation from its cursor (after the engine may have missed events,
        e.g. across a Redis reconnect). A pattern's recently idle conversations are covered too."""
        if not self.exact:
            self._age()
        if self._idle is not None:
            for conversation in list(self._idle[0]):
                self._revive(conversation)
        for conversation in list(self.cursors):
            if conversation not in self._buffers:  # a conversation being replayed is covered
                self._buffers[conversation] = []
                self._fill(conversation, repair=True)

    def _fill(self, conversation: str, *, repair: bool) -> None:
        self._buffers.setdefault(conversation, [])
        task = asyncio.create_task(self._run_fill(conversation, repair))
        if self._fills is None:
            self._fills = {}
        self._fills[conversation] = task
        task.add_done_callback(lambda t: self._forget(conversation, t))

    def _forget(self, conversation: str, task: asyncio.Task[None]) -> None:
        if self._fills is not None and self._fills.get(conversation) is task:
            del self._fills[conversation]

    async def _run_fill(self, conversation: str, repair: bool) -> None:
        retry = 0.05
        while not self.closed:
            try:
                if await self._replay_and_switch_live(conversation, repair):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # store down: keep buffering and try again
                log.warning("hub.replay_failed", conversation_id=conversation, error=str(exc))
                await asyncio.sleep(retry)
                retry = min(retry * 2, 2.0)

    async def _replay_and_switch_live(self, conversation: str, repair: bool) -> bool:
        """Deliver the log after the cursor; True once caught up and delivering live again."""
        cursor = self.cursors.get(conversation, 0)
        while True:
            await self.sink.drained()
            page = await self.hub.reads.page(conversation, cursor, repair=repair)
            if self.closed:
                return True
            state = page.state
            known = self.epochs.get(conversation, "")
            if (known and state.epoch and state.epoch != known) or state.head < cursor:
                self._restart(conversation, state.epoch)  # the log restarted: read it anew
                cursor = 0
                continue
            if state.epoch:
                self.epochs[conversation] = state.epoch
            for seq, payload in page.rows:
                if seq > cursor:
                    cursor = seq
                    self.sink.deliver(conversation, seq, payload)
            self.cursors[conversation] = cursor
            if not page.more:
                break
        # No await from here on: the buffer cannot grow while it is switched back to live.
        epoch = self.epochs.get(conversation, "")
        buffered = [
            (s, e) for s, e, _ in self._buffers[conversation] if s > cursor or (e and e != epoch)
        ]
        if all(s == cursor + i and (e == epoch or not e) for i, (s, e) in enumerate(buffered, 1)):
            for seq, _, payload in self._buffers.pop(conversation):
                if seq > cursor:
                    self.sink.deliver(conversation, seq, payload)
                    cursor = seq
            if not self._buffers:
                self._buffers = {}  # a dict keeps its grown table when emptied; idle ones are many
            self.cursors[conversation] = cursor
            return True
        # Still a hole (or events of another epoch): those events are in the log, read again.
        self._buffers[conversation] = []
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
    """A log per conversation plus fan-out to subscriptions. Engines implement the storage.

    `repair_rate`, `repair_burst`, `repair_concurrency` bound the reads that repair
    subscriptions (see `gateway.hub.repair`); `pattern_idle_s` is how long a pattern
    subscription keeps the cursor of a conversation it saw nothing of (to twice that).
    """

    def __init__(
        self,
        *,
        repair_rate: float = 1000.0,
        repair_burst: int = 100,
        repair_concurrency: int = 8,
        pattern_idle_s: float = 300.0,
    ) -> None:
        self.reads = Reads(
            self.read_page, rate=repair_rate, burst=repair_burst, concurrency=repair_concurrency
        )
        self.pattern_idle_s = pattern_idle_s

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
    async def state(self, conversation: str) -> LogState:
        """Where `conversation`'s log stands (head, epoch, oldest kept seq), in one round trip."""

    @abc.abstractmethod
    async def read_page(self, conversation: str, after: int, limit: int) -> Page:
        """`read(conversation, after=after, limit=limit)` and the log's state, in one round
        trip (what subscriptions replay and repair with, through `reads`)."""

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
        `ended_ttl` after `ended` (`idle_ttl` after its last event while open), and is never
        trimmed (a log's trim keeps its conversation).
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

    async def subscribe(
        self, target: str, sink: Sink, since: int | None = None, epoch: str | None = None
    ) -> Subscription:
        """Subscribe `sink` to a conversation id or a pattern, buffering until `start()`.

        For a conversation, `since` is the last seq the client saw (of log epoch `epoch`, if it
        knows it): the events after it are replayed first, and `recovered` says whether they
        all still are. It is False when the log restarted since (another epoch, or a head
        behind `since`): the subscription then starts at 0 of the new log; and when the oldest
        of them were trimmed (retention): it replays what is kept. Without `since`, the
        subscription starts at the conversation's head (its `seq` says which). Patterns
        deliver live events only, so `since` is refused for them.
        """
        check_target(target)
        subscription = Subscription(self, target, sink)
        if not subscription.exact and (since is not None or epoch is not None):
            raise RequestError("`since` needs one conversation, not a pattern", path="$.since")
        if since is not None and not 0 <= since <= MAX_SEQ:
            raise RequestError(f"`since` must be between 0 and {MAX_SEQ}", path="$.since")
        if subscription.exact:  # live events buffer from the moment the hub routes them
            subscription._buffers[target] = []
        await self._attach(subscription)
        if subscription.exact:
            try:
                state = await self.state(target)
            except BaseException:
                subscription.close()
                raise
            cursor = state.head
            if since is not None:
                cursor = since
                restarted = since > state.head or bool(epoch and epoch != state.epoch)
                if restarted:
                    cursor = 0
                subscription.recovered = not restarted and not (
                    since < state.head and state.first > since + 1
                )
            subscription.cursors[target] = cursor
            subscription.epochs[target] = state.epoch
        return subscription

    async def wait_closed(self, subscriptions: Sequence[Subscription]) -> None:
        """Close subscriptions and let their replay tasks finish cancelling."""
        tasks = [t for s in subscriptions for t in (s._fills or {}).values()]
        for s in subscriptions:
            s.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
