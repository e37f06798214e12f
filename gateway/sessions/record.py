"""The persisted record of one vendor session: what any replica needs to resume it."""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec

SessionState = Literal["active", "idle", "ended"]


class SessionRecord(msgspec.Struct, kw_only=True):
    """`state` is the connector's snapshot; `status` says whether a replica should run it:
    `active` sessions are owned (and taken over), `idle` ones wait for the next command,
    `ended` ones keep only their history."""

    conversation_id: str
    dialect: str
    status: SessionState = "active"
    state: dict[str, Any] = {}
    started_by: str | None = None
    """The client (token `sub`) whose `start` opened it: only it is granted read by starting."""
    created_at: float = msgspec.field(default_factory=time.time)
    updated_at: float = msgspec.field(default_factory=time.time)


record_encoder = msgspec.json.Encoder()
record_decoder: msgspec.json.Decoder[SessionRecord] = msgspec.json.Decoder(SessionRecord)
