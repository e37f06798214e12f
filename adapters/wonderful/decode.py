"""Wonderful decode: native frames → canonical events. Pure (no I/O, no logging).

A body is one frame, an array of frames, the envelope `{"sessionId"?, "events": [...]}` (ours),
or a `ChatSession` as recover returns it (the seed's). `decode` returns `Decoded`; it raises
`MalformedJSON` for a body that is not JSON and `DecodeError` (`index`, `path`) for a known
frame that breaks its schema. Frames with an event name this dialect does not know are counted
in `ignored`. The frames are `native.py`'s:

    native                                      canonical
    start {communication_id}                    status active (the session is up)
    transcript {id, speaker, text, created_at}  message (id = the line's id)
    turn_ended                                  nothing (not an error either)
    communication_ended                         ended (completed)
    message (SDK `Message`)                     message (id = its eventId)
    connected / disconnected                    link up / down (reason, will_retry)
    reconnecting / reconnected                  link retrying (attempt, max) / restored (missed)
    ended {reason, endedBy}                     ended (forwarded, error, or completed → user|agent)
    error {code, message, recoverable}          error
    ChatSession {status, messages}              status (in-progress → active) + its messages

Speakers: `user` / `customer` → user, `agent` (the AI agent) → bot, `human_agent` → agent,
`system` → system. Ids: conversation `"wonderful:<session>"` (the communication id is the
session id), message `"<conversation>/<line id or eventId>"`; other events carry no id, so
theirs is `derived_id` of what makes them. A session is up once and ends once: `status` and
`ended` ids leave the time out, so every report of either deduplicates (the raw `start` and a
recovered `ChatSession` in progress give the same `status`). Times go through `to_at`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from adapters.wonderful.native import (
    KNOWN_TYPES,
    ChatSession,
    CommunicationEndedFrame,
    ConnectedFrame,
    DisconnectedFrame,
    EndedFrame,
    ErrorFrame,
    Frame,
    MessageData,
    MessageFrame,
    ReconnectedFrame,
    ReconnectingFrame,
    StartFrame,
    TranscriptData,
    TranscriptFrame,
    TurnEndedFrame,
)
from adapters.wonderful.native import Message as NativeMessage
from gateway.adapter import Decoded
from gateway.codec import derived_id, invalid, loads, to_at
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
EVENTS_KEY = "events"

SENDERS: dict[str, Party] = {
    "user": Party(role="user"),
    "customer": Party(role="user"),  # the backend's word for the SDK's `user`
    "agent": Party(role="bot"),  # the Wonderful AI agent
    "human_agent": Party(role="agent"),
    "system": Party(role="system"),
}
STATUSES: dict[str, SessionStatus] = {
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
    frames that name none. Raises `MalformedJSON` (not JSON, bad UTF-8, nested too deeply) or
    `DecodeError` naming the frame and path; a batch decodes all or nothing."""
    parsed = loads(body)
    if _is_session(parsed):
        return session_events(parsed)
    frames, envelope_session = split(parsed)
    session = envelope_session or conversation
    events: list[Event] = []
    ignored = 0
    for index, raw in enumerate(frames):
        if isinstance(raw, dict) and _is_unknown(raw.get("type")):
            ignored += 1
            continue
        try:
            frame = msgspec.convert(raw, Frame)
        except msgspec.ValidationError as exc:
            raise invalid(exc, index) from None
        try:
            events += to_events(frame, session)
        except Fault as fault:
            raise fault.error(index) from None
    return Decoded(events, ignored)


def split(body: Any) -> tuple[list[Any], str | None]:
    """The frames of a body that is one frame, an array or the envelope, and the session the
    envelope names. Raises `DecodeError` (frame 0) for a body of no known form."""
    if isinstance(body, list):
        return body, None
    if not isinstance(body, dict):
        raise _not_a_frame("$")
    if "type" in body:
        return [body], None
    if EVENTS_KEY not in body:
        raise _not_a_frame("$.type")
    events, session = body[EVENTS_KEY], body.get("sessionId")
    if not isinstance(events, list):
        raise _not_a_frame(f"$.{EVENTS_KEY}")
    if session is not None and not isinstance(session, str):
        raise _not_a_frame("$.sessionId")
    return events, session


