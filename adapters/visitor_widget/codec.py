"""Visitor widget codec: native frames → canonical events. Pure: no I/O, no logging.

`decode(body, conversation)` accepts one frame `{"event", "data", "at"?}`, an array of them,
the envelope `{"events": [...]}`, or a raw Socket.IO event payload `["<name>", <data>]` (ours).
Ids: conversation `visitor_widget:<chatId>`; a message row's event `<conv>/<message id>`
(`<conv>/<message id>/<n>` for the n-th extra event of one row, e.g. a second attachment);
events the platform does not identify get a `derived_id` from what makes them (the
frame's own time, never the receive time: a re-posted time-less body deduplicates), written
as `joined_id` of one f-string, which gives the same id for half the cost.
A frame without a chat id takes `conversation`; with neither it is invalid (`$.data.chatId`).

Two decode paths give the same result. The fast one decodes every body form straight into
the native Structs (`msgspec.Raw` spans for the frames of arrays and envelopes, each then
decoded typed); the exact one (`_decode_slow`: parse untyped, convert frame by frame) runs
only when the fast one meets something it does not handle (an invalid known frame, a
packet inside an array, a body that is not JSON), because it is the one that names the
frame `index` and JSON `path` of an error. tests/adapters/visitor_widget/test_codec.py
checks that both agree on every fixture and on mutations of them.

Commands go the other way in `commands.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

import msgspec

from adapters.visitor_widget import native as n
from gateway.adapter import Decoded
from gateway.codec import (
    event_id,
    invalid,
    is_utf8,
    joined_id,
    loads,
    path_of,
    tag_reader,
    to_at,
    unparsable,
)
from gateway.errors import (
    DecodeError,
    GatewayError,
    RequestError,
    SessionNotFound,
    VendorError,
)
from gateway.model import (
    Availability,
    Content,
    Ended,
    EndedBy,
    EndReason,
    Error,
    Event,
    File,
    Form,
    Image,
    Message,
    Notice,
    ParticipantJoined,
    ParticipantLeft,
    Party,
    Receipt,
    Role,
    Status,
    Text,
    Typing,
)

DIALECT: Final = n.DIALECT
T = TypeVar("T")

ROLES: Final[dict[str, Role]] = {
    "contact": "user",
    "agent": "agent",
    "trigger": "bot",
    "system": "system",
}
STATUSES: Final = {"pending": "queued", "open": "active", "closed": "completed"}
_JOIN: Final = frozenset({"agent_join", "agent_assign"})
_LEAVE: Final = frozenset({"agent_leave", "agent_unassign"})

# Hoisted constants: built once, not per frame (Parties and Agents are never mutated).
_CONV_PREFIX: Final = f"{DIALECT}:"  # `gateway.codec.conversation_id(DIALECT, x)` is this + x
_SYSTEM: Final = Party(role="system")
_NO_AGENT: Final = n.Agent()
_NO_DATA: Final = n.EventRowData()
_NO_CHAT: Final = "no chat id in the frame nor a ?conversation="
# `str()` of None and the booleans, for derived-id keys: an f-string formats these through
# `format()`, ~60 ns each, where a str is copied as it is.
_NONE, _TRUE, _FALSE = "None", "True", "False"

# The fast path's decoders. A body is a frame or an array far more often than anything else,
# so one decoder tries both at once; array items stay `Raw` spans until each is decoded typed.
_body_decoder: Final[msgspec.json.Decoder[n.Frame | list[msgspec.Raw]]] = msgspec.json.Decoder(
    n.Frame | list[msgspec.Raw]
)
_frame_decoder: Final[msgspec.json.Decoder[n.Frame]] = msgspec.json.Decoder(n.Frame)
_envelope_decoder: Final = msgspec.json.Decoder(n.Envelope)
_event_of: Final = tag_reader("event")
_str_decoder: Final = msgspec.json.Decoder(str)
_QUOTE: Final = ord('"')


def _packet_decoders() -> dict[str, tuple[type[Any], msgspec.json.Decoder[Any]]]:
    """For each event name, its frame Struct and a decoder of that frame's `data` alone (a
    Socket.IO packet `["name", data]` carries the name apart from the data)."""
    out: dict[str, tuple[type[Any], msgspec.json.Decoder[Any]]] = {}
    for name, frame_type in n.FRAME_BY_NAME.items():
        (data,) = (f for f in msgspec.structs.fields(frame_type) if f.name == "data")
        out[name] = (frame_type, msgspec.json.Decoder(data.type))
    return out


_PACKETS: Final = _packet_decoders()


class InvalidField(Exception):
    """A value msgspec accepted but we cannot use (a timestamp that is no time, a missing
    chat id); carries the JSON path inside the frame."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(why)
        self.path = path


