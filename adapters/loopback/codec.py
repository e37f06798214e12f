"""Loopback codec: native frames ⇄ canonical events. Pure."""

from __future__ import annotations

from typing import Any

import msgspec

from adapters.loopback.native import (
    KINDS,
    EndedFrame,
    Frame,
    JoinedFrame,
    MessageFrame,
    TypingFrame,
)
from gateway.adapter import Decoded
from gateway.codec import conversation_id, convert_each, derived_id, event_id, loads, to_at
from gateway.errors import DecodeError
from gateway.model import Ended, EndReason, Event, Message, ParticipantJoined, Party, Text, Typing

DIALECT = "loopback"


def _frames_of(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and "frames" in body and "kind" not in body:
        frames = body["frames"]
        if not isinstance(frames, list):
            raise DecodeError("`frames` must be an array", index=0, path="$.frames")
        return frames
    return [body]


def _convert(frame: Any, index: int) -> Event | None:
    kind = frame.get("kind") if isinstance(frame, dict) else None
    if isinstance(kind, str) and kind not in KINDS:
        return None  # an event name this dialect does not know: ignored, counted
    return to_event(msgspec.convert(frame, Frame))


def to_event(frame: Frame) -> Event:
    """One native frame as its canonical event."""
    conv = conversation_id(DIALECT, frame.chat)
    at = to_at(frame.ts)
    common: dict[str, Any] = {"conversation_id": conv, "dialect": DIALECT, "at": at}
    match frame:
        case MessageFrame():
            party = Party(role=frame.sender.role, id=frame.sender.id, name=frame.sender.name)
            return Message(
                id=event_id(conv, frame.id), sender=party, content=Text(frame.text), **common
            )
        case TypingFrame():
            party = Party(role=frame.sender.role, id=frame.sender.id, name=frame.sender.name)
            eid = derived_id(conv, "typing", at, frame.sender.id, frame.active)
            return Typing(id=eid, sender=party, active=frame.active, **common)
        case JoinedFrame():
            party = Party(role=frame.sender.role, id=frame.sender.id, name=frame.sender.name)
            return ParticipantJoined(
                id=derived_id(conv, "joined", at, frame.sender.id), participant=party, **common
            )
        case EndedFrame():
            reason: EndReason = (
                "user" if frame.by == "user" else "agent" if frame.by == "agent" else "completed"
            )
            return Ended(id=derived_id(conv, "ended", at), reason=reason, by=frame.by, **common)


def decode(body: bytes, conversation: str | None = None) -> Decoded:
    """Decode a loopback body (one frame, an array, or `{"frames": [...]}`)."""
    return decode_frames(_frames_of(loads(body)))


def decode_frames(raw: list[Any]) -> Decoded:
    """Decode frames already parsed from JSON (as the connector's poll returns them)."""
    events, ignored = convert_each(raw, _convert)
    return Decoded(events, ignored)  # type: ignore[arg-type]
