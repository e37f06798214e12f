"""The session-event frames: OUR OWN representation of Wonderful's private WebSocket wire.

The SDK documents its `SessionEvent` objects but not the bytes under them, so the gateway
defines the frame as exactly that object, one JSON text frame per event:

    {"type": "message", "data": <Message>, "timestamp"?: ..., "sessionId"?: "..."}
    {"type": "connected", "data": {"sessionId": "s1", "connectedAt": "2024-02-02T13:00:00.000Z"}}
    {"type": "disconnected", "data": {"reason": "network|timeout|server|manual", "willRetry": true}}
    {"type": "reconnecting", "data": {"attempt": 1, "maxAttempts": 5}}
    {"type": "reconnected", "data": {"reconnectedAt": "...", "missedMessages": 2}}
    {"type": "ended", "data": {"reason": "completed|forwarded|error", "endedBy"?: "user|agent"}}
    {"type": "error", "data": {"code": "PII_MASKING_ENABLED", "message": "…", "recoverable": true}}

Two optional top-level fields are ours beyond the seed: `timestamp` (when the platform emitted
the event: most event types carry no time of their own) and `sessionId` (most carry no session
either; a message's own `data.sessionId` wins). A webhook body is one frame, an array of frames,
the envelope `{"sessionId"?: "...", "events": [...]}` (ours), or a `ChatSession` as recover
returns it (the seed's). Everything that depends on this guess lives in this module, so that it
can follow the real wire when it is known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import msgspec

from adapters.wonderful.native import ChatSession, Message, Timestamp

EVENTS_KEY = "events"


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


class _Frame(
    msgspec.Struct, tag_field="type", frozen=True, gc=False, kw_only=True, omit_defaults=True
):
    timestamp: Timestamp = None
    session_id: str | None = msgspec.field(name="sessionId", default=None)


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


Frame: TypeAlias = (
    MessageFrame
    | ConnectedFrame
    | DisconnectedFrame
    | ReconnectingFrame
    | ReconnectedFrame
    | EndedFrame
    | ErrorFrame
)
FRAME_TYPES: tuple[type[_Frame], ...] = Frame.__args__
KNOWN_TYPES: frozenset[str] = frozenset(str(t.__struct_config__.tag) for t in FRAME_TYPES)


# ---------------------------------------------------------------------------------------------
# Typed readers of whole bodies (the fast path of `decode`). `body_decoder` reads a lone frame
# straight into its typed form, or an array into `RawFrame`s, in one pass; `object_decoder` tells
# the other object bodies apart. A `RawFrame` leaves its `data` as a `msgspec.Raw` span (cheap: a
# recorded slice, validated as JSON) for the decoder of `DATA_DECODERS` its `type` names, so a
# frame with an unknown event name is skipped without a failed typed decode (an exception is
# dear). They only say what a body is; whenever one of them raises, or a body is anything
# unusual, `decode` takes the exact path (`split` below).


class RawFrame(msgspec.Struct, frozen=True, gc=False):
    """A frame of an array or envelope, as read in the body's one pass: `type` as it is (any
    JSON value, `None` when absent), `data` raw (`UNSET` when absent), and the frame's own
    `timestamp` and `sessionId` typed as `_Frame` types them."""

    type: Any = None
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    timestamp: Timestamp = None
    session_id: str | None = msgspec.field(name="sessionId", default=None)


class ObjectBody(msgspec.Struct, frozen=True, gc=False):
    """The top-level keys of an object body that is not one well-formed frame, enough to tell
    its form as `split` does: `type` (a frame, known or not), `events` (the envelope, its frames
    read as `RawFrame`s), `sessionId` and `status` (a `ChatSession`). A key that is absent is
    `UNSET`."""

    type: Any = msgspec.UNSET
    events: list[RawFrame] | msgspec.UnsetType = msgspec.UNSET
    session_id: Any = msgspec.field(name="sessionId", default=msgspec.UNSET)
    status: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


body_decoder: msgspec.json.Decoder[Frame | list[RawFrame]] = msgspec.json.Decoder(
    Frame | list[RawFrame]
)
object_decoder: msgspec.json.Decoder[ObjectBody] = msgspec.json.Decoder(ObjectBody)
# A lone frame as a `RawFrame`: a known frame that reached `object_decoder` because it opens
# with `sessionId`, as an envelope does (see `decode.decode`).
raw_frame_decoder: msgspec.json.Decoder[RawFrame] = msgspec.json.Decoder(RawFrame)
session_decoder: msgspec.json.Decoder[ChatSession] = msgspec.json.Decoder(ChatSession)


def _data_decoder(frame_type: type[_Frame]) -> Callable[[msgspec.Raw], Any]:
    """The decoder of a frame type's `data` field."""
    (data,) = [f.type for f in msgspec.structs.fields(frame_type) if f.name == "data"]
    return msgspec.json.Decoder(data).decode


DATA_DECODERS: dict[str, Callable[[msgspec.Raw], Any]] = {
    str(t.__struct_config__.tag): _data_decoder(t) for t in FRAME_TYPES
}
"""By event name: the decoder of a `RawFrame`'s `data`, typed as that frame's `data` field."""


def is_unknown_kind(kind: Any) -> bool:
    """Whether a frame's `type` value names an event this dialect does not know."""
    return isinstance(kind, str) and kind not in KNOWN_TYPES


class Body(msgspec.Struct, frozen=True, gc=False):
    """A webhook body split into frames: the raw frames, the session their envelope names (if
    any), and a ChatSession when the body was one."""

    frames: list[Any]
    session_id: str | None = None
    session: ChatSession | None = None


def split(body: Any) -> Body | str:
    """Which body form `body` (parsed JSON) is. Returns the JSON path of the fault when it is
    none of them. A `ChatSession` is recognised by `sessionId` + `status` and no `type`."""
    if isinstance(body, list):
        return Body(body)
    if not isinstance(body, dict):
        return "$"
    if "type" in body:
        return Body([body])
    if EVENTS_KEY in body:
        events, sid = body[EVENTS_KEY], body.get("sessionId")
        if not isinstance(events, list):
            return f"$.{EVENTS_KEY}"
        if sid is not None and not isinstance(sid, str):
            return "$.sessionId"
        return Body(events, sid)
    if "sessionId" in body and "status" in body:
        return Body([], session=msgspec.convert(body, ChatSession))
    return "$.type"


def is_unknown(frame: Any) -> bool:
    """A frame whose event name this dialect does not know (ignored and counted, not fatal)."""
    return isinstance(frame, dict) and is_unknown_kind(frame.get("type"))


def convert(frame: Any) -> Frame:
    """One raw frame (parsed JSON) as its typed form; raises `msgspec.ValidationError`."""
    converted: Frame = msgspec.convert(frame, Frame)
    return converted