# ---------------------------------------------------------------------------------------------
# Decode
#
# `decode` is assigned as the adapter's `decode` itself (no wrapper), so it keeps the whole
# contract: what msgspec raises besides `DecodeError` (`UnicodeDecodeError` for bad UTF-8
# inside a string, `RecursionError` for deep nesting) sends the body to the exact path, whose
# `loads` names it `MalformedJSON`. Every typed decode below catches `_NOT_JSON` for that.
# Any other error met on the fast path goes to the exact path too, which names it (but for
# an `InvalidField` of a one-frame body, named at once as the exact path would): the fast
# path never decides an error the exact path would decide otherwise.

_NOT_JSON: Final = (UnicodeDecodeError, RecursionError)


def decode(body: bytes | str, conversation: str | None = None) -> Decoded:
    """Decode an ingest body (see the module docstring). Raises `MalformedJSON` or
    `DecodeError` (with `index` and `path`); nothing else escapes."""
    if not body.isascii() and not is_utf8(body):  # bad bytes a typed decode could skip unread
        return _decode_slow(body, conversation)
    if body[:10] == b'{"events":':
        # A minified envelope, as platforms send it: skip the frame decode that would fail.
        # (Any other spelling of an envelope gets there too, one failed decode later.)
        return _decode_object(body, conversation)
    try:
        parsed = _body_decoder.decode(body)
    except msgspec.DecodeError:  # an envelope, an unknown event, or an error
        return _decode_object(body, conversation)
    except _NOT_JSON:
        return _decode_slow(body, conversation)
    if parsed.__class__ is list:
        return _decode_array(parsed, body, conversation)
    try:
        return Decoded(_BUILDERS[parsed.__class__](parsed, conversation, False), 0)
    except InvalidField as exc:
        raise DecodeError(f"frame 0: {exc} at {exc.path}", index=0, path=exc.path) from None


def _decode_object(body: bytes | str, conversation: str | None) -> Decoded:
    """A body that is no known frame nor an array: the envelope decoded in one pass, or else
    the exact path."""
    try:
        envelope = _envelope_decoder.decode(body)
    except (msgspec.DecodeError, *_NOT_JSON):
        return _decode_slow(body, conversation)
    if envelope.event is not msgspec.UNSET:  # a frame with an `events` key: not an envelope
        return _decode_slow(body, conversation)
    return _decode_frames(envelope.events, body, conversation)


def _decode_array(items: list[msgspec.Raw], body: bytes | str, conversation: str | None) -> Decoded:
    """An array body: one Socket.IO packet when its first item is a string, else frames."""
    if items and memoryview(items[0])[0] == _QUOTE:  # a Raw span starts at its value
        return _decode_packet(items, body, conversation)
    return _decode_frames(items, body, conversation)


def _decode_frames(
    items: list[msgspec.Raw], body: bytes | str, conversation: str | None
) -> Decoded:
    """Frames of an array or envelope, each decoded typed from its span and mapped at once.
    An unknown event name is counted; any other failure (an invalid frame or field, bad
    UTF-8, deep nesting) hands the whole body to the exact path, which names the frame and
    path of the error (a batch decodes all or nothing)."""
    events: list[Event] = []
    ignored = 0
    for raw in items:
        try:
            frame = _frame_decoder.decode(raw)
            events += _BUILDERS[frame.__class__](frame, conversation, False)
        except msgspec.ValidationError:
            if not _is_unknown(raw):
                return _decode_slow(body, conversation)
            ignored += 1
        except (InvalidField, msgspec.DecodeError, *_NOT_JSON):
            return _decode_slow(body, conversation)
    return Decoded(events, ignored)