def _is_session(body: Any) -> bool:
    """Whether a body is a `ChatSession`: `sessionId` and `status`, and neither a frame's
    `type` nor the envelope's `events`."""
    return (
        isinstance(body, dict)
        and "sessionId" in body
        and "status" in body
        and "type" not in body
        and EVENTS_KEY not in body
    )


def _not_a_frame(path: str) -> DecodeError:
    return DecodeError(f"frame 0: not a Wonderful frame at {path}", index=0, path=path)


def _is_unknown(kind: Any) -> bool:
    """Whether a frame's `type` names an event this dialect does not know (ignored, counted)."""
    return isinstance(kind, str) and kind not in KNOWN_TYPES


def session_events(body: Any) -> Decoded:
    """A `ChatSession` (parsed JSON) as its status and messages; `DecodeError` names a fault."""
    try:
        session = msgspec.convert(body, ChatSession)
    except msgspec.ValidationError as exc:
        raise invalid(exc, 0) from None
    return Decoded([status_event(session), *message_events(session.messages)])


def to_events(frame: Frame, session: str | None = None) -> list[Event]:
    """One typed frame as its canonical events (none for `turn_ended`); `session` is the
    native session id for frames that name none. Raises `Fault` for a frame the types let
    through but that breaks a rule (no session, a time that is no time, missing content)."""
    return _BUILDERS[type(frame)](frame, frame.session_id or session)


# ---------------------------------------------------------------------------------------------
# One builder per frame type: `(frame, native session id or None) -> events`.


def _conversation(session: str | None) -> str:
    if not session:
        raise Fault("$.sessionId", "no session id: give `sessionId` or `?conversation=`")
    return f"{DIALECT}:{session}"


def _at(value: Any, path: str) -> str:
    try:
        return to_at(value)
    except ValueError as exc:
        raise Fault(path, f"not a timestamp ({exc})") from None


def _start(frame: StartFrame, session: str | None) -> list[Event]:
    conv = f"{DIALECT}:{frame.communication_id}"  # its own session, whatever else is said
    return [_status(conv, "active", _at(frame.timestamp, "$.timestamp"))]


def _transcript(frame: TranscriptFrame, session: str | None) -> list[Event]:
    return [transcript_event(frame.data, "$.data")]


def _turn_ended(frame: TurnEndedFrame, session: str | None) -> list[Event]:
    return []


def _communication_ended(frame: CommunicationEndedFrame, session: str | None) -> list[Event]:
    conv = _conversation(session)
    at = _at(frame.timestamp, "$.timestamp")
    return [_ended(conv, at, "completed", None)]


def _message(frame: MessageFrame, session: str | None) -> list[Event]:
    return [message_event(frame.data, "$.data", frame.timestamp)]


def _connected(frame: ConnectedFrame, session: str | None) -> list[Event]:
    conv = f"{DIALECT}:{frame.data.session_id}"  # its own session, whatever else is said
    at = _at(frame.data.connected_at, "$.data.connectedAt")
    return [
        Link(
            id=derived_id(conv, "connected", at),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="up",
        )
    ]


def _disconnected(frame: DisconnectedFrame, session: str | None) -> list[Event]:
    conv, at, down = _conversation(session), _at(frame.timestamp, "$.timestamp"), frame.data
    return [
        Link(
            id=derived_id(conv, "disconnected", at, down.reason, down.will_retry),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="down",
            reason=down.reason,
            will_retry=down.will_retry,
        )
    ]


def _reconnecting(frame: ReconnectingFrame, session: str | None) -> list[Event]:
    conv, at, retry = _conversation(session), _at(frame.timestamp, "$.timestamp"), frame.data
    return [
        Link(
            id=derived_id(conv, "reconnecting", at, retry.attempt, retry.max_attempts),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="retrying",
            attempt=retry.attempt,
            max_attempts=retry.max_attempts,
        )
    ]


def _reconnected(frame: ReconnectedFrame, session: str | None) -> list[Event]:
    conv = _conversation(session)
    _at(frame.timestamp, "$.timestamp")  # unused, but a frame time that is no time is a fault
    at = _at(frame.data.reconnected_at, "$.data.reconnectedAt")
    missed = frame.data.missed_messages
    return [
        Link(
            id=derived_id(conv, "reconnected", at, missed),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="restored",
            missed=missed,
        )
    ]


