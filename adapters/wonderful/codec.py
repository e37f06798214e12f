"""Wonderful codec: session-event frames ⇄ canonical events, commands → REST requests. Pure.

Decode (`decode`): a body is one frame, an array of frames, the `{"sessionId", "events"}`
envelope, or a `ChatSession` (see `frames.py`). Returns `Decoded`; raises `MalformedJSON` for a
body that is not JSON and `DecodeError` (`index`, `path`) for a known frame that breaks its
schema. Frames with an event name this dialect does not know are counted in `ignored`.

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
location, action. Message metadata is kept as the event's `metadata`.

Encode (`encode`): start, recover, send, end and forward as `NativeRequest`s under
`/api/v1/chat/sessions` (paths are ours: the SDK hides them). Typing and read receipts do not
exist on this platform: `Unsupported`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
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
from adapters.wonderful.native import ChatSession, MessageData, SendResponse
from adapters.wonderful.native import Message as NativeMessage
from gateway.adapter import Decoded, NativeRequest
from gateway.codec import conversation_id, derived_id, invalid, loads, to_at
from gateway.errors import DecodeError, RequestError, Unsupported
from gateway.model import (
    Action,
    Audio,
    Command,
    Content,
    End,
    Ended,
    EndReason,
    Error,
    Event,
    File,
    Forward,
    Image,
    Link,
    Location,
    Message,
    Party,
    Recover,
    Send,
    SessionStatus,
    Start,
    Status,
    Text,
)

DIALECT = "wonderful"
SESSIONS_PATH = "/api/v1/chat/sessions"

_fromisoformat = datetime.fromisoformat
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


class _Fault(Exception):
    """A frame that typed fine but breaks a rule the types cannot say; `path` is in the frame."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Decode


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
    except _Fault as fault:
        raise _error(fault, 0) from None


def _decode_raw(body: Any, conversation: str | None) -> Decoded:
    """Every other body form, frame by frame, so that faults name their frame and path."""
    try:
        split = frames.split(body)
    except msgspec.ValidationError as exc:  # a ChatSession that breaks its schema
        raise invalid(exc, 0) from None
    if isinstance(split, str):
        raise DecodeError(f"frame 0: not a Wonderful session event at {split}", index=0, path=split)
    if split.session is not None:
        return Decoded(_session_events(split.session))
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
        events.append(_checked(frame, conversation, index))
    return Decoded(events, ignored)


def _checked(frame: Frame, conversation: str | None, index: int) -> Event:
    try:
        return to_event(frame, conversation)
    except _Fault as fault:
        raise _error(fault, index) from None


def _error(fault: _Fault, index: int) -> DecodeError:
    return DecodeError(
        f"frame {index}: {fault.reason} at {fault.path}", index=index, path=fault.path
    )


def to_event(frame: Frame, conversation: str | None = None) -> Event:
    """One typed frame as its canonical event; `conversation` is the native session id for
    frames that carry none. Raises `_Fault` for a frame the types let through but is wrong."""
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
    at = message.timestamp
    if type(at) is not str or not _is_canonical(at):  # the fast path: already canonical
        at = _at(at, path + ".timestamp") if at is not None else _at(frame_at, "$.timestamp")
    data = message.data
    # Text is most of the traffic: built here, it skips a call on the hot path.
    if data.type == "text" and data.text is not None:
        content: Content = Text(data.text)
    else:
        content = _content(data, path + ".data")
    return Message(
        id=f"{conv}/{message.event_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_SENDERS[message.speaker],
        content=content,
        metadata={} if message.metadata is None else message.metadata,
    )


def _session_events(session: ChatSession) -> list[Event]:
    """A `ChatSession` (start/recover answer) as its status and its messages, oldest first."""
    return [status_event(session), *message_events(session.messages)]


def status_event(session: ChatSession) -> Status:
    """The session's status as a `status` event, at `createdAt` (the session's own time).
    Raises `DecodeError` for a `createdAt` that is no time."""
    conv = conversation_id(DIALECT, session.session_id)
    status = _STATUSES[session.status]
    try:
        at = _at(session.created_at, "$.createdAt")
    except _Fault as fault:
        raise _error(fault, 0) from None
    return Status(id=derived_id(conv, "status", status), status=status, **_common(conv, at))


def message_events(messages: Iterable[NativeMessage]) -> list[Event]:
    """A session's history messages as canonical events; `DecodeError` names a bad one."""
    try:
        return [message_event(m, f"$.messages[{i}]") for i, m in enumerate(messages)]
    except _Fault as fault:
        raise _error(fault, 0) from None


def session_status(session: ChatSession) -> SessionStatus:
    """The canonical status of a native session."""
    return _STATUSES[session.status]


def _content(data: MessageData, path: str) -> Content:
    kind = data.type
    if kind == "text":
        if data.text is None:
            raise _Fault(path + ".text", "a text message needs `text`")
        return Text(data.text)
    if kind == "location":
        if data.latitude is None or data.longitude is None:
            missing = "latitude" if data.latitude is None else "longitude"
            raise _Fault(f"{path}.{missing}", f"a location needs `{missing}`")
        return Location(
            latitude=data.latitude,
            longitude=data.longitude,
            name=data.location_name,
            address=data.location_address,
        )
    if kind == "action":
        if data.action is None:
            raise _Fault(path + ".action", "an action message needs `action`")
        return Action(action=data.action.type, destination=data.action.destination)
    url = data.media_url
    if not url:
        raise _Fault(path + ".mediaUrl", f"`{kind}` messages need `mediaUrl`")
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
        raise _Fault("$.sessionId", "no session id: give `sessionId` or `?conversation=`")
    return conversation_id(DIALECT, native)


