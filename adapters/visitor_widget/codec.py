"""Visitor widget codec: native frames → canonical events. Pure: no I/O, no logging.

`decode(body, conversation)` accepts one frame `{"event", "data", "at"?}`, an array of them,
the envelope `{"events": [...]}`, or a raw Socket.IO event payload `["<name>", <data>]` (ours).
Ids: conversation `visitor_widget:<chatId>`; a message row's event `<conv>/<message id>`
(`<conv>/<message id>/<n>` for the n-th extra event of one row, e.g. a second attachment);
events the platform does not identify get a `derived_id` from what makes them (the
frame's own time, never the receive time: a re-posted time-less body deduplicates).
A frame without a chat id takes `conversation`; with neither it is invalid (`$.data.chatId`).

Commands go the other way in `commands.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from adapters.visitor_widget import native as n
from gateway.adapter import Decoded
from gateway.codec import conversation_id, derived_id, event_id, invalid, loads, to_at
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

DIALECT = n.DIALECT

ROLES: dict[str, Role] = {"contact": "user", "agent": "agent", "trigger": "bot", "system": "system"}
STATUSES = {"pending": "queued", "open": "active", "closed": "completed"}
_JOIN = frozenset({"agent_join", "agent_assign"})
_LEAVE = frozenset({"agent_leave", "agent_unassign"})

_fast_decoder: msgspec.json.Decoder[n.Frame | list[n.Frame]] = msgspec.json.Decoder(
    n.Frame | list[n.Frame]
)


class InvalidField(Exception):
    """A value msgspec accepted but we cannot use (a timestamp that is no time, a missing
    chat id); carries the JSON path inside the frame."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(why)
        self.path = path


# ---------------------------------------------------------------------------------------------
# Decode


def decode(body: bytes | str, conversation: str | None = None) -> Decoded:
    """Decode an ingest body (see the module docstring). Raises `MalformedJSON` or
    `DecodeError` (with `index` and `path`); nothing else escapes."""
    try:
        parsed = _fast_decoder.decode(body)
    except msgspec.DecodeError:  # unknown names, envelopes, bad frames: the careful path
        return _decode_slow(body, conversation)
    if parsed.__class__ is n.MessageReceived:  # the hot path: one text message
        fast = _text_message(parsed, conversation)
        if fast is not None:
            return Decoded(fast, 0)
    if isinstance(parsed, list):
        return Decoded(_events_of(parsed, conversation), 0)
    try:
        return Decoded(frame_events(parsed, conversation), 0)
    except InvalidField as exc:
        raise DecodeError(f"frame 0: {exc} at {exc.path}", index=0, path=exc.path) from None


def _decode_slow(body: bytes | str, conversation: str | None) -> Decoded:
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
    events: list[Event] = []
    for index, frame in enumerate(frames):
        try:
            events += frame_events(frame, conversation)
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
    if frame.__class__ is n.MessageReceived:
        fast = _text_message(frame, conversation, pin)
        if fast is not None:
            return fast

    def conv_of(chat_id: str | None, path: str = "$.data.chatId") -> str:
        return _conv(None if pin else chat_id, conversation, path)

    match frame:
        case n.MessageReceived(data=d):
            conv = conv_of(d.chatId)
            return row_events(conv, d.message, frame.at, "$.data.message")
        case n.AgentTyping(data=d):
            conv = conv_of(d.chatId)
            at, key = _stamp(frame.at, "$.at")
            sender = Party(role="agent", id=d.agentId)
            eid = derived_id(conv, "typing", key, d.agentId, d.typing.is_)
            return [
                Typing(
                    id=eid,
                    conversation_id=conv,
                    dialect=DIALECT,
                    at=at,
                    sender=sender,
                    active=d.typing.is_,
                    preview=d.typing.text or None,
                )
            ]
        case n.ContactRead(data=d):
            conv = conv_of(d.chatId)
            at, key = _stamp(d.lastReadAt, "$.data.lastReadAt", frame.at)
            return [_receipt(conv, at, d.byId, key)]
        case n.Closed(data=d):
            conv = conv_of(d.chatId)
            return _closed_events(conv, d, frame.at)
        case n.AgentJoined(data=d) | n.AgentAssigned(data=d):
            conv = conv_of(d.chatId)
            at, eid, party = _agent_change(conv, d, frame, "joined")
            common: dict[str, Any] = {"conversation_id": conv, "dialect": DIALECT, "at": at}
            return [
                status_event(conv, "open", at),
                ParticipantJoined(id=eid, participant=party, **common),
            ]
        case n.AgentLeft(data=d) | n.AgentUnassigned(data=d):
            conv = conv_of(d.chatId)
            at, eid, party = _agent_change(conv, d, frame, "left")
            common = {"conversation_id": conv, "dialect": DIALECT, "at": at}
            return [ParticipantLeft(id=eid, participant=party, **common)]
        case n.AccountUpdated(data=d) | n.AccountStatusUpdated(data=d):
            conv = conv_of(None)
            status = d if isinstance(d, str) else d.status
            at, key = _stamp(frame.at, "$.at")
            return [availability_event(conv, status, at, key)]
        case n.ServerError(data=d):
            conv = conv_of(None)
            at, key = _stamp(frame.at, "$.at")
            return [error_event(conv, d, at, key)]
        case n.Initialized(data=d):
            chat_id = d.chat.id if d.chat is not None else d.visitor.chatId
            conv = conv_of(chat_id, "$.data.chat.id")
            at, key = _stamp(frame.at, "$.at")
            events: list[Event] = []
            if d.chat is not None:
                events.append(status_event(conv, d.chat.status, at))
            if d.account is not None:
                events.append(availability_event(conv, d.account.status, at, key))
            if d.chat is not None:
                for i, row in enumerate(d.chat.messages):
                    events += row_events(conv, row, frame.at, f"$.data.chat.messages[{i}]")
            return events
    raise AssertionError(f"unhandled frame {frame!r}")  # pragma: no cover - Frame is closed


