"""Wonderful decode: session-event frames → canonical events. Pure (no I/O, no logging).

A body is one frame, an array of frames, the `{"sessionId", "events"}` envelope, or a
`ChatSession` (see `frames.py`). `decode` returns `Decoded`; raises `MalformedJSON` for a body
that is not JSON and `DecodeError` (`index`, `path`) for a known frame that breaks its schema.
Frames with an event name this dialect does not know are counted in `ignored`.

    native                                   canonical
    message (speaker user|customer)          message, sender user
    message (speaker agent / human_agent)    message, sender bot / agent
    message (speaker system)                 message, sender system
    connected / disconnected                 link up / down (reason, will_retry)
    reconnecting                             link retrying (attempt, max_attempts)
    reconnected                              link restored (missed)
    ended {reason, endedBy}                  ended (forwarded, error, or completed → user|agent)
    error {code, message, recoverable}       error
    ChatSession {status, messages}           status (in-progress → active) + its messages

Ids: conversation `"wonderful:<sessionId>"`, message `"<conversation>/<eventId>"`; the other
events carry no id, so theirs is `derived_id` of what makes them (deterministic when the frame
carries its time). Content: text, image, document → file, voice/audio → audio (voice true/false),
location, action. The event's `metadata` is the message's own, plus `locale` and, for an action
carrying one, `action_metadata` (these two are the platform's and win over same-named keys).
Times go through `gateway.codec.to_at`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from adapters.wonderful import frames
from adapters.wonderful.frames import (
    ConnectedFrame,
    DisconnectedFrame,
    EndedFrame,
    ErrorFrame,
    Frame,
    MessageFrame,
    ReconnectedFrame,
    ReconnectingFrame,
)
from adapters.wonderful.native import ChatSession, MessageData
from adapters.wonderful.native import Message as NativeMessage
from gateway.adapter import Decoded
from gateway.codec import conversation_id, derived_id, invalid, loads, to_at
from gateway.errors import DecodeError
from gateway.model import (
    Action,
    Audio,
    Content,
    Ended,
    EndReason,
    Error,
    Event,
    File,
    Image,
    Link,
    Location,
    Message,
    Party,
    SessionStatus,
    Status,
    Text,
)

DIALECT = "wonderful"

_SENDERS: dict[str, Party] = {
    "user": Party(role="user"),
    "customer": Party(role="user"),  # the backend's word for the SDK's `user`
    "agent": Party(role="bot"),  # the Wonderful AI agent
    "human_agent": Party(role="agent"),
    "system": Party(role="system"),
}
_STATUSES: dict[str, SessionStatus] = {
    "in-progress": "active",
    "completed": "completed",
    "failed": "failed",
}


class Fault(Exception):
    """A frame that typed fine but breaks a rule the types cannot say; `path` is in the frame."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason

    def error(self, index: int) -> DecodeError:
        """The decode error this fault is in frame `index`."""
        return DecodeError(
            f"frame {index}: {self.reason} at {self.path}", index=index, path=self.path
        )


def decode(body: bytes, conversation: str | None = None) -> Decoded:
    """Decode a webhook body; `conversation` is the native session id (`?conversation=`) for
    frames that name none."""
    try:
        # The hot path: one well-formed frame, decoded straight into its typed form.
        frame = frames.frame_decoder.decode(body)
    except msgspec.DecodeError:
        return _decode_raw(loads(body), conversation)
    try:
        return Decoded([to_event(frame, conversation)])
    except Fault as fault:
        raise fault.error(0) from None


def _decode_raw(body: Any, conversation: str | None) -> Decoded:
    """Every other body form, frame by frame, so that faults name their frame and path."""
    try:
        split = frames.split(body)
    except msgspec.ValidationError as exc:  # a ChatSession that breaks its schema
        raise invalid(exc, 0) from None
    if isinstance(split, str):
        raise DecodeError(f"frame 0: not a Wonderful session event at {split}", index=0, path=split)
    if split.session is not None:
        return Decoded([status_event(split.session), *message_events(split.session.messages)])
    conversation = split.session_id or conversation
    events: list[Event] = []
    ignored = 0
    for index, raw in enumerate(split.frames):
        if frames.is_unknown(raw):
            ignored += 1
            continue
        try:
            frame = frames.convert(raw)
        except msgspec.ValidationError as exc:
            raise invalid(exc, index) from None
        try:
            events.append(to_event(frame, conversation))
        except Fault as fault:
            raise fault.error(index) from None
    return Decoded(events, ignored)


