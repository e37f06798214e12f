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

from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias, cast

import msgspec

from adapters.wonderful import frames
from adapters.wonderful.frames import (
    Connected,
    ConnectedFrame,
    Disconnected,
    DisconnectedFrame,
    EndedData,
    EndedFrame,
    ErrorData,
    ErrorFrame,
    Frame,
    MessageFrame,
    RawFrame,
    Reconnected,
    ReconnectedFrame,
    Reconnecting,
    ReconnectingFrame,
)
from adapters.wonderful.native import ChatSession, MessageData, Timestamp
from adapters.wonderful.native import Message as NativeMessage
from gateway.adapter import Decoded
from gateway.codec import invalid, is_utf8, joined_id, loads, to_at
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

DIALECT: Final = "wonderful"

_SENDERS: Final[dict[str, Party]] = {
    "user": Party(role="user"),
    "customer": Party(role="user"),  # the backend's word for the SDK's `user`
    "agent": Party(role="bot"),  # the Wonderful AI agent
    "human_agent": Party(role="agent"),
    "system": Party(role="system"),
}
_STATUSES: Final[dict[str, SessionStatus]] = {
    "in-progress": "active",
    "completed": "completed",
    "failed": "failed",
}


_PREFIX: Final = DIALECT + ":"  # of every conversation id: `conversation_id(DIALECT, native)`
_UNSET: Final = msgspec.UNSET
# What msgspec's decoders raise for a body they cannot read: its `DecodeError` (bad JSON, or
# JSON that is not the type asked for), and bad UTF-8 inside a string or nesting past the
# recursion limit. The fast path answers each by taking the exact path, whose `loads` maps the
# last two to `MalformedJSON` (`decode` is the adapter's own: it keeps that contract itself).
_UNREADABLE: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_decode_body: Final = frames.body_decoder.decode  # bound once: two lookups less per body
_SESSION_FIRST: Final = b'{"sessionId":'  # how an envelope or a ChatSession opens, minified
# The message path's classes (of modules mypyc does not compile) as `Final` names: compiled,
# a plain imported name is read from the module's dict at every use (≈ 110 instructions, four
# times a message frame: 2 % of its cost), a `Final` one from a C static.
_MessageFrame: Final = MessageFrame
_Decoded: Final = Decoded
_Text: Final = Text
_Message: Final = Message
_astuple: Final = msgspec.structs.astuple
_MessageFields: TypeAlias = tuple[
    str, str, str, MessageData, str | None, dict[str, Any] | None, Timestamp
]