def _text_message(
    frame: n.MessageReceived, conversation: str | None, pin: bool = False
) -> list[Event] | None:
    """The hot path, inlined: one text message with its own `createdAt`, else `None`."""
    row = frame.data.message
    content = row.content
    native = conversation if pin else frame.data.chatId or conversation
    if (
        native
        and content.type == "text"
        and content.text
        and row.type == "message"
        and not row.attachments
        and row.createdAt  # else the frame's `at` is the fallback: the careful path
    ):
        try:
            at = to_at(row.createdAt)
        except ValueError:
            return None  # the careful path says where
        conv = f"{DIALECT}:{native}"
        return [
            Message(
                id=f"{conv}/{row.id}",
                conversation_id=conv,
                dialect=DIALECT,
                at=at,
                sender=_sender(row),
                content=Text(content.text),
            )
        ]
    return None


def row_events(
    conv: str, row: n.MessageRow, fallback_at: n.Timestamp = None, path: str = "$"
) -> list[Event]:
    """A chat row (message or event) as canonical events; the first has id `<conv>/<row id>`."""
    at = _at(row.createdAt, f"{path}.createdAt", fallback_at)
    eid = f"{conv}/{row.id}"
    kind = row.content.type
    if row.type == "message" and kind == "text" and not row.attachments and row.content.text:
        return [  # the hot path: one text message
            Message(
                id=eid,
                conversation_id=conv,
                dialect=DIALECT,
                at=at,
                sender=_sender(row),
                content=Text(row.content.text),
            )
        ]
    common: dict[str, Any] = {"conversation_id": conv, "dialect": DIALECT, "at": at}
    if row.type == "event":
        if kind in _JOIN:
            return [ParticipantJoined(id=eid, participant=_agent(row.agentId), **common)]
        if kind in _LEAVE:
            return [ParticipantLeft(id=eid, participant=_agent(row.agentId), **common)]
        if kind == "chat_close":
            data = row.content.data
            close_type = data.get("closeType") if isinstance(data, dict) else None
            reason, by = _end_reason(close_type, row.subType)
            return [Ended(id=eid, reason=reason, by=by, text=row.content.text or None, **common)]
        if row.content.text:
            return [Notice(id=eid, kind="info", text=row.content.text, **common)]
        return []
    if kind == "rate_form":
        return [Form(id=eid, request_id=row.id, name="rate_form", **common)]
    sender = _sender(row)
    contents = _contents(row)
    if not contents:
        raise InvalidField(f"{path}.content.text", "a message with neither text nor attachments")
    return [
        Message(
            id=eid if i == 0 else event_id(conv, f"{row.id}/{i}"),
            sender=sender,
            content=content,
            **common,
        )
        for i, content in enumerate(contents)
    ]


def status_event(conv: str, native_status: str, at: str) -> Status:
    """The chat's status; its id is the native status, so the same status never repeats."""
    return Status(
        id=derived_id(conv, "status", native_status),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        status=STATUSES[native_status],  # type: ignore[arg-type]
    )


def availability_event(conv: str, status: str, at: str, key: str | None = None) -> Availability:
    """`key`: the time the id is built from (`at` unless the frame carried no time)."""
    return Availability(
        id=derived_id(conv, "availability", status, at if key is None else key),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        online=status == "online",
    )