def _ended_frame(frame: EndedFrame, session: str | None) -> list[Event]:
    conv, at = _conversation(session), _at(frame.timestamp, "$.timestamp")
    return [
        _ended(conv, at, end_reason(frame.data.reason, frame.data.ended_by), frame.data.ended_by)
    ]


def _error(frame: ErrorFrame, session: str | None) -> list[Event]:
    conv, at, error = _conversation(session), _at(frame.timestamp, "$.timestamp"), frame.data
    return [
        Error(
            id=derived_id(conv, "error", at, error.code, error.message),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            code=error.code,
            message=error.message,
            recoverable=error.recoverable,
        )
    ]


_BUILDERS: dict[type[Any], Callable[[Any, str | None], list[Event]]] = {
    StartFrame: _start,
    TranscriptFrame: _transcript,
    TurnEndedFrame: _turn_ended,
    CommunicationEndedFrame: _communication_ended,
    MessageFrame: _message,
    ConnectedFrame: _connected,
    DisconnectedFrame: _disconnected,
    ReconnectingFrame: _reconnecting,
    ReconnectedFrame: _reconnected,
    EndedFrame: _ended_frame,
    ErrorFrame: _error,
}


# ---------------------------------------------------------------------------------------------
# The events themselves, also built by the connector (history, its own link reports).


def _status(conv: str, status: SessionStatus, at: str) -> Status:
    return Status(
        id=derived_id(conv, "status", status),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        status=status,
    )


def _ended(conv: str, at: str, reason: EndReason, by: Any) -> Ended:
    return Ended(
        id=derived_id(conv, "ended"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason=reason,
        by=by,
    )


def ended_event(session: str, reason: EndReason, by: Any = None) -> Ended:
    """The session's `ended`, now (the same id as every other report of its end)."""
    return _ended(f"{DIALECT}:{session}", to_at(None), reason, by)


def transcript_event(line: TranscriptData, path: str = "$") -> Message:
    """A chat-WebSocket transcript line as the canonical message. `path` is where it sits in
    its frame. Its `tool_details` (when the agent called a tool) go to the event's metadata."""
    conv = f"{DIALECT}:{line.communication_id}"
    at = _at(line.created_at, f"{path}.created_at")
    metadata = {} if line.tool_details is None else {"tool_details": line.tool_details}
    return Message(
        id=f"{conv}/{line.id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=SENDERS[line.speaker],
        content=Text(line.text),
        metadata=metadata,
    )


def message_event(message: NativeMessage, path: str = "$", frame_at: Any = None) -> Message:
    """A native `Message` as the canonical message. `path` is where it sits in its frame;
    `frame_at` is the frame's own `timestamp`, used when the message carries none. The event's
    metadata is the message's own, plus `locale` and an action's `action_metadata` (the
    platform's: they win over custom keys of the same names)."""
    conv = f"{DIALECT}:{message.session_id}"
    if message.timestamp is None:
        at = _at(frame_at, "$.timestamp")
    else:
        at = _at(message.timestamp, f"{path}.timestamp")
    metadata = dict(message.metadata or {})
    if message.locale is not None:
        metadata["locale"] = message.locale
    action = message.data.action
    if action is not None and action.metadata:
        metadata["action_metadata"] = action.metadata
    return Message(
        id=f"{conv}/{message.event_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=SENDERS[message.speaker],
        content=_content(message.data, f"{path}.data"),
        metadata=metadata,
    )


def status_event(session: ChatSession) -> Status:
    """The session's status as a `status` event, at `createdAt` (the session's own time).
    Raises `DecodeError` for a `createdAt` that is no time."""
    conv = f"{DIALECT}:{session.session_id}"
    try:
        return _status(conv, STATUSES[session.status], _at(session.created_at, "$.createdAt"))
    except Fault as fault:
        raise fault.error(0) from None


def message_events(messages: Iterable[NativeMessage]) -> list[Event]:
    """A session's history messages as canonical events; `DecodeError` names a bad one."""
    try:
        return [message_event(m, f"$.messages[{i}]") for i, m in enumerate(messages)]
    except Fault as fault:
        raise fault.error(0) from None


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


def end_reason(reason: str, by: str | None) -> EndReason:
    """The canonical reason of the SDK's `ended` (`completed` by the user or agent is theirs)."""
    if reason != "completed":
        return "forwarded" if reason == "forwarded" else "error"
    return "user" if by == "user" else "agent" if by == "agent" else "completed"
