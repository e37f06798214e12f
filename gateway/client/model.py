"""What the Python client hands the application: connection states, pages, the seq store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from gateway.model import Event

ConnectionState = Literal["connecting", "connected", "resuming", "disconnected"]
TokenReason = Literal["connect", "expired", "refused"]


@dataclass(frozen=True)
class StateChange:
    """A change of the connection's state (`disconnected` says why and whether it retries)."""

    state: ConnectionState
    previous: ConnectionState
    attempt: int
    reconnects: int
    code: int | None = None
    reason: str | None = None
    will_retry: bool | None = None
    retry_in_s: float | None = None
    resumed: int | None = None


class SeqStore(Protocol):
    """Where the last seq of each conversation is kept (so a new client resumes too)."""

    def get(self, conversation: str) -> int | None: ...

    def set(self, conversation: str, seq: int) -> None: ...


class MemorySeqStore:
    def __init__(self) -> None:
        self.seqs: dict[str, int] = {}

    def get(self, conversation: str) -> int | None:
        return self.seqs.get(conversation)

    def set(self, conversation: str, seq: int) -> None:
        self.seqs[conversation] = seq


class HistoryPage(msgspec.Struct):
    """A page of the gateway's log, oldest first."""

    conversation: str
    events: list[Event]
    has_more: bool


class PlatformPage(msgspec.Struct):
    """A page of the platform's own history: `next` pages back, `prev` forward."""

    conversation: str
    events: list[Event]
    has_next: bool
    has_prev: bool
    next: str | None = None
    prev: str | None = None


class RecoveredSession(msgspec.Struct):
    conversation: str
    status: str
    events: list[Event]
    last_seq: int = 0


@dataclass(frozen=True)
class Gap:
    """Events `after` < seq < `next` of a conversation are no longer in the gateway's log (its
    retention trimmed them before they were delivered): delivery goes on from `next`."""

    conversation: str
    after: int
    next: int
