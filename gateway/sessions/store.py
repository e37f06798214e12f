"""Where session records, ownership leases and command results live, and how replicas talk.

`SessionStore` is the small interface the router needs; `MemoryStore` serves one process,
`RedisStore` (in `redis_store`) many replicas sharing a Redis:

- a record per session (its connector snapshot), and the set of sessions that should run;
- a lease per session: exactly one replica owns it while it renews the lease within its TTL;
- the results of commands by `ref`, so a repeated command is answered, not redone;
- `forward`: send a command to the replica that owns its session and wait for the answer.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError
from gateway.sessions.record import SessionRecord

RequestHandler = Callable[[bytes], Awaitable[bytes]]
"""How a replica serves a forwarded command: JSON command in, JSON answer out."""


@dataclass
class Kept:
    """What a batch of lease renewals left this replica (`SessionStore.renew_all`)."""

    ours: set[str] = field(default_factory=set)
    """The leases ours afterwards."""
    retaken: int = 0
    """How many of them had lapsed, nobody holding them, and were taken again."""


class OwnerGone(Exception):
    """The replica named by a lease is not listening any more (its lease will lapse)."""


class ForwardedError(GatewayError):
    """An error the owning replica answered a forwarded command with, kept as it was."""

    def __init__(self, body: dict[str, object], status: int, recoverable: bool) -> None:
        details: dict[str, Any] = {
            k: v for k, v in body.items() if k not in ("code", "message", "recoverable")
        }
        super().__init__(
            str(body.get("message", "")),
            code=str(body.get("code", "INTERNAL")),
            recoverable=recoverable,
            **details,
        )
        self.status = status  # type: ignore[misc]


class SessionStore(abc.ABC):
    """Records, leases, refs and forwarding. `replica` is this process's unique id."""

    replica: str

    @abc.abstractmethod
    async def start(self, serve: RequestHandler, on_handover: Callable[[], None]) -> None:
        """Connect; serve commands forwarded to this replica with `serve`, and call
        `on_handover()` when another replica hands its sessions over (it is shutting down)."""

    async def announce_handover(self) -> None:  # noqa: B027 - optional: one process has no peers
        """Tell the other replicas this one just released its sessions."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def load(self, conversation: str) -> SessionRecord | None: ...

    @abc.abstractmethod
    async def save(self, record: SessionRecord, ttl: float | None = None) -> None:
        """Store the record (expiring after `ttl` seconds if given) and keep the set of
        sessions to run in step with its status."""

    @abc.abstractmethod
    async def runnable(self) -> list[str]:
        """Conversations whose sessions should be running (status `active`)."""

    @abc.abstractmethod
    async def acquire(self, conversation: str, ttl: float) -> bool:
        """Take the lease if nobody holds it."""

    @abc.abstractmethod
    async def renew(self, conversation: str, ttl: float) -> bool:
        """Extend this replica's lease; False if it is no longer ours."""

    async def renew_all(self, conversations: list[str], ttl: float) -> Kept:
        """Extend this replica's leases of `conversations`, and take again each that lapsed
        and nobody holds: the ones ours afterwards. A store that can batches them (one round
        trip for many leases, not one each).

        A lease lapses under a keeper that ran late (a replica whose loop a burst saturated:
        thousands at once at 5,000 sessions). Nobody else runs such a session, so it stays
        here: stopping it only for this replica's scanner to take it over again (history
        re-read and re-published) is the expensive way back. One another replica took is
        theirs."""
        kept = Kept()
        for conversation in conversations:
            if await self.renew(conversation, ttl):
                kept.ours.add(conversation)
            elif await self.acquire(conversation, ttl):
                kept.ours.add(conversation)
                kept.retaken += 1
        return kept

    @abc.abstractmethod
    async def release(self, conversation: str) -> None:
        """Give the lease up (only if it is ours)."""

    @abc.abstractmethod
    async def owner(self, conversation: str) -> str | None: ...

    @abc.abstractmethod
    async def result(self, scope: str, ref: str) -> bytes | None:
        """The stored answer to command `ref` in `scope` (a conversation, or `start`)."""

    @abc.abstractmethod
    async def remember(self, scope: str, ref: str, answer: bytes) -> None: ...

    @abc.abstractmethod
    async def forward(self, owner: str, command: bytes, wait_s: float) -> bytes:
        """Have replica `owner` execute `command`; raises `OwnerGone` if it is not there and
        `TimeoutError` if it does not answer in time."""

    def ready(self) -> bool:
        return True


class MemoryStore(SessionStore):
    """One process: every session is owned here, so nothing is ever forwarded."""

    def __init__(self) -> None:
        self.replica = "local"
        self._records: dict[str, tuple[SessionRecord, float | None]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._results: dict[tuple[str, str], bytes] = {}

    async def start(self, serve: RequestHandler, on_handover: Callable[[], None]) -> None:
        pass

    async def close(self) -> None:
        pass

    async def load(self, conversation: str) -> SessionRecord | None:
        entry = self._records.get(conversation)
        if entry is None:
            return None
        record, expires = entry
        if expires is not None and expires < time.time():
            del self._records[conversation]
            return None
        return record

    async def save(self, record: SessionRecord, ttl: float | None = None) -> None:
        record.updated_at = time.time()
        self._records[record.conversation_id] = (
            record,
            time.time() + ttl if ttl is not None else None,
        )

    async def runnable(self) -> list[str]:
        return [c for c, (r, _) in self._records.items() if r.status == "active"]

    async def acquire(self, conversation: str, ttl: float) -> bool:
        holder = self._leases.get(conversation)
        if holder is not None and holder[1] > time.monotonic() and holder[0] != self.replica:
            return False
        self._leases[conversation] = (self.replica, time.monotonic() + ttl)
        return True

    async def renew(self, conversation: str, ttl: float) -> bool:
        holder = self._leases.get(conversation)
        if holder is None or holder[0] != self.replica:
            return False
        self._leases[conversation] = (self.replica, time.monotonic() + ttl)
        return True

    async def release(self, conversation: str) -> None:
        self._leases.pop(conversation, None)

    async def owner(self, conversation: str) -> str | None:
        holder = self._leases.get(conversation)
        return holder[0] if holder is not None and holder[1] > time.monotonic() else None

    async def result(self, scope: str, ref: str) -> bytes | None:
        return self._results.get((scope, ref))

    async def remember(self, scope: str, ref: str, answer: bytes) -> None:
        self._results[(scope, ref)] = answer

    async def forward(self, owner: str, command: bytes, wait_s: float) -> bytes:
        raise OwnerGone(owner)
