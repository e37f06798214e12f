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

Speed: `decode` is on every ingest. It decodes typed in one pass and falls back to an exact,
untyped, frame-by-frame path for anything unusual, which alone names errors (see `decode`).
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
from adapters.wonderful.native import ChatSession, MessageData, Timestamp
from adapters.wonderful.native import Message as NativeMessage
from gateway.adapter import Decoded
from gateway.codec import CANONICAL_TAILS, canonical_seconds, invalid, joined_id, loads, to_at
from gateway.errors import DecodeError, GatewayError
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


_PREFIX = DIALECT + ":"  # of every conversation id: `conversation_id(DIALECT, native)`
_JSON_SPACE = frozenset((b" ", b"\t", b"\r", b"\n"))


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
    frames that name none.

    Two paths give the same result. The fast one decodes typed in one pass: one frame straight
    into its Struct, an array or an envelope into raw frames each then decoded typed. Whenever
    it meets anything else (an unknown body form, a frame that breaks its schema or a rule,
    malformed JSON) the exact path (`_decode_raw`) decodes the whole body again untyped, frame
    by frame, and says which frame and path are wrong. So the fast path never names an error
    itself, except a lone well-formed frame that breaks a rule (`Fault`: frame 0, as always).
    """
    if body[:1] != b"[":
        try:
            # The hot path: one well-formed frame, decoded straight into its typed form.
            frame = frames.frame_decoder.decode(body)
        except msgspec.DecodeError:
            return _decode_body(body, conversation)
        try:
            if type(frame) is MessageFrame:  # most traffic: skip `to_event`'s dispatch
                return Decoded([_message(frame.data, "$.data", frame.timestamp, True)])
            return Decoded([to_event(frame, conversation, owned=True)])
        except Fault as fault:
            raise fault.error(0) from None
    # An array: the single-frame decoder would only fail on it (and an exception is dear).
    return _decode_body(body, conversation)


def _decode_body(body: bytes, conversation: str | None) -> Decoded:
    """Any body but one well-formed frame: typed when `_decode_typed` can, else exactly."""
    try:
        decoded = _decode_typed(body, conversation)
    except (msgspec.DecodeError, Fault, GatewayError, RecursionError):
        decoded = None  # the exact path says what is wrong, and where
    if decoded is None:
        return _decode_raw(loads(body), conversation)
    return decoded


def _decode_typed(body: bytes, conversation: str | None) -> Decoded | None:
    """An array, an envelope, a `ChatSession` or one unknown frame, typed in one pass; `None`
    (or any exception) when the body is something else, for the exact path to explain. Each
    form is told from the others as `frames.split` tells them."""
    head = body[:1]
    if head in _JSON_SPACE:
        head = body.lstrip(b" \t\r\n")[:1]
    if head == b"[":
        return _decode_frames(frames.array_decoder.decode(body), conversation)
    if head != b"{":
        return None
    probe = frames.object_decoder.decode(body)
    if probe.type is not msgspec.UNSET:  # a frame that `frame_decoder` refused
        return Decoded([], 1) if frames.is_unknown_kind(probe.type) else None
    events = probe.events
    if not isinstance(events, msgspec.UnsetType):  # the envelope
        session_id = probe.session_id
        if session_id is msgspec.UNSET:
            session_id = None
        elif session_id is not None and not isinstance(session_id, str):
            return None
        return _decode_frames(events, session_id or conversation)
    if probe.session_id is not msgspec.UNSET and probe.status is not msgspec.UNSET:
        session = frames.session_decoder.decode(body)
        return Decoded([status_event(session), *_message_events(session.messages)])
    return None


def _decode_frames(raws: list[msgspec.Raw], conversation: str | None) -> Decoded | None:
    """The frames of an array or envelope, each decoded typed; an unknown event name is
    counted in `ignored`. `None`, `Fault` or a msgspec error for anything else."""
    events: list[Event] = []
    ignored = 0
    for raw in raws:
        try:
            frame = frames.frame_decoder.decode(raw)
        except msgspec.ValidationError:
            if frames.is_unknown_kind(frames.kind_of(raw)):
                ignored += 1
                continue
            return None
        if type(frame) is MessageFrame:
            events.append(_message(frame.data, "$.data", frame.timestamp, True))
        else:
            events.append(to_event(frame, conversation, owned=True))
    return Decoded(events, ignored)


def _decode_raw(body: Any, conversation: str | None) -> Decoded:
    """The exact path: every body form, parsed untyped, frame by frame, so that faults name
    their frame and path. Slow; `decode` comes here only for bodies the fast path refused."""
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


def to_event(frame: Frame, conversation: str | None = None, *, owned: bool = False) -> Event:
    """One typed frame as its canonical event; `conversation` is the native session id for
    frames that carry none. Raises `Fault` for a frame the types let through but is wrong.
    `owned`: the frame is the caller's to give away (a message's `metadata` dict is then
    reused, not copied)."""
    if type(frame) is MessageFrame:
        return _message(frame.data, "$.data", frame.timestamp, owned)
    if type(frame) is ConnectedFrame:
        connected = frame.data
        conv = _PREFIX + connected.session_id
        at = _at(connected.connected_at, "$.data.connectedAt")
        return Link(
            id=joined_id(conv, f"connected\x1f{at}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="up",
        )
    # The others name their session on the frame (or the caller does), and their time too.
    # Checked in this order (session, then time) so a frame breaking both names the session.
    conv = _conversation(frame.session_id or conversation)
    if type(frame) is ReconnectedFrame:
        reconnected = frame.data
        if frame.timestamp is not None:  # unused, but a frame time that is no time is a fault
            _at(frame.timestamp, "$.timestamp")
        at = _at(reconnected.reconnected_at, "$.data.reconnectedAt")
        return Link(
            id=joined_id(conv, f"reconnected\x1f{at}\x1f{reconnected.missed_messages}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="restored",
            missed=reconnected.missed_messages,
        )
    at = _at(frame.timestamp, "$.timestamp")
    if type(frame) is EndedFrame:
        ended = frame.data
        # A session ends once: the id leaves the time out, so every report of it dedups.
        return Ended(
            id=joined_id(conv, "ended"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            reason=_end_reason(ended.reason, ended.ended_by),
            by=ended.ended_by,
        )
    if type(frame) is DisconnectedFrame:
        down = frame.data
        return Link(
            id=joined_id(conv, f"disconnected\x1f{at}\x1f{down.reason}\x1f{down.will_retry}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="down",
            reason=down.reason,
            will_retry=down.will_retry,
        )
    if type(frame) is ReconnectingFrame:
        retrying = frame.data
        return Link(
            id=joined_id(
                conv, f"reconnecting\x1f{at}\x1f{retrying.attempt}\x1f{retrying.max_attempts}"
            ),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            state="retrying",
            attempt=retrying.attempt,
            max_attempts=retrying.max_attempts,
        )
    if type(frame) is ErrorFrame:
        error = frame.data
        return Error(
            id=joined_id(conv, f"error\x1f{at}\x1f{error.code}\x1f{error.message}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            code=error.code,
            message=error.message,
            recoverable=error.recoverable,
        )
    raise AssertionError(f"unhandled frame {frame!r}")  # pragma: no cover - exhaustive union


def message_event(message: NativeMessage, path: str = "$", frame_at: Any = None) -> Message:
    """A native `Message` as the canonical message. `path` is where it sits in its frame;
    `frame_at` is the frame's own `timestamp`, used when the message carries none. The
    message is left as it was (its `metadata` is copied)."""
    return _message(message, path, frame_at, False)


def _message(message: NativeMessage, path: str, frame_at: Timestamp, owned: bool) -> Message:
    """`message_event`, on the hot path: `owned` says the message's `metadata` dict may become
    the event's (the message was decoded for this call alone), saving a copy."""
    conv = _PREFIX + message.session_id
    stamp = message.timestamp
    if type(stamp) is str and stamp[19:] in CANONICAL_TAILS and canonical_seconds.get(stamp[:19]):
        at = stamp  # canonical, its second already checked by `to_at`: the call is saved
    elif stamp is not None:
        at = _at(stamp, path + ".timestamp")
    else:
        at = _at(frame_at, "$.timestamp")
    data = message.data
    # Text is most of the traffic: built here, it skips a call on the hot path.
    text = data.text
    if data.type == "text" and text is not None:
        content: Content = Text(text)
    else:
        content = _content(data, path + ".data")
    native_metadata = message.metadata
    if native_metadata is None:
        metadata: dict[str, Any] = {}
    elif owned:
        metadata = native_metadata
    else:
        metadata = dict(native_metadata)
    locale = message.locale
    if locale is not None:
        metadata["locale"] = locale
    action = data.action
    if action is not None and action.metadata:
        metadata["action_metadata"] = action.metadata
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
    conv = _PREFIX + session.session_id
    status = _STATUSES[session.status]
    try:
        at = _at(session.created_at, "$.createdAt")
    except Fault as fault:
        raise fault.error(0) from None
    return Status(
        id=joined_id(conv, f"status\x1f{status}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        status=status,
    )


def message_events(messages: Iterable[NativeMessage]) -> list[Event]:
    """A session's history messages as canonical events; `DecodeError` names a bad one. The
    messages are left as they were."""
    return _message_events(messages, False)


def _message_events(messages: Iterable[NativeMessage], owned: bool = True) -> list[Event]:
    """`message_events`; `owned` as in `_message`."""
    try:
        return [_message(m, f"$.messages[{i}]", None, owned) for i, m in enumerate(messages)]
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
    return _PREFIX + native


def _at(value: Timestamp, path: str) -> str:
    """`gateway.codec.to_at`; raises `Fault` at `path` for a value that is no time."""
    try:
        return to_at(value)
    except ValueError as exc:
        raise Fault(path, f"not a timestamp ({exc})") from None
