"""What a command answers with: the server frames of the unified WebSocket that sessions make.

They travel between replicas as JSON too (a command forwarded to the owner comes back as these).
"""

from __future__ import annotations

from typing import Literal

import msgspec


class _Reply(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    ref: str | None = None


class Started(_Reply, tag="started", kw_only=True):
    """A vendor session was opened; `conversation` is its canonical id."""

    conversation: str
    status: str


class Recovered(_Reply, tag="recovered", kw_only=True):
    """The session's state and its stored events (all of them for a completed session)."""

    conversation: str
    status: str
    events: list[msgspec.Raw]
    last_seq: int = 0


class Ack(_Reply, tag="ack", kw_only=True):
    """The command was carried out; `id`/`seq` name the canonical event it made, if any."""

    conversation: str
    id: str | None = None
    seq: int | None = None


class PlatformHistory(_Reply, tag="history", kw_only=True):
    """A page of the platform's own history (`history` with `source: "platform"`): events in
    time order; `next` (older) and `prev` (newer) are opaque cursors to pass back."""

    conversation: str
    source: Literal["platform"]  # required, so that it is always written
    events: list[msgspec.Raw]
    has_next: bool
    has_prev: bool
    next: str | None = None
    prev: str | None = None


Reply = Started | Recovered | Ack | PlatformHistory
replies_decoder: msgspec.json.Decoder[list[Reply]] = msgspec.json.Decoder(list[Reply])
