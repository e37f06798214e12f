"""The `memory://` hub: one process, logs in dicts. The default engine and the tests' baseline.

Same semantics as the Redis engine (dedup, seq, retention, replay, patterns, conversation
context); events reach subscriptions by a direct call, so a memory hub never has gaps to repair.
Bounded like it too: a log keeps `maxlen` events and its dedup index their ids; a conversation
is forgotten `idle_ttl` after its last event (`ended_ttl` after `ended`); and at most
`max_conversations` are kept, the least recently written forgotten first.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from gateway.context import EMPTY, ConversationContext
from gateway.hub import wire
from gateway.hub.base import Hub, Published, Subscription, pattern_subscribers
from gateway.hub.repair import LogState, Page
from gateway.model import EPHEMERAL, Ended, Event, event_encoder


class _Log:
    """One conversation: its log, dedup index and context, forgotten together. `epoch` names
    this log: one made again after it was forgotten (or in a new process) has another."""

    __slots__ = ("context", "entries", "epoch", "expires_at", "ids", "order", "seq")

    def __init__(self, maxlen: int) -> None:
        self.seq = 0
        self.epoch = secrets.token_hex(4)
        self.ids: dict[str, int] = {}
        self.order: deque[str] = deque()  # the ids of `entries`, oldest first
        self.entries: deque[tuple[int, bytes]] = deque(maxlen=maxlen)
        self.expires_at: float | None = None
        self.context = EMPTY


class MemoryHub(Hub):
    """Logs kept in this process. `maxlen` bounds each log (oldest trimmed first); a
    conversation is forgotten `ended_ttl` seconds after its `ended` event, `idle_ttl` after
    its last event otherwise, and the least recently written first once there are more than
    `max_conversations`."""

    def __init__(
        self,
        *,
        maxlen: int = 10_000,
        ended_ttl: float = 7 * 86400,
        idle_ttl: float = 30 * 86400,
        max_conversations: int = 100_000,
        **repair: Any,
    ) -> None:
        super().__init__(**repair)
        self.maxlen = maxlen
        self.ended_ttl = ended_ttl
        self.idle_ttl = idle_ttl
        self.max_conversations = max_conversations
        self.evicted = 0
        """Conversations forgotten to stay within `max_conversations`."""
        self._logs: OrderedDict[str, _Log] = OrderedDict()  # least recently written first
        self._exact: defaultdict[str, list[Subscription]] = defaultdict(list)
        self._patterns: defaultdict[str, list[Subscription]] = defaultdict(list)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        for subscriptions in [*self._exact.values(), *self._patterns.values()]:
            for subscription in list(subscriptions):
                subscription.close()

    def _log(self, conversation: str, create: bool = False) -> _Log | None:
        entry = self._logs.get(conversation)
        if entry is not None and entry.expires_at is not None and entry.expires_at < time.time():
            del self._logs[conversation]
            entry = None
        if entry is None and create:
            entry = self._logs[conversation] = _Log(self.maxlen)
        return entry

    async def publish(self, events: Sequence[Event]) -> list[Published]:
        results = []
        for event in events:
            conversation = event.conversation_id
            if isinstance(event, EPHEMERAL):
                self._dispatch(conversation, 0, "", event_encoder.encode(event))
                results.append(Published(event.id, 0))
                continue
            entry = self._log(conversation, create=True)
            assert entry is not None
            known = entry.ids.get(event.id)
            if known is not None:
                results.append(Published(event.id, known, duplicate=True))
                continue
            entry.seq += 1
            if len(entry.order) == self.maxlen:  # its event leaves the log: its id goes too
                del entry.ids[entry.order.popleft()]
            entry.ids[event.id] = entry.seq
            entry.order.append(event.id)
            payload = wire.encode_stored(event, entry.seq, entry.epoch)
            entry.entries.append((entry.seq, payload))
            ttl = self.ended_ttl if isinstance(event, Ended) else self.idle_ttl
            entry.expires_at = time.time() + ttl  # (the first adopts a context remembered before)
            self._logs.move_to_end(conversation)
            results.append(Published(event.id, entry.seq))
            self._dispatch(conversation, entry.seq, entry.epoch, payload)
        self._bound()
        return results

    def _bound(self) -> None:
        """Forget the least recently written conversations beyond `max_conversations`, and
        those at the old end whose time is up (an expired one is also forgotten when read)."""
        logs, now = self._logs, time.time()
        while logs:
            conversation, entry = next(iter(logs.items()))
            expired = entry.expires_at is not None and entry.expires_at < now
            if not expired and len(logs) <= self.max_conversations:
                return
            del logs[conversation]
            if not expired:
                self.evicted += 1

    def _dispatch(self, conversation: str, seq: int, epoch: str, payload: bytes) -> None:
        # Copies: a sink that overflows closes its subscription in the middle of the loop.
        for subscription in tuple(self._exact.get(conversation, ())):
            subscription.on_event(conversation, seq, epoch, payload)
        for subscription in pattern_subscribers(self._patterns, conversation):
            subscription.on_event(conversation, seq, epoch, payload)

    async def read(
        self, conversation: str, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        entry = self._log(conversation)
        if entry is None or not entry.entries or limit <= 0:
            return []
        first = entry.entries[0][0]
        start = max(after + 1 - first, 0)
        return [entry.entries[i] for i in range(start, min(start + limit, len(entry.entries)))]

    async def read_before(
        self, conversation: str, *, before: int | None = None, limit: int = 50
    ) -> list[tuple[int, bytes]]:
        entry = self._log(conversation)
        if entry is None or not entry.entries or limit <= 0:
            return []
        first = entry.entries[0][0]
        end = (
            len(entry.entries)
            if before is None
            else max(min(before - first, len(entry.entries)), 0)
        )
        return [entry.entries[i] for i in range(max(end - limit, 0), end)]

    async def head(self, conversation: str) -> int:
        entry = self._log(conversation)
        return entry.seq if entry is not None else 0

    async def state(self, conversation: str) -> LogState:
        entry = self._log(conversation)
        if entry is None or entry.seq == 0:
            return LogState()
        first = entry.entries[0][0] if entry.entries else 0
        return LogState(head=entry.seq, epoch=entry.epoch, first=first)

    async def read_page(self, conversation: str, after: int, limit: int) -> Page:
        rows = await self.read(conversation, after=after, limit=limit)
        return Page(
            after=after, state=await self.state(conversation), rows=rows, more=len(rows) >= limit
        )

    async def contexts(self, conversations: Collection[str]) -> dict[str, ConversationContext]:
        found = {}
        for conversation in conversations:
            entry = self._log(conversation)
            found[conversation] = entry.context if entry is not None else EMPTY
        return found

    async def remember(self, learned: Mapping[str, ConversationContext]) -> None:
        for conversation, context in learned.items():
            if context == EMPTY:
                continue
            entry = self._log(conversation, create=True)
            assert entry is not None
            if entry.seq == 0:  # no log yet: kept as an ended one is, until its first event
                entry.expires_at = time.time() + self.ended_ttl
            entry.context = entry.context.merge(context)
            self._logs.move_to_end(conversation)
        self._bound()

    async def ready(self) -> bool:
        return True

    async def _attach(self, subscription: Subscription) -> None:
        table = self._exact if subscription.exact else self._patterns
        table[subscription.target].append(subscription)

    def _detach(self, subscription: Subscription) -> None:
        table = self._exact if subscription.exact else self._patterns
        subscriptions = table.get(subscription.target)
        if subscriptions is not None and subscription in subscriptions:
            subscriptions.remove(subscription)
            if not subscriptions:
                del table[subscription.target]