def _common(conv: str, at: str) -> dict[str, Any]:
    return {"conversation_id": conv, "dialect": DIALECT, "at": at}


def _is_canonical(value: str) -> bool:
    """Whether `value` already is a canonical timestamp (what the platform sends most)."""
    if len(value) != 24 or value[23] != "Z" or value[19] != ".":
        return False
    try:
        _fromisoformat(value)  # still rejects a day or an hour that does not exist
    except ValueError:
        return False
    return True


def _at(value: str | float | None, path: str) -> str:
    """`to_at` with the canonical fast path; raises `_Fault` at `path` for a bad time."""
    if type(value) is str and _is_canonical(value):
        return value
    try:
        return to_at(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise _Fault(path, f"not a timestamp ({exc})") from None


# ---------------------------------------------------------------------------------------------
# Encode


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The REST request for `command`; `session` is the connector's snapshot (its `agent_id`
    is the default agent). Raises `RequestError` (INVALID_REQUEST, MISSING_PARTICIPANT) for a
    command the platform would refuse and `Unsupported` for one it cannot carry."""
    match command:
        case Start():
            return NativeRequest(
                method="POST", path=SESSIONS_PATH, json=start_body(command, session)
            )
        case Recover(conversation=conv):
            return NativeRequest(method="GET", path=f"{SESSIONS_PATH}/{native_session_id(conv)}")
        case Send(conversation=conv):
            body = msgspec.to_builtins(chat_message(command.content))
            if command.metadata:
                body["metadata"] = command.metadata
            return NativeRequest(
                path=f"{SESSIONS_PATH}/{native_session_id(conv)}/messages", json=body
            )
        case End(conversation=conv):
            return NativeRequest(path=f"{SESSIONS_PATH}/{native_session_id(conv)}/end", json={})
        case Forward(conversation=conv, destination=destination):
            if not destination.strip():
                raise RequestError("forward needs a destination")
            return NativeRequest(
                path=f"{SESSIONS_PATH}/{native_session_id(conv)}/forward",
                json={"destination": destination},
            )
    raise Unsupported(f"{DIALECT} has no {command.__struct_config__.tag!r} command")


def start_body(command: Start, session: Mapping[str, Any]) -> dict[str, Any]:
    """The start request: the participant, locale (default en-US), agent, and the session
    metadata merged with the participant info as the SDK sends it (`from`, `from_type`, then
    `from_number` / `from_email` for phone / email identities; `name` is display only)."""
    p = command.participant
    if not p.from_.strip():
        raise RequestError("start needs the participant's `from`", code="MISSING_PARTICIPANT")
    if p.to_type is not None and not p.to:
        raise RequestError("start has `toType` without `to`")
    metadata: dict[str, Any] = {"from": p.from_, "from_type": p.from_type}
    number = p.from_ if p.from_type == "phone" else p.phone
    email = p.from_ if p.from_type == "email" else p.email
    if number:
        metadata["from_number"] = number
    if email:
        metadata["from_email"] = email
    if p.name:
        metadata["name"] = p.name
    if command.subject:
        metadata["subject"] = command.subject
    for key, value in command.metadata.items():
        metadata.setdefault(key, value)  # the participant's identity is not for custom keys
    body: dict[str, Any] = {"from": p.from_, "fromType": p.from_type}
    agent = command.agent_id or session.get("agent_id")
    if agent:
        body["agentId"] = agent
    if p.to:
        body["to"] = p.to
        body["toType"] = p.to_type or "name"
    body["locale"] = command.locale or "en-US"
    body["metadata"] = metadata
    return body


def chat_message(content: Content) -> MessageData:
    """The SDK's `ChatMessage` for `content`, with its validation rules (INVALID_REQUEST)."""
    match content:
        case Text(text=text):
            if not text:
                raise RequestError("a text message needs `text`")
            return MessageData(type="text", text=text)
        case Image(url=url, file_name=name, caption=caption):
            if not url:
                raise RequestError("an image message needs `mediaUrl` (a hosted URL)")
            return MessageData(type="image", media_url=url, file_name=name, text=caption)
        case File(url=url, file_name=name):
            if not url:
                raise RequestError("a document message needs `mediaUrl` (a hosted URL)")
            return MessageData(type="document", media_url=url, file_name=name)
    raise Unsupported(f"{DIALECT} cannot send {content.__struct_config__.tag!r} content")


def sent_message(command: Send, response: SendResponse) -> Message:
    """The canonical message for a message the platform accepted: the same id, sender and
    content its echo (speaker `customer`, the same `eventId`) decodes to."""
    native = NativeMessage(
        event_id=response.event_id,
        session_id=native_session_id(command.conversation),
        speaker="user",
        data=chat_message(command.content),
        metadata=command.metadata or None,
        timestamp=response.timestamp,
    )
    try:
        return message_event(native)
    except _Fault as fault:  # a send answer whose timestamp is no time
        raise _error(fault, 0) from None


def native_session_id(conversation: str) -> str:
    """The Wonderful session id in a canonical conversation id (`wonderful:<sessionId>`)."""
    prefix, sep, native = conversation.partition(":")
    if prefix != DIALECT or not sep or not native:
        raise RequestError(f"{conversation!r} is not a {DIALECT} conversation")
    return native