def _is_unknown(raw: msgspec.Raw) -> bool:
    """Whether `raw` is an object whose `event` is a name this dialect does not know."""
    try:
        name = _event_of(raw)
    except (msgspec.DecodeError, *_NOT_JSON):
        return False
    return type(name) is str and name not in n.EVENT_NAMES


def _decode_packet(
    items: list[msgspec.Raw], body: bytes | str, conversation: str | None
) -> Decoded:
    """`["name", data]` with a known name and valid data; anything else takes the exact path."""
    if len(items) == 2:
        try:
            known = _PACKETS.get(_str_decoder.decode(items[0]))
            if known is None:
                return _decode_slow(body, conversation)
            make, data_decoder = known
            frame = make(data=data_decoder.decode(items[1]))
            return Decoded(_BUILDERS[make](frame, conversation, False), 0)
        except (InvalidField, msgspec.DecodeError, *_NOT_JSON):
            pass
    return _decode_slow(body, conversation)


def _decode_slow(body: bytes | str, conversation: str | None) -> Decoded:
    """The exact path: parse untyped, then convert frame by frame. It is the reference for
    every error (`MalformedJSON`, or `DecodeError` with the frame `index` and `path`)."""
    raw = _frames_of(loads(body))
    frames: list[n.Frame] = []
    ignored = 0
    for index, item in enumerate(raw):
        frame = _packet_as_frame(item)
        name = frame.get("event") if isinstance(frame, dict) else None
        if isinstance(name, str) and name not in n.EVENT_NAMES:
            ignored += 1  # an event this dialect does not know: counted, never fatal
            continue
        try:
            frames.append(msgspec.convert(frame, n.Frame))
        except msgspec.ValidationError as exc:
            raise invalid(exc, index) from None
        except RecursionError as exc:  # `loads` parsed it, yet converting recursed too deep
            raise unparsable(exc) from None
    return Decoded(_events_of(frames, conversation), ignored)


def _frames_of(body: Any) -> list[Any]:
    if isinstance(body, list):
        return [body] if body and isinstance(body[0], str) else body
    if isinstance(body, dict) and "events" in body and "event" not in body:
        frames = body["events"]
        if not isinstance(frames, list):
            raise DecodeError("`events` must be an array", index=0, path="$.events")
        return frames
    return [body]


def _packet_as_frame(item: Any) -> Any:
    """`["name", data]` (a Socket.IO event payload) as `{"event": name, "data": data}`."""
    if isinstance(item, list) and item and isinstance(item[0], str):
        return {"event": item[0], "data": item[1] if len(item) > 1 else None}
    return item


def _events_of(frames: Iterable[n.Frame], conversation: str | None) -> list[Event]:
    """The events of decoded frames; an `InvalidField` names the frame's index among them."""
    events: list[Event] = []
    for index, frame in enumerate(frames):
        try:
            events += _BUILDERS[frame.__class__](frame, conversation, False)
        except InvalidField as exc:
            msg = f"frame {index}: {exc} at {exc.path}"
            raise DecodeError(msg, index=index, path=exc.path) from None
    return events


def frame_of(name: str, data: Any, at: str | None = None) -> n.Frame | None:
    """A live Socket.IO event as a native frame; `None` for an event name we do not know.
    Raises `msgspec.ValidationError` when a known event breaks its schema."""
    if name not in n.EVENT_NAMES:
        return None
    frame: n.Frame = msgspec.convert({"event": name, "data": data, "at": at}, n.Frame)
    return frame


def frame_events(
    frame: n.Frame, conversation: str | None = None, *, pin: bool = False
) -> list[Event]:
    """One native frame as its canonical events (raises `InvalidField`; `decode` maps it).

    `conversation` is the native conversation id for frames without a chat id; with `pin`
    it is the conversation of every event whatever chat id the frame carries (a session's
    conversation never changes, even when the platform creates its chat later)."""
    return _BUILDERS[frame.__class__](frame, conversation, pin)


