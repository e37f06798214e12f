"""Wonderful's native objects and frames, as private msgspec Structs.

Two families of frames decode, each one tagged by `type`:

- **The platform's chat WebSocket** (`wss://<host>/api/v1/agents/{agentId}/chat?commType=chat`),
  as the public integration notes "Connecting to Wonderful Agent Chat via WebSocket" (§4,
  quoted in shared/DIALECTS.md) give it; snake_case:

      {"type": "start", "event": "start", "communication_id": "<uuid>"}
      {"type": "transcript", "data": {"id", "communication_id", "speaker", "text", "created_at",
                                      "start_time", "end_time", "tool_details", "is_eot"}}
      {"type": "turn_ended"}
      {"type": "communication_ended"}

  and the client's `{"type": "init", "metadata": {...}}` and `{"type": "message", "text"}`.
- **The SDK's `SessionEvent` objects** (the seed, `shared/seeds/000_cc53bfd60d4363ad.txt`), as a
  backend relays them; camelCase: `{"type": "message"|"connected"|"disconnected"|
  "reconnecting"|"reconnected"|"ended"|"error", "data": {...}}`.

`speaker` is `user|customer|agent|system|human_agent` in both: the SDK says `user` where the
backend says `customer`, and either is accepted everywhere.

Two optional top-level fields of every frame are OURS: `timestamp` (when the frame was emitted:
most frames carry no time of their own) and `sessionId` (most carry no session either; a
message's own session wins). The REST objects (`ChatSession`, `SendResponse`) are the seed's;
the REST error body (`{"error": {"code", "message"}}`) is ours: the seed documents only the codes.

The decoded Structs are `gc=False`: what JSON decodes to holds no reference cycles.

A webhook body is one frame, an array of frames, the envelope `{"sessionId"?, "events": [...]}`
(ours, `EventsBody`), or a `ChatSession` as recover returns it (`SessionBody`).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any, Literal, TypeAlias

import msgspec

from gateway.decoding import Refused
from gateway.model import (
    Action,
    Audio,
    Content,
    EndReason,
    File,
    Image,
    Location,
    Party,
    Text,
)
from gateway.model import SessionStatus as CanonicalStatus

DIALECT = "wonderful"

Speaker: TypeAlias = Literal["user", "customer", "agent", "system", "human_agent"]
DataType: TypeAlias = Literal["text", "image", "document", "voice", "audio", "location", "action"]
IdentityType: TypeAlias = Literal["phone", "email", "name"]
SessionStatus: TypeAlias = Literal["in-progress", "completed", "failed"]
Timestamp: TypeAlias = str | float | None
"""ISO 8601, epoch seconds or milliseconds, or a string of either (see `gateway.codec.to_at`)."""

# ---------------------------------------------------------------------------------------------
# The seed's objects


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
    """What recover returns: the session, its status and its messages so far."""

    session_id: str
    status: SessionStatus
    messages: list[Message] = []
    agent_id: str | None = None
    connection_state: str | None = None
    created_at: Timestamp = None
    participant: Participant | None = None


class SendResponse(msgspec.Struct, frozen=True, rename="camel"):
    event_id: str
    timestamp: Timestamp = None


class ErrorDetail(msgspec.Struct, frozen=True):
    code: str
    message: str = ""


class ErrorBody(msgspec.Struct, frozen=True):
    """Our own REST error body: `{"error": {"code": "SESSION_NOT_FOUND", "message": "..."}}`."""

    error: ErrorDetail


# ---------------------------------------------------------------------------------------------
# The `data` of the SDK's session events


class Connected(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    session_id: str
    connected_at: Timestamp


class Disconnected(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    reason: Literal["network", "timeout", "server", "manual"]
    will_retry: bool


class Reconnecting(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    attempt: int
    max_attempts: int


class Reconnected(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    reconnected_at: Timestamp
    missed_messages: int


class EndedData(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    reason: Literal["completed", "forwarded", "error"]
    ended_by: Literal["user", "agent", "system"] | None = None


class ErrorData(msgspec.Struct, frozen=True, gc=False):
    code: str
    message: str
    recoverable: bool = False


# ---------------------------------------------------------------------------------------------
# The chat WebSocket's `transcript` line


class TranscriptData(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One line of the conversation. `created_at`, `start_time` and `end_time` are epoch
    milliseconds in the notes (any form `to_at` reads is taken); `tool_details` is null or
    `{function_name, description, output, params}` when the agent called a tool; `is_eot`
    marks the end of a turn."""

    id: str
    communication_id: str
    speaker: Speaker
    text: str
    created_at: Timestamp = None
    start_time: Timestamp = None
    end_time: Timestamp = None
    tool_details: dict[str, Any] | None = None
    is_eot: bool | None = None


# ---------------------------------------------------------------------------------------------
# Frames (tag `type`)


class _Frame(
    msgspec.Struct, tag_field="type", frozen=True, kw_only=True, omit_defaults=True, gc=False
):
    timestamp: Timestamp = None
    session_id: str | None = msgspec.field(name="sessionId", default=None)