def _message_fields(message: NativeMessage) -> _MessageFields:
    """`(event_id, session_id, speaker, data, locale, metadata, timestamp)`: a native message's
    fields in `native.Message`'s order (a test holds the two together). One `astuple` reads
    them by slot; compiled, each attribute read of a Struct is a generic lookup (≈ 115
    instructions), and a message frame needs all seven."""
    return cast(_MessageFields, _astuple(message))


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
    `DecodeError`; nothing else escapes (this is `WonderfulAdapter.decode` itself).

    Two paths give the same result. The fast one decodes typed in one pass: one frame straight
    into its Struct, an array into `RawFrame`s whose `data` is then decoded typed, an envelope
    or a `ChatSession` by a probe of its keys (see `_decode_object`): straight away when it
    opens with `sessionId`, as platforms send both, else after one failed read. Whenever it
    meets anything else (an unknown body form, a frame that breaks its schema or a rule,
    malformed JSON) the exact path (`_decode_raw`) decodes the whole body again untyped, frame
    by frame, and says which frame and path are wrong. So the fast path never names an error
    itself, except a lone well-formed frame that breaks a rule (`Fault`: frame 0, as always).
    """
    if not body.isascii() and not is_utf8(body):  # bad bytes a typed decode could skip unread
        return _decode_raw(loads(body), conversation)
    if body.startswith(_SESSION_FIRST):
        # An envelope or a ChatSession as platforms send them: skip the frame decode that
        # would fail (its exception costs as much as the probe that follows).
        return _decode_object(body, conversation)
    try:
        # The hot path: one frame straight into its typed form, or an array into raw frames
        # (one decoder for both: no look at the body's first byte first).
        frame = _decode_body(body)
    except _UNREADABLE:  # an envelope, a ChatSession, an unknown frame, or an error
        return _decode_object(body, conversation)
    try:
        if type(frame) is _MessageFrame:  # most traffic: no dispatch
            return _Decoded([_message(frame.data, frame.timestamp)])
        if not isinstance(frame, list):
            build = _BUILDERS[type(frame)]
            return _Decoded([build(frame.data, frame.timestamp, frame.session_id or conversation)])
    except Fault as fault:
        raise fault.error(0) from None
    return _decode_array(frame, body, conversation)


def _decode_array(raws: list[RawFrame], body: bytes, conversation: str | None) -> Decoded:
    """An array body, its frames read as `RawFrame`s: typed frame by frame, else exactly."""
    try:
        decoded = _decode_frames(raws, conversation)
    except (*_UNREADABLE, Fault):
        decoded = None  # the exact path says what is wrong, and where
    if decoded is None:
        return _decode_raw(loads(body), conversation)
    return decoded


def _decode_object(body: bytes, conversation: str | None) -> Decoded:
    """Any body `body_decoder` refused: typed when `_decode_typed` can, else exactly."""
    try:
        decoded = _decode_typed(body, conversation)
    except (*_UNREADABLE, Fault, GatewayError):
        decoded = None  # the exact path says what is wrong, and where
    if decoded is None:
        return _decode_raw(loads(body), conversation)
    return decoded


def _decode_typed(body: bytes, conversation: str | None) -> Decoded | None:
    """An envelope, a `ChatSession`, one unknown frame, or a known frame that opens with
    `sessionId` (sent here untried, see `decode`), typed in one pass; `None` (or any
    exception) when the body is something else, for the exact path to explain. Each form is
    told from the others as `frames.split` tells them."""
    probe = frames.object_decoder.decode(body)  # raises for anything but an object
    if probe.type is not _UNSET:  # a frame
        if frames.is_unknown_kind(probe.type):
            return Decoded([], 1)
        if not body.startswith(_SESSION_FIRST):
            return None  # a known frame `body_decoder` refused is broken: no second try
        # Read as an array's frame is; one that breaks its schema fails there, as above.
        return _decode_frames([frames.raw_frame_decoder.decode(body)], conversation)
    events = probe.events
    if not isinstance(events, msgspec.UnsetType):  # the envelope
        session_id = probe.session_id
        if session_id is _UNSET:
            session_id = None
        elif session_id is not None and not isinstance(session_id, str):
            return None
        return _decode_frames(events, session_id or conversation)
    if probe.session_id is not _UNSET and probe.status is not _UNSET:
        session = frames.session_decoder.decode(body)
        return Decoded([status_event(session), *_message_events(session.messages)])
    return None


def _decode_frames(raws: list[RawFrame], conversation: str | None) -> Decoded | None:
    """The frames of an array or envelope, each one's `data` decoded typed as its `type` says;
    an unknown event name is counted in `ignored`. `None`, `Fault` or a msgspec error for
    anything else."""
    events: list[Event] = []
    ignored = 0
    for raw in raws:
        kind = raw.type
        data = raw.data
        if kind == "message":  # most traffic: no dispatch
            if data is _UNSET:
                return None
            events.append(_message(_decode_message(data), raw.timestamp))
            continue
        if type(kind) is not str:  # no event name: the exact path names the fault
            return None
        entry = _KINDS.get(kind)
        if entry is None:
            ignored += 1
            continue
        if data is _UNSET:
            return None
        read, build = entry
        events.append(build(read(data), raw.timestamp, raw.session_id or conversation))
    return _Decoded(events, ignored)


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
        return _message(frame.data, frame.timestamp, "$.data", owned)
    return _BUILDERS[type(frame)](frame.data, frame.timestamp, frame.session_id or conversation)


# ---------------------------------------------------------------------------------------------
# One builder per event name: `(data, frame timestamp, native session id) -> event`, the session
# being the frame's own `sessionId` or else the caller's.


def _bad_time(path: str, exc: ValueError) -> Fault:
    return Fault(path, f"not a timestamp ({exc})")


def _no_session() -> Fault:
    return Fault("$.sessionId", "no session id: give `sessionId` or `?conversation=`")


def _session_at(session: str | None, timestamp: Timestamp) -> tuple[str, str]:
    """`(conversation, at)` of a frame that names its session (or whose caller does) and
    carries its time in `timestamp`. Checked in this order, so a frame breaking both names the
    session."""
    if not session:
        raise _no_session()
    try:
        return _PREFIX + session, to_at(timestamp)
    except ValueError as exc:
        raise _bad_time("$.timestamp", exc) from None


def _connected(connected: Connected, timestamp: Timestamp, session: str | None) -> Event:
    conv = _PREFIX + connected.session_id  # its own session, whatever the frame or caller say
    try:
        at = to_at(connected.connected_at)
    except ValueError as exc:
        raise _bad_time("$.data.connectedAt", exc) from None
    return Link(
        id=joined_id(conv, f"connected\x1f{at}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        state="up",
    )


# The others name their session on the frame (or the caller does), and their time too.
# Checked in this order (session, then time) so a frame breaking both names the session.


def _reconnected(reconnected: Reconnected, timestamp: Timestamp, session: str | None) -> Event:
    if not session:
        raise _no_session()
    conv = _PREFIX + session
    if timestamp is not None:  # unused, but a frame time that is no time is a fault
        try:
            to_at(timestamp)
        except ValueError as exc:
            raise _bad_time("$.timestamp", exc) from None
    try:
        at = to_at(reconnected.reconnected_at)
    except ValueError as exc:
        raise _bad_time("$.data.reconnectedAt", exc) from None
    return Link(
        id=joined_id(conv, f"reconnected\x1f{at}\x1f{reconnected.missed_messages}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        state="restored",
        missed=reconnected.missed_messages,
    )


def _ended(ended: EndedData, timestamp: Timestamp, session: str | None) -> Event:
    conv, at = _session_at(session, timestamp)
    # A session ends once: the id leaves the time out, so every report of it dedups.
    return Ended(
        id=joined_id(conv, "ended"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason=_end_reason(ended.reason, ended.ended_by),
        by=ended.ended_by,
    )


def _disconnected(down: Disconnected, timestamp: Timestamp, session: str | None) -> Event:
    conv, at = _session_at(session, timestamp)
    return Link(
        id=joined_id(conv, f"disconnected\x1f{at}\x1f{down.reason}\x1f{down.will_retry}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        state="down",
        reason=down.reason,
        will_retry=down.will_retry,
    )


def _reconnecting(retrying: Reconnecting, timestamp: Timestamp, session: str | None) -> Event:
    conv, at = _session_at(session, timestamp)
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


def _error(error: ErrorData, timestamp: Timestamp, session: str | None) -> Event:
    conv, at = _session_at(session, timestamp)
    return Error(
        id=joined_id(conv, f"error\x1f{at}\x1f{error.code}\x1f{error.message}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        code=error.code,
        message=error.message,
        recoverable=error.recoverable,
    )


_Builder: TypeAlias = Callable[[Any, Timestamp, str | None], Event]
_BUILDERS: Final[dict[type[Any], _Builder]] = {
    ConnectedFrame: _connected,
    DisconnectedFrame: _disconnected,
    ReconnectingFrame: _reconnecting,
    ReconnectedFrame: _reconnected,
    EndedFrame: _ended,
    ErrorFrame: _error,
}
"""The builder of each typed frame but `MessageFrame` (which `_message` builds)."""
_KINDS: Final[dict[str, tuple[Callable[[msgspec.Raw], Any], _Builder]]] = {
    str(t.__struct_config__.tag): (frames.DATA_DECODERS[str(t.__struct_config__.tag)], b)
    for t, b in _BUILDERS.items()
}
"""By event name (but `message`): the decoder of a raw frame's `data`, and its builder."""
_decode_message: Final = frames.DATA_DECODERS["message"]


