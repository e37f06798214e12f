"""Wonderful frames → canonical events: the dialect's spec for the shared pipeline. Pure.

The frames and body forms are `native.py`'s; the pipeline (`gateway.decoding`) reads the forms,
counts unknown event names and names errors. What each frame becomes:

    native                                      canonical
    start {communication_id}                    status active (the session is up)
    transcript {id, speaker, text, created_at}  message (id = the line's id)
    turn_ended                                  nothing (known: not counted as ignored)
    communication_ended                         ended (completed)
    message (SDK `Message`)                     message (id = its eventId)
    connected / disconnected                    link up / down (reason, will_retry)
    reconnecting / reconnected                  link retrying (attempt, max) / restored (missed)
    ended {reason, endedBy}                     ended (forwarded, error, or completed → user|agent)
    error {code, message, recoverable}          error
    ChatSession {status, messages}              status (in-progress → active) + its messages

Speakers: `user` / `customer` → user, `agent` (the AI agent) → bot, `human_agent` → agent,
`system` → system. Conversation `"wonderful:<session>"` (the communication id is the session
id): a line's, a message's, `start`'s and `connected`'s own session; for the others the frame's
`sessionId` (ours), the envelope's, or `?conversation=`. Message ids are
`"<conversation>/<line id or eventId>"`; other events carry no id, so theirs is derived from
what makes them (`joined_id` of those parts joined by `\\x1f`: `derived_id`'s ids). A session
is up once and ends once: `status` and `ended` ids leave the time out, so every report of
either deduplicates (the raw `start` and a recovered `ChatSession` in progress give the same
`status`). Times go through `to_at`; a frame without one is the body's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from adapters.wonderful.native import (
    DIALECT,
    OWN_SESSION,
    SENDERS,
    STATUSES,
    ChatSession,
    CommunicationEndedFrame,
    ConnectedFrame,
    DisconnectedFrame,
    EndedFrame,
    ErrorFrame,
    EventsBody,
    Frame,
    MessageFrame,
    ReconnectedFrame,
    ReconnectingFrame,
    SessionBody,
    SessionFrame,
    StartFrame,
    TranscriptData,
    TranscriptFrame,
    content_of,
    end_reason,
)
from adapters.wonderful.native import Message as NativeMessage
from gateway.codec import joined_id, to_at
from gateway.decoding import Envelope, Refused, Scope, Spec, native_time
from gateway.errors import DecodeError
from gateway.model import (
    Ended,
    EndReason,
    Error,
    Event,
    Link,
    Message,
    SessionStatus,
    Status,
    Text,
)

_BAD_TIME = "not a timestamp ({error})"
"""How a native time that is no time is refused (`native_time`)."""


def conversation(frame: Frame, scope: Scope) -> str | None:
    """A frame's native session id: its own where it names one, else the body's."""
    own = OWN_SESSION.get(type(frame))
    if own is not None:
        return own(frame)
    if type(frame) is SessionFrame and isinstance(scope.envelope, ChatSession):
        return scope.envelope.session_id
    envelope = scope.envelope.session_id if isinstance(scope.envelope, EventsBody) else None
    return frame.session_id or envelope or scope.conversation or None


def _transcript(frame: TranscriptFrame, scope: Scope) -> tuple[Event, ...]:
    """A transcript line: a message."""
    return (transcript_event(frame.data, "$.data", scope.conversation_id),)


def _message(frame: MessageFrame, scope: Scope) -> tuple[Event, ...]:
    """An SDK message: a message (at the frame's time when the message has none)."""
    return (message_event(frame.data, "$.data", frame.timestamp, scope, scope.conversation_id),)


def _start(frame: StartFrame, scope: Scope) -> tuple[Event, ...]:
    """The session is up: status active."""
    at = native_time(frame.timestamp, "$.timestamp", _BAD_TIME, scope)
    return (_status(scope.conversation_id, "active", at),)


def _communication_ended(frame: CommunicationEndedFrame, scope: Scope) -> tuple[Event, ...]:
    """The raw socket's end: ended, completed."""
    at = native_time(frame.timestamp, "$.timestamp", _BAD_TIME, scope)
    return (_ended(scope.conversation_id, at, "completed", None),)


def _sdk_ended(frame: EndedFrame, scope: Scope) -> tuple[Event, ...]:
    """The SDK's end: ended, its reason and who ended it (`end_reason`)."""
    ended = frame.data
    at = native_time(frame.timestamp, "$.timestamp", _BAD_TIME, scope)
    reason = end_reason(ended.reason, ended.ended_by)
    return (_ended(scope.conversation_id, at, reason, ended.ended_by),)


def _connected(frame: ConnectedFrame, scope: Scope) -> tuple[Event, ...]:
    """Link up, at `connectedAt`."""
    at = native_time(frame.data.connected_at, "$.data.connectedAt", _BAD_TIME, scope)
    conv = scope.conversation_id
    eid = joined_id(conv, f"connected\x1f{at}")
    return (Link(id=eid, conversation_id=conv, dialect=DIALECT, at=at, state="up"),)


def _disconnected(frame: DisconnectedFrame, scope: Scope) -> tuple[Event, ...]:
    """Link down: why, and whether the SDK retries."""
    down = frame.data
    conv = scope.conversation_id
    at = native_time(frame.timestamp, "$.timestamp", _BAD_TIME, scope)
    return (
        Link(
            id=joined_id(conv, f"disconnected\x1f{at}\x1f{down.reason}\x1f{down.will_retry}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="down",
            reason=down.reason,
            will_retry=down.will_retry,
        ),
    )


def _reconnecting(frame: ReconnectingFrame, scope: Scope) -> tuple[Event, ...]:
    """Link retrying: which attempt of how many."""
    retry = frame.data
    conv = scope.conversation_id
    at = native_time(frame.timestamp, "$.timestamp", _BAD_TIME, scope)
    return (
        Link(
            id=joined_id(conv, f"reconnecting\x1f{at}\x1f{retry.attempt}\x1f{retry.max_attempts}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="retrying",
            attempt=retry.attempt,
            max_attempts=retry.max_attempts,
        ),
    )


def _reconnected(frame: ReconnectedFrame, scope: Scope) -> tuple[Event, ...]:
    """Link restored at `reconnectedAt`, with how many messages were missed. The frame's own
    `timestamp` is unused, but one that is no time is a fault."""
    restored = frame.data
    native_time(frame.timestamp, "$.timestamp", _BAD_TIME)
    conv = scope.conversation_id
    at = native_time(restored.reconnected_at, "$.data.reconnectedAt", _BAD_TIME)
    missed = restored.missed_messages
    return (
        Link(
            id=joined_id(conv, f"reconnected\x1f{at}\x1f{missed}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="restored",
            missed=missed,
        ),
    )


def _error(frame: ErrorFrame, scope: Scope) -> tuple[Event, ...]:
    """The SDK's error: code, message, whether it is recoverable."""
    error = frame.data
    conv = scope.conversation_id
    at = native_time(frame.timestamp, "$.timestamp", _BAD_TIME, scope)
    return (
        Error(
            id=joined_id(conv, f"error\x1f{at}\x1f{error.code}\x1f{error.message}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            code=error.code,
            message=error.message,
            recoverable=error.recoverable,
        ),
    )


def _session(frame: SessionFrame, scope: Scope) -> tuple[Event, ...]:
    """A `ChatSession` body: its status, then its messages."""
    session = scope.envelope
    if not isinstance(session, ChatSession):
        raise Refused("`session` stands for a ChatSession body alone", "$.type")
    messages = [
        message_event(message, f"$.messages[{i}]", None, scope)
        for i, message in enumerate(session.messages)
    ]
    return (_session_status(session), *messages)


BUILDERS: dict[type[Any], Callable[[Any, Scope], tuple[Event, ...]]] = {
    TranscriptFrame: _transcript,
    MessageFrame: _message,
    StartFrame: _start,
    CommunicationEndedFrame: _communication_ended,
    EndedFrame: _sdk_ended,
    ConnectedFrame: _connected,
    DisconnectedFrame: _disconnected,
    ReconnectingFrame: _reconnecting,
    ReconnectedFrame: _reconnected,
    ErrorFrame: _error,
    SessionFrame: _session,
}
"""Each frame type's builder (`turn_ended` is silent: it needs none); each raises `Refused`
for a frame that breaks a rule the types cannot say (a time that is no time, a message
without its content)."""


SPEC: Spec[Frame] = Spec(
    dialect=DIALECT,
    frame=Frame,
    tag="type",
    builders=BUILDERS,
    conversation=conversation,
    envelopes=(Envelope("events", EventsBody, "events"), Envelope("status", SessionBody)),
    silent=frozenset({"turn_ended"}),
)


# ---------------------------------------------------------------------------------------------
# The events, also built by the connector (history lines, its own link reports, ends).


def _status(conv: str, status: SessionStatus, at: str) -> Status:
    eid = joined_id(conv, f"status\x1f{status}")
    return Status(id=eid, conversation_id=conv, dialect=DIALECT, at=at, status=status)


def _ended(conv: str, at: str, reason: EndReason, by: Any) -> Ended:
    eid = joined_id(conv, "ended")
    return Ended(id=eid, conversation_id=conv, dialect=DIALECT, at=at, reason=reason, by=by)


def ended_event(session: str, reason: EndReason, by: Any = None) -> Ended:
    """The session's `ended`, now (the same id as every other report of its end)."""
    return _ended(f"{DIALECT}:{session}", to_at(None), reason, by)


def transcript_event(line: TranscriptData, path: str = "$", conv: str | None = None) -> Message:
    """A chat-WebSocket transcript line as the canonical message. `path` is where it sits in
    its frame; `conv` its conversation's id when the caller has made it (the pipeline has: the
    line names its own session). Its `tool_details` (when the agent called a tool) go to the
    event's metadata."""
    conv = conv or f"{DIALECT}:{line.communication_id}"
    at = native_time(line.created_at, path, _BAD_TIME, key=".created_at")
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


def message_event(
    message: NativeMessage,
    path: str = "$",
    frame_at: Any = None,
    scope: Scope | None = None,
    conv: str | None = None,
) -> Message:
    """A native `Message` as the canonical message. `path` is where it sits in its frame;
    `frame_at` is the frame's own `timestamp`, used when the message carries none, and the
    body's arrival (`scope`'s) the time when neither does. The event's metadata is the
    message's own, plus `locale` and an action's `action_metadata` (the platform's: they win
    over custom keys). `conv` is its conversation's id when the caller has made it."""
    conv = conv or f"{DIALECT}:{message.session_id}"
    if message.timestamp is None:
        at = native_time(frame_at, "$.timestamp", _BAD_TIME, scope)
    else:
        at = native_time(message.timestamp, path, _BAD_TIME, key=".timestamp")
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
        content=content_of(message.data, path),
        metadata=metadata,
    )


def _session_status(session: ChatSession) -> Status:
    conv = f"{DIALECT}:{session.session_id}"
    return _status(
        conv, STATUSES[session.status], native_time(session.created_at, "$.createdAt", _BAD_TIME)
    )


def status_event(session: ChatSession) -> Status:
    """A session's status as a `status` event, at `createdAt` (the session's own time).
    Raises `DecodeError` for a `createdAt` that is no time."""
    try:
        return _session_status(session)
    except Refused as refused:
        raise _decode_error(refused) from None


def message_events(messages: Iterable[NativeMessage]) -> list[Event]:
    """A session's history lines as canonical events; `DecodeError` names a bad one."""
    try:
        return [message_event(m, f"$.messages[{i}]") for i, m in enumerate(messages)]
    except Refused as refused:
        raise _decode_error(refused) from None


def _decode_error(refused: Refused) -> DecodeError:
    path = refused.path
    return DecodeError(f"frame 0: {refused} at {path}", index=0, path=path)