def to_event(frame: Frame, conversation: str | None = None) -> Event:
    """One typed frame as its canonical event; `conversation` is the native session id for
    frames that carry none. Raises `Fault` for a frame the types let through but is wrong."""
    if type(frame) is MessageFrame:
        return message_event(frame.data, "$.data", frame.timestamp)
    if type(frame) is ConnectedFrame:
        conv = conversation_id(DIALECT, frame.data.session_id)
        at = _at(frame.data.connected_at, "$.data.connectedAt")
        return Link(id=derived_id(conv, "connected", at), state="up", **_common(conv, at))
    conv = _conversation(frame.session_id or conversation)
    at = _at(frame.timestamp, "$.timestamp")
    match frame:
        case DisconnectedFrame(data=d):
            return Link(
                id=derived_id(conv, "disconnected", at, d.reason, d.will_retry),
                state="down",
                reason=d.reason,
                will_retry=d.will_retry,
                **_common(conv, at),
            )
        case ReconnectingFrame(data=d):
            return Link(
                id=derived_id(conv, "reconnecting", at, d.attempt, d.max_attempts),
                state="retrying",
                attempt=d.attempt,
                max_attempts=d.max_attempts,
                **_common(conv, at),
            )
        case ReconnectedFrame(data=d):
            at = _at(d.reconnected_at, "$.data.reconnectedAt")
            return Link(
                id=derived_id(conv, "reconnected", at, d.missed_messages),
                state="restored",
                missed=d.missed_messages,
                **_common(conv, at),
            )
        case EndedFrame(data=d):
            # A session ends once: the id leaves the time out, so every report of it dedups.
            return Ended(
                id=derived_id(conv, "ended"),
                reason=_end_reason(d.reason, d.ended_by),
                by=d.ended_by,
                **_common(conv, at),
            )
        case ErrorFrame(data=d):
            return Error(
                id=derived_id(conv, "error", at, d.code, d.message),
                code=d.code,
                message=d.message,
                recoverable=d.recoverable,
                **_common(conv, at),
            )
    raise AssertionError(f"unhandled frame {frame!r}")  # pragma: no cover - exhaustive union


def message_event(message: NativeMessage, path: str = "$", frame_at: Any = None) -> Message:
    """A native `Message` as the canonical message. `path` is where it sits in its frame;
    `frame_at` is the frame's own `timestamp`, used when the message carries none."""
    conv = f"{DIALECT}:{message.session_id}"
    if message.timestamp is not None:
        at = _at(message.timestamp, path + ".timestamp")
    else:
        at = _at(frame_at, "$.timestamp")
    data = message.data
    # Text is most of the traffic: built here, it skips a call on the hot path.
    if data.type == "text" and data.text is not None:
        content: Content = Text(data.text)
    else:
        content = _content(data, path + ".data")
    metadata = {} if message.metadata is None else dict(message.metadata)
    if message.locale is not None:
        metadata["locale"] = message.locale
    if data.action is not None and data.action.metadata:
        metadata["action_metadata"] = data.action.metadata
    return Message(
        id=f"{conv}/{message.event_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_SENDERS[message.speaker],
        content=content,
        metadata=metadata,
    )


def status_event(session: ChatSession) -> Status:
    """The session's status as a `status` event, at `createdAt` (the session's own time).
    Raises `DecodeError` for a `createdAt` that is no time."""
    conv = conversation_id(DIALECT, session.session_id)
    status = _STATUSES[session.status]
    try:
        at = _at(session.created_at, "$.createdAt")
    except Fault as fault:
        raise fault.error(0) from None
    return Status(id=derived_id(conv, "status", status), status=status, **_common(conv, at))


def message_events(messages: Iterable[NativeMessage]) -> list[Event]:
    """A session's history messages as canonical events; `DecodeError` names a bad one."""
    try:
        return [message_event(m, f"$.messages[{i}]") for i, m in enumerate(messages)]
    except Fault as fault:
        raise fault.error(0) from None


def session_status(session: ChatSession) -> SessionStatus:
    """The canonical status of a native session."""
    return _STATUSES[session.status]


def _content(data: MessageData, path: str) -> Content:
    kind = data.type
    if kind == "text":
        if data.text is None:
            raise Fault(path + ".text", "a text message needs `text`")
        return Text(data.text)
    if kind == "location":
        if data.latitude is None or data.longitude is None:
            missing = "latitude" if data.latitude is None else "longitude"
            raise Fault(f"{path}.{missing}", f"a location needs `{missing}`")
        return Location(
            latitude=data.latitude,
            longitude=data.longitude,
            name=data.location_name,
            address=data.location_address,
        )
    if kind == "action":
        if data.action is None:
            raise Fault(path + ".action", "an action message needs `action`")
        return Action(action=data.action.type, destination=data.action.destination)
    url = data.media_url
    if not url:
        raise Fault(path + ".mediaUrl", f"`{kind}` messages need `mediaUrl`")
    if kind == "image":
        return Image(url=url, file_name=data.file_name, caption=data.text)
    if kind == "document":
        return File(url=url, file_name=data.file_name)
    return Audio(url=url, voice=kind == "voice")


def _end_reason(reason: str, by: str | None) -> EndReason:
    if reason != "completed":
        return "forwarded" if reason == "forwarded" else "error"
    return "user" if by == "user" else "agent" if by == "agent" else "completed"


def _conversation(native: str | None) -> str:
    if not native:
        raise Fault("$.sessionId", "no session id: give `sessionId` or `?conversation=`")
    return conversation_id(DIALECT, native)


def _common(conv: str, at: str) -> dict[str, Any]:
    return {"conversation_id": conv, "dialect": DIALECT, "at": at}


def _at(value: str | float | None, path: str) -> str:
    """`gateway.codec.to_at`; raises `Fault` at `path` for a value that is no time."""
    try:
        return to_at(value)
    except ValueError as exc:
        raise Fault(path, f"not a timestamp ({exc})") from None
