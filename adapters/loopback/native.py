"""The loopback dialect's native frames (our own invention, for tests and demos).

    {"kind": "message", "id": "m1", "chat": "c1", "from": {"id": "a1", "role": "agent"},
     "text": "hello", "ts": 1700000000.5}

A body is one frame, an array of frames, or `{"frames": [...]}`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

DIALECT = "loopback"


class Sender(msgspec.Struct, frozen=True):
    """A frame's party. A message or typing frame may leave `role` out: the role its party
    announced when it joined holds (the conversation's context), else `agent`."""

    role: Literal["user", "bot", "agent", "supervisor", "system", "external"] | None = None
    id: str | None = None
    name: str | None = None


class _Frame(msgspec.Struct, tag_field="kind", frozen=True, kw_only=True):
    chat: str
    ts: float | str | None = None


class MessageFrame(_Frame, tag="message", frozen=True, kw_only=True):
    id: str
    text: str
    sender: Sender = msgspec.field(name="from")


class TypingFrame(_Frame, tag="typing", frozen=True, kw_only=True):
    active: bool
    sender: Sender = msgspec.field(name="from")


class JoinedFrame(_Frame, tag="joined", frozen=True, kw_only=True):
    sender: Sender = msgspec.field(name="from")


class EndedFrame(_Frame, tag="ended", frozen=True, kw_only=True):
    by: Literal["user", "agent", "system"] | None = None


Frame = MessageFrame | TypingFrame | JoinedFrame | EndedFrame