# ---------------------------------------------------------------------------------------------
# One builder per frame type, `(frame, conversation, pin) -> events` (see `frame_events`)
#
# These run once per frame, so they are written flat: every call layer costs CPython
# 30-100 ns, more than most of what a builder does. Three patterns repeat inline:
# - the conversation: `conversation if pin else chatId or conversation`, refused when empty
#   (`_conv` says it once, for the cold paths);
# - the frame's time (`_stamp` says it once): `to_at` called once, its `ValueError` turned
#   into `InvalidField` naming the value's path; `key`, what a derived id is built from, is
#   that time, or `""` for a frame without one (it is then stamped with the receive time, and
#   an id built from that would make a re-posted body a new event);
# - derived ids: `joined_id(conv, f"name\x1f{part}\x1f...")` is `derived_id(conv, "name",
#   part, ...)` without its varargs and join (an f-string field is `str(part)` for the str,
#   int, float, bool and None parts used here).


def _message_received(frame: n.MessageReceived, conversation: str | None, pin: bool) -> list[Event]:
    d = frame.data
    conv = _conv(None if pin else d.chatId, conversation)
    return row_events(conv, d.message, frame.at, "$.data.message")


def _agent_typing(frame: n.AgentTyping, conversation: str | None, pin: bool) -> list[Event]:
    d = frame.data
    conv = _conv(None if pin else d.chatId, conversation)
    at, key = _stamp(frame.at)
    typing = d.typing
    agent = d.agentId
    active = typing.is_
    return [
        Typing(
            id=joined_id(
                conv,
                f"typing\x1f{key}\x1f{_NONE if agent is None else agent}"
                f"\x1f{_TRUE if active else _FALSE}",
            ),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            sender=Party("agent", agent),
            active=active,
            preview=typing.text or None,
        )
    ]