class StartFrame(_Frame, tag="start", frozen=True, kw_only=True):
    communication_id: str
    event: str | None = None


class TranscriptFrame(_Frame, tag="transcript", frozen=True, kw_only=True):
    data: TranscriptData


class TurnEndedFrame(_Frame, tag="turn_ended", frozen=True, kw_only=True):
    pass


class CommunicationEndedFrame(_Frame, tag="communication_ended", frozen=True, kw_only=True):
    pass


class MessageFrame(_Frame, tag="message", frozen=True, kw_only=True):
    data: Message


class ConnectedFrame(_Frame, tag="connected", frozen=True, kw_only=True):
    data: Connected


class DisconnectedFrame(_Frame, tag="disconnected", frozen=True, kw_only=True):
    data: Disconnected


class ReconnectingFrame(_Frame, tag="reconnecting", frozen=True, kw_only=True):
    data: Reconnecting


class ReconnectedFrame(_Frame, tag="reconnected", frozen=True, kw_only=True):
    data: Reconnected


class EndedFrame(_Frame, tag="ended", frozen=True, kw_only=True):
    data: EndedData


class ErrorFrame(_Frame, tag="error", frozen=True, kw_only=True):
    data: ErrorData


class SessionFrame(_Frame, tag="session", frozen=True, kw_only=True):
    """Ours, internal: what a `ChatSession` body (`SessionBody`) stands for as one frame."""


OWN_SESSION: dict[type[Any], Callable[[Any], str]] = {
    StartFrame: attrgetter("communication_id"),
    TranscriptFrame: attrgetter("data.communication_id"),
    MessageFrame: attrgetter("data.session_id"),
    ConnectedFrame: attrgetter("data.session_id"),
}
"""Where a frame's own event names its session (a line's, a message's): it wins over the
frame's `sessionId`. The other frames' events name none."""


Frame: TypeAlias = (
    StartFrame
    | TranscriptFrame
    | TurnEndedFrame
    | CommunicationEndedFrame
    | MessageFrame
    | ConnectedFrame
    | DisconnectedFrame
    | ReconnectingFrame
    | ReconnectedFrame
    | EndedFrame
    | ErrorFrame
    | SessionFrame
)


# ---------------------------------------------------------------------------------------------
# Webhook envelopes


class EventsBody(msgspec.Struct, frozen=True, gc=False):
    """Ours: a batch of frames, and the session of those that name none."""

    events: list[msgspec.Raw]
    session_id: str | None = msgspec.field(name="sessionId", default=None)


class SessionBody(ChatSession, frozen=True):
    """A `ChatSession` posted whole: one frame, its status and messages (`SessionFrame`)."""

    @property
    def frames(self) -> list[msgspec.Raw]:
        return [msgspec.Raw(b'{"type":"session"}')]


# ---------------------------------------------------------------------------------------------
# What the client sends on the chat WebSocket


class InitFrame(msgspec.Struct, tag_field="type", tag="init", frozen=True):
    """Session metadata, sent once after the socket is open."""

    metadata: dict[str, Any]


class UserMessageFrame(msgspec.Struct, tag_field="type", tag="message", frozen=True):
    """A user text message."""

    text: str


# --- what the wire's speakers, statuses, contents and end reasons mean ---------------------

SENDERS: dict[str, Party] = {
    "user": Party(role="user"),
    "customer": Party(role="user"),  # the backend's word for the SDK's `user`
    "agent": Party(role="bot"),  # the Wonderful AI agent
    "human_agent": Party(role="agent"),
    "system": Party(role="system"),
}
STATUSES: dict[str, CanonicalStatus] = {
    "in-progress": "active",
    "completed": "completed",
    "failed": "failed",
}


def content_of(data: MessageData, path: str) -> Content:
    """A message's content (`data`); `path` is the message's, for errors."""
    kind = data.type
    if kind == "text":
        if data.text is None:
            raise Refused("a text message needs `text`", path + ".data.text")
        return Text(data.text)
    if kind == "location":
        if data.latitude is None or data.longitude is None:
            missing = "latitude" if data.latitude is None else "longitude"
            raise Refused(f"a location needs `{missing}`", f"{path}.data.{missing}")
        return Location(
            latitude=data.latitude,
            longitude=data.longitude,
            name=data.location_name,
            address=data.location_address,
        )
    if kind == "action":
        if data.action is None:
            raise Refused("an action message needs `action`", path + ".data.action")
        return Action(action=data.action.type, destination=data.action.destination)
    url = data.media_url
    if not url:
        raise Refused(f"`{kind}` messages need `mediaUrl`", path + ".data.mediaUrl")
    if kind == "image":
        return Image(url=url, file_name=data.file_name, caption=data.text)
    if kind == "document":
        return File(url=url, file_name=data.file_name)
    return Audio(url=url, voice=kind == "voice")


def end_reason(reason: str, by: str | None) -> EndReason:
    """The canonical reason of the SDK's `ended` (`completed` by the user or agent is theirs)."""
    if reason != "completed":
        return "forwarded" if reason == "forwarded" else "error"
    return "user" if by == "user" else "agent" if by == "agent" else "completed"