def message_event(message: NativeMessage, path: str = "$", frame_at: Any = None) -> Message:
    """A native `Message` as the canonical message. `path` is where it sits in its frame;
    `frame_at` is the frame's own `timestamp`, used when the message carries none. The
    message is left as it was (its `metadata` is copied)."""
    return _message(message, frame_at, path, False)


def _message(
    message: NativeMessage, frame_at: Timestamp, path: str = "$.data", owned: bool = True
) -> Message:
    """`message_event`, on the hot path: `path` is where the message sits (a frame's `data` by
    default); `owned` says the message's `metadata` dict may become the event's (the message
    was decoded for this call alone, as by default), saving a copy."""
    event_id, session_id, speaker, data, locale, native_metadata, timestamp = _message_fields(
        message
    )
    conv = _PREFIX + session_id
    stamp = timestamp
    if stamp is None:
        stamp = frame_at  # `None` too: `to_at` says now
    # `to_at` straight: an inline check of a canonical string (to skip the call) no longer
    # pays now that `to_at` checks one in ~200 ns; it cost the other forms a failed check.
    try:
        at = to_at(stamp)
    except ValueError as exc:
        where = "$.timestamp" if timestamp is None else path + ".timestamp"
        raise _bad_time(where, exc) from None
    # Text is most of the traffic: built here, it skips a call on the hot path.
    text = data.text
    if data.type == "text" and text is not None:
        content: Content = _Text(text)
    else:
        content = _content(data, path + ".data")
    metadata: dict[str, Any]
    if native_metadata is None:
        metadata = {} if locale is None else {"locale": locale}
    else:
        metadata = native_metadata if owned else dict(native_metadata)
        if locale is not None:
            metadata["locale"] = locale  # the platform's: wins over a custom key
    action = data.action
    if action is not None and action.metadata:
        metadata["action_metadata"] = action.metadata
    return _Message(
        id=f"{conv}/{event_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_SENDERS[speaker],
        content=content,
        metadata=metadata,
    )


def status_event(session: ChatSession) -> Status:
    """The session's status as a `status` event, at `createdAt` (the session's own time).
    Raises `DecodeError` for a `createdAt` that is no time."""
    conv = _PREFIX + session.session_id
    status = _STATUSES[session.status]
    try:
        at = to_at(session.created_at)
    except ValueError as exc:
        raise _bad_time("$.createdAt", exc).error(0) from None
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
        return [_message(m, None, f"$.messages[{i}]", owned) for i, m in enumerate(messages)]
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
