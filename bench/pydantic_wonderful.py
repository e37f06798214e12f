"""The `wonderful` dialect's frame → canonical mapping written with pydantic v2 (bench only).

The reference for the codec scenario: the same frames, the same canonical JSON out (checked
against the gateway's output frame by frame), the way a team using pydantic would write it:
native models with camelCase aliases and a discriminated union, canonical models, and
`model_dump_json`. Ids and timestamps use the gateway's own helpers (`derived_id`, `to_at`), so
what differs is the modelling library, not the arithmetic. Single frames only (the webhook
hot path); the envelope, arrays and `ChatSession` bodies are left out of its corpus.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from gateway.codec import derived_id, to_at
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

DIALECT = "wonderful"
Timestamp = str | float | None


class _Native(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class MessageAction(_Native):
    type: Literal["forward", "end", "hangup"]
    destination: str | None = None
    metadata: dict[str, Any] | None = None


class MessageData(_Native):
    type: Literal["text", "image", "document", "voice", "audio", "location", "action"]
    text: str | None = None
    media_url: str | None = None
    file_name: str | None = None
    action: MessageAction | None = None
    latitude: float | None = None
    longitude: float | None = None
    location_name: str | None = None
    location_address: str | None = None


class NativeMessage(_Native):
    event_id: str
    session_id: str
    speaker: Literal["user", "customer", "agent", "system", "human_agent"]
    data: MessageData
    locale: str | None = None
    metadata: dict[str, Any] | None = None
    timestamp: Timestamp = None


class Connected(_Native):
    session_id: str
    connected_at: Timestamp


class Disconnected(_Native):
    reason: Literal["network", "timeout", "server", "manual"]
    will_retry: bool


class Reconnecting(_Native):
    attempt: int
    max_attempts: int


class Reconnected(_Native):
    reconnected_at: Timestamp
    missed_messages: int


class EndedData(_Native):
    reason: Literal["completed", "forwarded", "error"]
    ended_by: Literal["user", "agent", "system"] | None = None


class ErrorData(_Native):
    code: str
    message: str
    recoverable: bool = False


class _Frame(_Native):
    timestamp: Timestamp = None
    session_id: str | None = None


class MessageFrame(_Frame):
    type: Literal["message"]
    data: NativeMessage


class ConnectedFrame(_Frame):
    type: Literal["connected"]
    data: Connected


class DisconnectedFrame(_Frame):
    type: Literal["disconnected"]
    data: Disconnected


class ReconnectingFrame(_Frame):
    type: Literal["reconnecting"]
    data: Reconnecting


class ReconnectedFrame(_Frame):
    type: Literal["reconnected"]
    data: Reconnected


class EndedFrame(_Frame):
    type: Literal["ended"]
    data: EndedData


class ErrorFrame(_Frame):
    type: Literal["error"]
    data: ErrorData


class TranscriptData(BaseModel):  # the chat WebSocket's: snake_case
    id: str
    communication_id: str
    speaker: Literal["user", "customer", "agent", "system", "human_agent"]
    text: str
    created_at: Timestamp = None
    start_time: Timestamp = None
    end_time: Timestamp = None
    tool_details: dict[str, Any] | None = None
    is_eot: bool | None = None


class StartFrame(_Frame):
    type: Literal["start"]
    communication_id: str
    event: str | None = None


class TranscriptFrame(_Frame):
    type: Literal["transcript"]
    data: TranscriptData


class CommunicationEndedFrame(_Frame):
    type: Literal["communication_ended"]


Frame = Annotated[
    MessageFrame
    | ConnectedFrame
    | DisconnectedFrame
    | ReconnectingFrame
    | ReconnectedFrame
    | EndedFrame
    | ErrorFrame
    | StartFrame
    | TranscriptFrame
    | CommunicationEndedFrame,
    Field(discriminator="type"),
]
frame_adapter: TypeAdapter[Any] = TypeAdapter(Frame)


# -- canonical ---------------------------------------------------------------------------------


class Party(BaseModel):
    role: str
    id: str | None = None
    name: str | None = None


class Content(BaseModel):
    kind: str
    text: str | None = None
    url: str | None = None
    file_name: str | None = None
    caption: str | None = None
    voice: bool | None = None
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    action: str | None = None
    destination: str | None = None


class CanonicalEvent(BaseModel):
    type: str
    id: str
    conversation_id: str
    dialect: str = DIALECT
    at: str
    metadata: dict[str, Any] | None = None
    # message
    sender: Party | None = None
    content: Content | None = None
    # link
    state: str | None = None
    reason: str | None = None
    will_retry: bool | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    missed: int | None = None
    # ended
    by: str | None = None
    # status
    status: str | None = None
    # error
    code: str | None = None
    message: str | None = None
    recoverable: bool | None = None


_SENDERS = {
    "user": "user",
    "customer": "user",
    "agent": "bot",
    "human_agent": "agent",
    "system": "system",
}


def _content(data: MessageData) -> Content:
    kind = data.type
    if kind == "text":
        if data.text is None:
            raise ValueError("a text message needs `text`")
        return Content(kind="text", text=data.text)
    if kind == "location":
        if data.latitude is None or data.longitude is None:
            raise ValueError("a location needs latitude and longitude")
        return Content(
            kind="location",
            latitude=data.latitude,
            longitude=data.longitude,
            name=data.location_name,
            address=data.location_address,
        )
    if kind == "action":
        if data.action is None:
            raise ValueError("an action message needs `action`")
        return Content(kind="action", action=data.action.type, destination=data.action.destination)
    if not data.media_url:
        raise ValueError(f"`{kind}` messages need `mediaUrl`")
    if kind == "image":
        return Content(
            kind="image", url=data.media_url, file_name=data.file_name, caption=data.text
        )
    if kind == "document":
        return Content(kind="file", url=data.media_url, file_name=data.file_name)
    return Content(kind="audio", url=data.media_url, voice=True if kind == "voice" else None)


def to_event(frame: Any, conversation: str | None = None) -> CanonicalEvent:
    if isinstance(frame, TranscriptFrame):
        line = frame.data
        conv = f"{DIALECT}:{line.communication_id}"
        return CanonicalEvent(
            type="message", id=f"{conv}/{line.id}", conversation_id=conv,
            at=to_at(line.created_at),
            metadata=None if line.tool_details is None else {"tool_details": line.tool_details},
            sender=Party(role=_SENDERS[line.speaker]), content=Content(kind="text", text=line.text),
        )  # fmt: skip
    if isinstance(frame, StartFrame):
        conv = f"{DIALECT}:{frame.communication_id}"
        return CanonicalEvent(
            type="status", id=derived_id(conv, "status", "active"), conversation_id=conv,
            at=to_at(frame.timestamp), status="active",
        )  # fmt: skip
    if isinstance(frame, MessageFrame):
        m = frame.data
        conv = f"{DIALECT}:{m.session_id}"
        metadata = dict(m.metadata or {})
        if m.locale is not None:
            metadata["locale"] = m.locale
        if m.data.action is not None and m.data.action.metadata:
            metadata["action_metadata"] = m.data.action.metadata
        return CanonicalEvent(
            type="message",
            id=f"{conv}/{m.event_id}",
            conversation_id=conv,
            at=to_at(m.timestamp if m.timestamp is not None else frame.timestamp),
            metadata=metadata or None,
            sender=Party(role=_SENDERS[m.speaker]),
            content=_content(m.data),
        )
    if isinstance(frame, ConnectedFrame):
        conv = f"{DIALECT}:{frame.data.session_id}"
        at = to_at(frame.data.connected_at)
        return CanonicalEvent(
            type="link", id=derived_id(conv, "connected", at), conversation_id=conv, at=at,
            state="up",
        )  # fmt: skip
    native = frame.session_id or conversation
    if not native:
        raise ValueError("no session id")
    conv = f"{DIALECT}:{native}"
    at = to_at(frame.timestamp)
    if isinstance(frame, CommunicationEndedFrame):
        return CanonicalEvent(
            type="ended", id=derived_id(conv, "ended"), conversation_id=conv, at=at,
            reason="completed",
        )  # fmt: skip
    d = frame.data
    if isinstance(frame, DisconnectedFrame):
        return CanonicalEvent(
            type="link", id=derived_id(conv, "disconnected", at, d.reason, d.will_retry),
            conversation_id=conv, at=at, state="down", reason=d.reason, will_retry=d.will_retry,
        )  # fmt: skip
    if isinstance(frame, ReconnectingFrame):
        return CanonicalEvent(
            type="link", id=derived_id(conv, "reconnecting", at, d.attempt, d.max_attempts),
            conversation_id=conv, at=at, state="retrying", attempt=d.attempt,
            max_attempts=d.max_attempts,
        )  # fmt: skip
    if isinstance(frame, ReconnectedFrame):
        at = to_at(d.reconnected_at)
        return CanonicalEvent(
            type="link", id=derived_id(conv, "reconnected", at, d.missed_messages),
            conversation_id=conv, at=at, state="restored", missed=d.missed_messages,
        )  # fmt: skip
    if isinstance(frame, EndedFrame):
        if d.reason != "completed":
            reason = "forwarded" if d.reason == "forwarded" else "error"
        else:
            reason = {"user": "user", "agent": "agent"}.get(d.ended_by or "", "completed")
        return CanonicalEvent(
            type="ended", id=derived_id(conv, "ended"), conversation_id=conv, at=at,
            reason=reason, by=d.ended_by,
        )  # fmt: skip
    return CanonicalEvent(
        type="error", id=derived_id(conv, "error", at, d.code, d.message), conversation_id=conv,
        at=at, code=d.code, message=d.message, recoverable=d.recoverable or None,
    )  # fmt: skip


def decode_encode(body: bytes, conversation: str | None = None) -> bytes:
    """One frame in, its canonical JSON out."""
    event = to_event(frame_adapter.validate_json(body), conversation)
    return event.model_dump_json(exclude_none=True).encode()
