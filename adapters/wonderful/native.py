"""Wonderful's documented objects, as private msgspec Structs (camelCase on the wire).

These are the shapes the SDK document (`shared/seeds/000_cc53bfd60d4363ad.txt`) gives:

- `Message`: `{eventId, sessionId, speaker, locale?, data: MessageData, metadata?, timestamp?}`,
  where `speaker` is `user|agent|system|human_agent` (the backend says `customer` for `user`:
  both are accepted) and `MessageData` is `{type, text?, mediaUrl?, fileName?, action?,
  latitude?, longitude?, locationName?, locationAddress?}`.
- `ChatSession`: what start and recover return, `{sessionId, agentId?, status, connectionState?,
  createdAt?, participant?, messages}`.
- `SendResponse`: what sending a message returns, `{eventId, timestamp}`.

The session-event frames that carry these over the WebSocket are our own representation and
live apart in `frames.py`. The REST error body (`{"error": {"code", "message"}}`) is our own too:
the SDK only documents the codes.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

Speaker: TypeAlias = Literal["user", "customer", "agent", "system", "human_agent"]
DataType: TypeAlias = Literal["text", "image", "document", "voice", "audio", "location", "action"]
IdentityType: TypeAlias = Literal["phone", "email", "name"]
SessionStatus: TypeAlias = Literal["in-progress", "completed", "failed"]
Timestamp: TypeAlias = str | float | None
"""ISO 8601, epoch seconds or milliseconds, or a string of either (see `gateway.codec.to_at`)."""


class MessageAction(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    type: Literal["forward", "end", "hangup"]
    destination: str | None = None
    metadata: dict[str, Any] | None = None


class MessageData(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    type: DataType
    text: str | None = None
    media_url: str | None = None
    file_name: str | None = None
    action: MessageAction | None = None
    latitude: float | None = None
    longitude: float | None = None
    location_name: str | None = None
    location_address: str | None = None


class Message(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    event_id: str
    session_id: str
    speaker: Speaker
    data: MessageData
    locale: str | None = None
    metadata: dict[str, Any] | None = None
    timestamp: Timestamp = None


class Participant(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    """`fromType` defaults to `name`: the seed's answer for "participant data missing"."""

    from_: str = msgspec.field(name="from")
    from_type: IdentityType = "name"
    to: str | None = None
    to_type: IdentityType | None = None


class ChatSession(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    session_id: str
    status: SessionStatus
    messages: list[Message] = []
    agent_id: str | None = None
    connection_state: str | None = None
    created_at: Timestamp = None
    participant: Participant | None = None


class SendResponse(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    event_id: str
    timestamp: Timestamp = None


class ErrorDetail(msgspec.Struct, frozen=True, gc=False):
    code: str
    message: str = ""


class ErrorBody(msgspec.Struct, frozen=True, gc=False):
    """Our own REST error body: `{"error": {"code": "SESSION_NOT_FOUND", "message": "..."}}`."""

    error: ErrorDetail
