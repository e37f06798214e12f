"""Loopback frames → canonical events: the dialect's spec for the shared pipeline. Pure.

A body is one frame, an array of frames, or the envelope `{"frames": [...]}` (native.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from adapters.loopback.native import (
    DIALECT,
    EndedFrame,
    Frame,
    JoinedFrame,
    MessageFrame,
    Sender,
    TypingFrame,
)
from gateway.codec import event_id
from gateway.decoding import Envelope, Scope, Spec, native_time
from gateway.model import Ended, EndReason, Event, Message, ParticipantJoined, Party, Text, Typing


class Frames(msgspec.Struct):
    """The envelope: a batch of frames (also what the emulator's poll answers, with `next`)."""

    frames: list[msgspec.Raw]


def _party(sender: Sender, scope: Scope) -> Party:
    role = sender.role or scope.context().role_of(sender.id) or "agent"
    return Party(role=role, id=sender.id, name=sender.name)


def build(frame: Frame, scope: Scope) -> Iterable[Event]:
    """One native frame as its canonical event."""
    conv = scope.conversation_id
    at = native_time(frame.ts, "$.ts", "{error}")
    common: dict[str, Any] = {"conversation_id": conv, "dialect": DIALECT, "at": at}
    match frame:
        case MessageFrame():
            content = Text(frame.text)
            yield Message(
                id=event_id(conv, frame.id),
                sender=_party(frame.sender, scope),
                content=content,
                **common,
            )
        case TypingFrame():
            eid = scope.event_id("typing", at, frame.sender.id, frame.active)
            yield Typing(id=eid, sender=_party(frame.sender, scope), active=frame.active, **common)
        case JoinedFrame():
            eid = scope.event_id("joined", at, frame.sender.id)
            party = _party(frame.sender, scope)
            if party.id is not None and frame.sender.role is not None:
                scope.learn(roles={party.id: frame.sender.role})
            yield ParticipantJoined(id=eid, participant=party, **common)
        case EndedFrame():
            reason: EndReason = (
                "user" if frame.by == "user" else "agent" if frame.by == "agent" else "completed"
            )
            yield Ended(id=scope.event_id("ended", at), reason=reason, by=frame.by, **common)


SPEC: Spec[Frame] = Spec(
    dialect=DIALECT,
    frame=Frame,
    tag="kind",
    build=build,
    conversation=lambda frame, scope: frame.chat,
    envelopes=(Envelope("frames", Frames),),
    contextual=True,
)