def _contact_read(frame: n.ContactRead, conversation: str | None, pin: bool) -> list[Event]:
    d = frame.data
    conv = _conv(None if pin else d.chatId, conversation)
    value = d.lastReadAt
    if value is None or value == "":  # the frame's own time stands in
        at, key = _stamp(frame.at)
    else:
        at, key = _stamp(value, "$.data.lastReadAt")
    by = d.byId
    return [
        Receipt(
            id=joined_id(conv, f"read\x1f{key}\x1f{_NONE if by is None else by}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            sender=Party("user", by),
            status="read",
            up_to=at,
        )
    ]


def _closed(frame: n.Closed, conversation: str | None, pin: bool) -> list[Event]:
    d = frame.data
    conv = _conv(None if pin else d.chatId, conversation)
    close_type = d.closeType
    reason, by = _end_reason(close_type, None)
    events: list[Event] = []
    row = d.message
    if row is not None:
        if row.type == "event" and row.content.type == "chat_close":
            # The row is the close itself; the frame's `closeType`, when it has one, decides.
            return row_events(conv, row, frame.at, "$.data.message", close_type)
        events = row_events(conv, row, frame.at, "$.data.message")
    at, key = _stamp(frame.at)
    events.append(
        Ended(
            id=joined_id(conv, f"closed\x1f{key}\x1f{_NONE if close_type is None else close_type}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            reason=reason,
            by=by,
        )
    )
    return events


def _agent_joined(
    frame: n.AgentJoined | n.AgentAssigned, conversation: str | None, pin: bool
) -> list[Event]:
    joined = _agent_change(frame, conversation, pin, ParticipantJoined)
    conv = joined.conversation_id
    return [status_event(conv, "open", joined.at), joined]


def _agent_left(
    frame: n.AgentLeft | n.AgentUnassigned, conversation: str | None, pin: bool
) -> list[Event]:
    return [_agent_change(frame, conversation, pin, ParticipantLeft)]


def _agent_change(
    frame: n.AgentJoined | n.AgentAssigned | n.AgentLeft | n.AgentUnassigned,
    conversation: str | None,
    pin: bool,
    change: type[ParticipantJoined | ParticipantLeft],
) -> ParticipantJoined | ParticipantLeft:
    """An agent's joining or leaving (`change`). The agent is `agent` (joined, left),
    `assigned` or `unassigned`; who (un)assigned them goes to `metadata` as the row's
    `content.data` says it. The id is the frame's row's when it carries one (`row_events` of
    that row makes the same event), else derived from the change, the frame's time and the
    agent."""
    d = frame.data
    conv = _conv(None if pin else d.chatId, conversation)
    metadata: dict[str, Any] = {}
    if isinstance(d, n.AssignedData):
        agent = d.assigned
        if d.assignedBy is not None and d.assignedBy.id is not None:
            metadata["assigned_by"] = d.assignedBy.id
    elif isinstance(d, n.UnassignedData):
        agent = d.unassigned
        if d.unassignedBy is not None and d.unassignedBy.id is not None:
            metadata["unassigned_by"] = d.unassignedBy.id
    else:
        agent = d.agent or _NO_AGENT
    agent_id = agent.id
    row = d.message
    if row is not None:
        at = _row_at(row.createdAt, frame.at, "$.data.message")
        eid = f"{conv}/{row.id}"
        row_agent, row_metadata = _row_agent(row, "$.data.message")
        agent_id = agent_id or row_agent
        metadata = {**row_metadata, **metadata}  # the event `row_events` makes of the row
    else:
        at, key = _stamp(frame.at)
        name = "joined" if change is ParticipantJoined else "left"
        eid = joined_id(conv, f"{name}\x1f{key}\x1f{_NONE if agent_id is None else agent_id}")
    return change(
        id=eid,
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=Party("agent", agent_id, agent.nickname or agent.fullname),
        metadata=metadata,
    )


def _account(
    frame: n.AccountUpdated | n.AccountStatusUpdated, conversation: str | None, pin: bool
) -> list[Event]:
    if not conversation:  # an account event carries no chat id
        raise InvalidField("$.data.chatId", _NO_CHAT)
    conv = _CONV_PREFIX + conversation
    d = frame.data
    status = d if isinstance(d, str) else d.status
    if status is None:  # the account changed in a way no canonical event tells
        return []
    at, key = _stamp(frame.at)
    return [
        Availability(  # `availability_event(conv, status, at, key)`
            id=joined_id(conv, f"availability\x1f{status}\x1f{key}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            online=status == "online",
        )
    ]


def _rated(frame: n.Rated, conversation: str | None, pin: bool) -> list[Event]:
    """The visitor rated the chat: the events of its `rate_form` row (the form, and the rating
    as a notice, as that row makes them wherever it appears), else a rating notice of its own."""
    d = frame.data
    conv = _conv(None if pin else d.chatId, conversation)
    rating = d.rating
    row = d.message
    if row is not None:
        # The frame's rating is the authority over what the row's `content.data` says.
        rid = f"{conv}/{row.id}/rating"
        events = [e for e in row_events(conv, row, frame.at, "$.data.message") if e.id != rid]
        at = _row_at(row.createdAt, frame.at, "$.data.message")
        return [*events, rating_notice(rid, conv, at, rating)]
    at, key = _stamp(frame.at)
    return [rating_notice(joined_id(conv, f"rated\x1f{key}"), conv, at, rating)]


def _deleted(frame: n.Deleted, conversation: str | None, pin: bool) -> list[Event]:
    """A deleted chat has ended; a chat is deleted once, so the id is derived from that alone."""
    conv = _conv(None if pin else frame.data.chatId, conversation)
    at, _ = _stamp(frame.at)
    return [
        Ended(
            id=joined_id(conv, "deleted"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            reason="completed",
            by="system",
            metadata={"deleted": True},
        )
    ]


def _server_error(frame: n.ServerError, conversation: str | None, pin: bool) -> list[Event]:
    conv = _conv(None, conversation)
    at, key = _stamp(frame.at)
    return [error_event(conv, frame.data, at, key)]


def _initialized(frame: n.Initialized, conversation: str | None, pin: bool) -> list[Event]:
    d = frame.data
    chat = d.chat
    native = conversation if pin else (chat.id if chat is not None else d.visitor.chatId)
    native = native or conversation
    if not native:
        raise InvalidField("$.data.chat.id", _NO_CHAT)
    conv = _CONV_PREFIX + native
    at, key = _stamp(frame.at)
    events: list[Event] = []
    if chat is not None:
        status = chat.status
        events.append(
            Status(  # `status_event(conv, status, at)`
                id=joined_id(conv, f"status\x1f{status}"),
                conversation_id=conv,
                dialect=DIALECT,
                at=at,
                status=STATUSES[status],  # type: ignore[arg-type]
            )
        )
    account = d.account
    if account is not None:
        online = account.status
        events.append(
            Availability(  # `availability_event(conv, online, at, key)`
                id=joined_id(conv, f"availability\x1f{online}\x1f{key}"),
                conversation_id=conv,
                dialect=DIALECT,
                at=at,
                online=online == "online",
            )
        )
    if chat is not None:
        fallback = frame.at
        for i, row in enumerate(chat.messages):
            try:
                events += row_events(conv, row, fallback)
            except InvalidField:
                # Redone with the row's path, built only now: the f-string costs more than
                # the rest of a row's loop, and only an error needs it.
                row_events(conv, row, fallback, f"$.data.chat.messages[{i}]")
                raise  # pragma: no cover - the same row fails the same way
    return events


_BUILDERS: Final[dict[type, Callable[[Any, str | None, bool], list[Event]]]] = {
    n.MessageReceived: _message_received,
    n.AgentTyping: _agent_typing,
    n.ContactRead: _contact_read,
    n.Closed: _closed,
    n.AgentJoined: _agent_joined,
    n.AgentAssigned: _agent_joined,
    n.AgentLeft: _agent_left,
    n.AgentUnassigned: _agent_left,
    n.Rated: _rated,
    n.Deleted: _deleted,
    n.AccountUpdated: _account,
    n.AccountStatusUpdated: _account,
    n.ServerError: _server_error,
    n.Initialized: _initialized,
}
"""The builder of each frame type: a dict lookup instead of a chain of class patterns."""
assert set(_BUILDERS) == set(n.FRAME_TYPES), "every frame type needs a builder"


# ---------------------------------------------------------------------------------------------
# Events


def row_events(
    conv: str,
    row: n.MessageRow,
    fallback_at: n.Timestamp = None,
    path: str = "$",
    close_type: str | None = None,
) -> list[Event]:
    """A chat row (message or event) as canonical events; the first has id `<conv>/<row id>`.
    `path` is the row's JSON path, for errors; `close_type` (a `chat.closed` frame's) decides a
    `chat_close` row's reason over the row's own `closeType`."""
    created = row.createdAt
    if created is None or created == "":  # the frame's time stands in, else now
        at = _row_at(created, fallback_at, path)
    else:  # `_row_at`, inlined for a row with its own time (nearly every row)
        try:
            at = to_at(created)
        except ValueError:
            raise InvalidField(f"{path}.createdAt", f"not a timestamp: {created!r}") from None
    eid = f"{conv}/{row.id}"
    content = row.content
    kind = content.type
    text = content.text
    if row.type == "message":
        if kind == "text" and text and not row.attachments:  # the hot path: one text message
            return [
                Message(
                    id=eid,
                    conversation_id=conv,
                    dialect=DIALECT,
                    at=at,
                    sender=_sender(row),
                    content=Text(text),
                )
            ]
        if kind == "rate_form":
            form: list[Event] = [
                Form(
                    id=eid,
                    conversation_id=conv,
                    dialect=DIALECT,
                    at=at,
                    request_id=row.id,
                    name="rate_form",
                )
            ]
            rating = _rating_of(content.data)
            if rating is not None:  # the visitor has answered the form
                form.append(rating_notice(f"{eid}/rating", conv, at, rating))
            return form
        sender = _sender(row)
        contents = _contents(row, path)
        if not contents:
            raise InvalidField(
                f"{path}.content.text", "a message with neither text nor attachments"
            )
        return [
            Message(
                id=eid if i == 0 else event_id(conv, f"{row.id}/{i}"),
                conversation_id=conv,
                dialect=DIALECT,
                at=at,
                sender=sender,
                content=item,
            )
            for i, item in enumerate(contents)
        ]
    # an event row: its agent is in `content.data` (the row's own `agentId` is null)
    if kind in _JOIN or kind in _LEAVE:
        agent_id, metadata = _row_agent(row, path)
        change = ParticipantJoined if kind in _JOIN else ParticipantLeft
        return [
            change(
                id=eid,
                conversation_id=conv,
                dialect=DIALECT,
                at=at,
                participant=Party("agent", agent_id),
                metadata=metadata,
            )
        ]
    if kind == "chat_close":
        data = _event_data(row, path)
        reason, by = _end_reason(close_type or data.closeType, row.subType)
        agent_id = data.agentId or row.agentId
        return [
            Ended(
                id=eid,
                conversation_id=conv,
                dialect=DIALECT,
                at=at,
                reason=reason,
                by=by,
                text=text or None,
                metadata={} if agent_id is None else {"agent_id": agent_id},
            )
        ]
    if text:
        return [
            Notice(id=eid, conversation_id=conv, dialect=DIALECT, at=at, kind="info", text=text)
        ]
    return []


def rating_notice(eid: str, conv: str, at: str, rating: n.Rating) -> Notice:
    """The visitor's rating of the chat, as a notice (the model has no rating event: **ours**);
    `metadata` holds it as data."""
    text = f"Chat rated {rating.value:g}" + (f": {rating.text}" if rating.text else "")
    metadata: dict[str, Any] = {"rating": rating.value}
    if rating.text:
        metadata["rating_text"] = rating.text
    return Notice(
        id=eid,
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="info",
        text=text,
        metadata=metadata,
    )


def status_event(conv: str, native_status: str, at: str) -> Status:
    """The chat's status; its id is the native status, so the same status never repeats."""
    return Status(
        id=joined_id(conv, f"status\x1f{native_status}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        status=STATUSES[native_status],  # type: ignore[arg-type]
    )


def availability_event(conv: str, status: str, at: str, key: str | None = None) -> Availability:
    """`key`: the time the id is built from (`at` unless the frame carried no time)."""
    return Availability(
        id=joined_id(conv, f"availability\x1f{status}\x1f{at if key is None else key}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        online=status == "online",
    )


def error_of(err: n.ServerErrorData) -> GatewayError:
    """An error ack or `server.error` as our error: 404/`not_found` → `SessionNotFound`,
    400/422/`bad_request` → `RequestError`, anything else → `VendorError` (recoverable)."""
    return _error_class(err)(err.message, **_error_details(err))


def _error_class(err: n.ServerErrorData) -> type[GatewayError]:
    """The class `error_of` makes (an event needs its `code` and `recoverable`, no instance)."""
    code = str(err.code)
    status = int(code) if code.isdigit() else None
    if status == 404 or err.type == "not_found":
        return SessionNotFound
    if status in (400, 422) or err.type in ("bad_request", "validation_error"):
        return RequestError
    return VendorError


def _error_details(err: n.ServerErrorData) -> dict[str, Any]:
    """The error's details as `GatewayError` keeps them (`None` values left out; no dict
    comprehension: in CPython 3.11 that is a function call and a second dict)."""
    details: dict[str, Any] = {}
    if err.code is not None:
        details["vendor_code"] = err.code
    if err.type is not None:
        details["vendor_type"] = err.type
    if err.event is not None:
        details["event"] = err.event
    return details


def error_event(conv: str, err: n.ServerErrorData, at: str, key: str | None = None) -> Error:
    cls = _error_class(err)
    key = at if key is None else key
    return Error(
        id=joined_id(
            conv, f"error\x1f{key}\x1f{err.code}\x1f{err.type}\x1f{err.event}\x1f{err.message}"
        ),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        code=cls.code,
        message=err.message,
        recoverable=cls.recoverable,
        metadata=_error_details(err),
    )


def _end_reason(close_type: object, sub_type: str | None) -> tuple[EndReason, EndedBy | None]:
    text = close_type if isinstance(close_type, str) else ""
    if "agent" in text or (not text and sub_type == "agent"):
        return "agent", "agent"
    if "contact" in text or "visitor" in text or (not text and sub_type == "contact"):
        return "user", "user"
    if "inactiv" in text or "timeout" in text or "idle" in text:
        return "inactivity", "system"
    return "completed", "system"


def _sender(row: n.MessageRow) -> Party:
    """Who wrote a message row, by its `subType` (`ROLES`; unknown ones are the system). A
    trigger message names its automation in `trigger {id, name}`."""
    sub_type = row.subType
    if sub_type == "agent":
        return Party("agent", row.agentId)
    if sub_type == "contact":
        return Party("user", row.visitorId)
    if sub_type == "trigger":
        trigger = row.trigger
        return Party("bot") if trigger is None else Party("bot", trigger.id, trigger.name)
    return _SYSTEM


def _row_agent(row: n.MessageRow, path: str) -> tuple[str | None, dict[str, Any]]:
    """The agent an `agent_*` event row is about, and who (un)assigned them as metadata:
    `content.data.agentId` (join, leave), `assigned` (assign), `unassigned` (unassign); the
    row's own `agentId` only where `content.data` names no one."""
    data = _event_data(row, path)
    kind = row.content.type
    if kind == "agent_assign":
        by = {} if data.assignedBy is None else {"assigned_by": data.assignedBy}
        return data.assigned or row.agentId, by
    if kind == "agent_unassign":
        by = {} if data.unassignedBy is None else {"unassigned_by": data.unassignedBy}
        return data.unassigned or row.agentId, by
    return data.agentId or row.agentId, {}


def _event_data(row: n.MessageRow, path: str) -> n.EventRowData:
    """An event row's `content.data` (absent or null: no data)."""
    data = row.content.data
    return _NO_DATA if data is None else _typed(data, n.EventRowData, f"{path}.content.data")


def _typed(value: Any, kind: type[T], path: str) -> T:
    """`value` (a part of a frame that msgspec left untyped) as `kind`; a mismatch is an
    `InvalidField` at its JSON path under `path`."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        message = str(exc).partition(" - at `")[0]
        raise InvalidField(path + path_of(exc)[1:], message) from None


def _rating_of(data: Any) -> n.Rating | None:
    """The rating a `rate_form` row's `content.data` holds, once the visitor has rated (a
    number `value`); None before (the form's data before an answer is not public)."""
    if not isinstance(data, dict):
        return None
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    text = data.get("text")
    return n.Rating(value=value, text=text if isinstance(text, str) else None)


def _contents(row: n.MessageRow, path: str) -> list[Content]:
    """A message row's contents; an attachment without a `url` is an `InvalidField` (the
    canonical Image and File refuse one without a location). The row's text is the caption of
    a first attachment that is an image, else a `Text` before the attachments. An upload row
    without `attachments` describes its file in `content.data` (`MessageContent.Upload`)."""
    text = row.content.text
    attachments = row.attachments
    data_path = f"{path}.attachments"
    if not attachments and row.content.type == "upload" and row.content.data is not None:
        data_path = f"{path}.content.data"
        attachments = [_typed(row.content.data, n.Attachment, data_path)]
    if not attachments:
        return [Text(text)] if text is not None else []
    contents: list[Content] = []
    caption = text or None  # the first attachment's
    for i, a in enumerate(attachments):
        if not a.url:
            where = f"{data_path}[{i}].url" if row.attachments else f"{data_path}.url"
            raise InvalidField(where, "an attachment without a url")
        if a.type == "image":
            contents.append(Image(url=a.url, file_name=a.fileName, caption=caption))
        else:
            if caption:
                contents.append(Text(caption))
            contents.append(
                File(url=a.url, file_name=a.fileName, mime_type=a.fileType, size=a.size)
            )
        caption = None
    return contents


def _conv(native: str | None, conversation: str | None, path: str = "$.data.chatId") -> str:
    """The canonical conversation of a frame: its chat id `native`, else `conversation`."""
    native = native or conversation
    if not native:
        raise InvalidField(path, _NO_CHAT)
    return _CONV_PREFIX + native


def _row_at(value: n.Timestamp, fallback: n.Timestamp, row_path: str) -> str:
    """A row's time: its `createdAt`, else the frame's `at` (`fallback`), else now, through
    `to_at`; its `ValueError` as `InvalidField` naming the value's path. The path is built
    only when there is an error (this is on every row's path)."""
    if (value is None or value == "") and fallback is not None and fallback != "":
        value, path = fallback, "$.at"
    else:
        path = ""
    try:
        return to_at(value)
    except ValueError:
        path = path or f"{row_path}.createdAt"
        raise InvalidField(path, f"not a timestamp: {value!r}") from None


def _stamp(value: n.Timestamp, path: str = "$.at") -> tuple[str, str]:
    """`(at, key)` of a frame's time `value` (by default its own `at`): the event's time
    through `to_at` (now when there is none), its `ValueError` as `InvalidField` at `path`;
    and the time a derived id is built from, `""` for a frame without one (its `at` is then
    the receive time, and an id built from that would make a re-posted body a new event)."""
    if value is None or value == "":
        return to_at(value), ""
    try:
        at = to_at(value)
    except ValueError:
        raise InvalidField(path, f"not a timestamp: {value!r}") from None
    return at, at