def error_of(err: n.ServerErrorData) -> GatewayError:
    """An error ack or `server.error` as our error: 404/`not_found` → `SessionNotFound`,
    400/422/`bad_request` → `RequestError`, anything else → `VendorError` (recoverable)."""
    details: dict[str, Any] = {"vendor_code": err.code, "vendor_type": err.type, "event": err.event}
    code = str(err.code)
    status = int(code) if code.isdigit() else None
    if status == 404 or err.type == "not_found":
        return SessionNotFound(err.message, **details)
    if status in (400, 422) or err.type in ("bad_request", "validation_error"):
        return RequestError(err.message, **details)
    return VendorError(err.message, **details)


def error_event(conv: str, err: n.ServerErrorData, at: str, key: str | None = None) -> Error:
    exc = error_of(err)
    key = at if key is None else key
    return Error(
        id=derived_id(conv, "error", key, err.code, err.type, err.event, err.message),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        code=exc.code,
        message=err.message,
        recoverable=exc.recoverable,
        metadata=exc.details,
    )


def _receipt(conv: str, at: str, by_id: str | None, key: str) -> Event:
    return Receipt(
        id=derived_id(conv, "read", key, by_id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=Party(role="user", id=by_id),
        status="read",
        up_to=at,
    )


def _closed_events(conv: str, d: n.ClosedData, frame_at: n.Timestamp) -> list[Event]:
    reason, by = _end_reason(d.closeType, None)
    if d.message is not None:
        events = row_events(conv, d.message, frame_at, "$.data.message")
        if d.message.type == "event" and d.message.content.type == "chat_close":
            if d.closeType:  # the frame's close type is the authority over the row's guess
                ended = events[0]
                assert isinstance(ended, Ended)
                events[0] = msgspec.structs.replace(ended, reason=reason, by=by)
            return events
    else:
        events = []
    at, key = _stamp(frame_at, "$.at")
    ended = Ended(
        id=derived_id(conv, "closed", key, d.closeType),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason=reason,
        by=by,
    )
    return [*events, ended]


def _agent_change(conv: str, d: n.AgentData, frame: n.Frame, what: str) -> tuple[str, str, Party]:
    agent = d.agent or n.Agent()
    row = d.message
    if row is not None:
        at = _at(row.createdAt, "$.data.message.createdAt", frame.at)
        eid = event_id(conv, row.id)
        agent_id = agent.id or row.agentId
    else:
        at, key = _stamp(frame.at, "$.at")
        eid = derived_id(conv, what, key, agent.id)
        agent_id = agent.id
    name = agent.nickname or agent.fullName or agent.name
    return at, eid, Party(role="agent", id=agent_id, name=name)


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
    role = ROLES.get(row.subType, "system")
    if role == "user":
        return Party(role=role, id=row.visitorId)
    if role == "agent":
        return Party(role=role, id=row.agentId)
    if role == "bot":
        return Party(role=role, id=row.triggerId)
    return Party(role=role)


def _agent(agent_id: str | None) -> Party:
    return Party(role="agent", id=agent_id)


def _contents(row: n.MessageRow) -> list[Content]:
    text = row.content.text
    if not row.attachments:
        return [Text(text)] if text is not None else []
    contents: list[Content] = []
    for a in row.attachments:
        if a.type == "image":
            contents.append(Image(url=a.url, file_name=a.fileName))
        else:
            contents.append(
                File(url=a.url, file_name=a.fileName, mime_type=a.fileType, size=a.size)
            )
    if text:
        first = contents[0]
        if isinstance(first, Image):
            contents[0] = msgspec.structs.replace(first, caption=text)
        else:
            contents.insert(0, Text(text))
    return contents


def _conv(chat_id: str | None, conversation: str | None, path: str = "$.data.chatId") -> str:
    native = chat_id or conversation
    if not native:
        raise InvalidField(path, "no chat id in the frame nor a ?conversation=")
    return conversation_id(DIALECT, native)


def _at(value: n.Timestamp, path: str, fallback: n.Timestamp = None) -> str:
    """`value` (else `fallback`, else now) through `to_at`; its `ValueError` as `InvalidField`
    naming the JSON path of the value that is no time."""
    if (value is None or value == "") and fallback is not None and fallback != "":
        value, path = fallback, "$.at"
    try:
        return to_at(value)
    except ValueError:
        raise InvalidField(path, f"not a timestamp: {value!r}") from None


def _stamp(value: n.Timestamp, path: str, fallback: n.Timestamp = None) -> tuple[str, str]:
    """`(at, key)`: the event's time as `_at`, and the time its derived id is built from,
    which is `""` when the frame carries no time (then `at` is the receive time, and an id
    built from it would make a re-posted body a new event)."""
    at = _at(value, path, fallback)
    timed = (value is not None and value != "") or (fallback is not None and fallback != "")
    return at, at if timed else ""
