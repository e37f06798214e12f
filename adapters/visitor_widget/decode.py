"""Visitor widget frames → canonical events: the dialect's spec for the shared decode pipeline
(`gateway.decoding`). Pure: no I/O, no logging.

A body is one frame `{"event", "data", "at"?}`, an array of them, or the envelope
`{"events": [...]}` (native.py). Ids: the conversation is `visitor_widget:<chatId>`; a chat
row's event is `<conv>/<row id>` (`<conv>/<row id>/<n>` for the n-th extra event of one row,
e.g. a second attachment, and `<conv>/<row id>/rating` for a rating); an event the platform
does not identify gets a derived id from what makes it and the frame's own time, never the
receive time, so a re-posted time-less body deduplicates. A frame without a chat id takes the
caller's conversation (`?conversation=`); with the option `pin` (`PIN`: a connector's
session) every frame takes it, whatever chat id it names (a session's conversation never
changes, even when the platform creates its chat later).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec

from adapters.visitor_widget import errors
from adapters.visitor_widget import native as n
from gateway.codec import event_id, to_at
from gateway.decoding import Envelope, Refused, Scope, Spec
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
    SessionStatus,
    Status,
    Text,
    Typing,
)

T = TypeVar("T")
E = TypeVar("E", bound=Event)

STATUSES: dict[str, SessionStatus] = {"pending": "queued", "open": "active", "closed": "completed"}
PIN = {"pin": True}
"""The options of a connector's decode: every frame in the session's conversation."""
_CHANGES: dict[str, type[ParticipantJoined | ParticipantLeft]] = {
    "agent_join": ParticipantJoined,
    "agent_assign": ParticipantJoined,
    "agent_leave": ParticipantLeft,
    "agent_unassign": ParticipantLeft,
}
_AGENT_FIELDS = {  # an event row's kind: its `content.data`'s agent, who did it, metadata key
    "agent_assign": ("assigned", "assignedBy", "assigned_by"),
    "agent_unassign": ("unassigned", "unassignedBy", "unassigned_by"),
}


def build(frame: n.Frame, scope: Scope) -> Iterable[Event]:
    """One native frame as its canonical events."""
    at = frame.at
    match frame:
        case n.MessageReceived(data=d):
            return _row(scope, d.message, at, "$.data.message")
        case n.AgentTyping(data=d):
            at, key = _stamp(scope, at)
            active, preview, sender = d.typing.is_, d.typing.text or None, Party("agent", d.agentId)
            eid = scope.event_id("typing", key, d.agentId, active)
            return [_event(Typing, scope, eid, at, sender=sender, active=active, preview=preview)]
        case n.ContactRead(data=d):
            if d.lastReadAt is None or d.lastReadAt == "":  # the frame's own time stands in
                at, key = _stamp(scope, at)
            else:
                at, key = _stamp(scope, d.lastReadAt, "$.data.lastReadAt")
            eid, sender = scope.event_id("read", key, d.byId), Party("user", d.byId)
            return [_event(Receipt, scope, eid, at, sender=sender, status="read", up_to=at)]
        case n.Closed(data=d):
            return _closed(scope, frame, d)
        case n.AgentJoined() | n.AgentAssigned():
            joined = _agent_change(scope, frame, ParticipantJoined)
            return [_status(scope, "open", joined.at), joined]
        case n.AgentLeft() | n.AgentUnassigned():
            return [_agent_change(scope, frame, ParticipantLeft)]
        case n.Rated(data=d):
            return _rated(scope, at, d)
        case n.Deleted():  # a deleted chat has ended; a chat is deleted once: the id says that
            eid, at = scope.event_id("deleted"), _stamp(scope, at)[0]
            ended = {"reason": "completed", "by": "system", "metadata": {"deleted": True}}
            return [_event(Ended, scope, eid, at, **ended)]
        case n.AccountUpdated(data=d) | n.AccountStatusUpdated(data=d):
            status = d if isinstance(d, str) else d.status
            if status is None:  # the account changed in a way no canonical event tells
                return []
            return [_availability(scope, status, *_stamp(scope, at))]
        case n.ServerError(data=d):
            return [_error(scope, d, *_stamp(scope, at))]
        case n.Initialized(data=d):
            return _initialized(scope, at, d)


def conversation(frame: n.Frame, scope: Scope) -> str | None:
    """A frame's native conversation: its chat id, else the caller's (always, with `pin`)."""
    if scope.options.get("pin"):
        return scope.conversation
    d = frame.data
    if isinstance(d, n.InitializedData):
        chat_id = d.chat.id if d.chat is not None else d.visitor.chatId
    else:
        chat_id = getattr(d, "chatId", None)  # account and server events carry none
    return chat_id or scope.conversation


def _event(make: type[E], scope: Scope, eid: str, at: str, /, **fields: Any) -> E:
    """An event (`make`: its class) in the frame's conversation."""
    return make(id=eid, conversation_id=scope.conversation_id, dialect=n.DIALECT, at=at, **fields)


def _closed(scope: Scope, frame: n.Closed, d: n.ClosedData) -> list[Event]:
    row = d.message
    if row is not None and row.type == "event" and row.content.type == "chat_close":
        # The row is the close itself; the frame's `closeType`, when it has one, decides.
        return _row(scope, row, frame.at, "$.data.message", d.closeType)
    events = [] if row is None else _row(scope, row, frame.at, "$.data.message")
    at, key = _stamp(scope, frame.at)
    reason, by = _end_reason(d.closeType, None)
    eid = scope.event_id("closed", key, d.closeType)
    return [*events, _event(Ended, scope, eid, at, reason=reason, by=by)]


def _agent_change(
    scope: Scope,
    frame: n.AgentJoined | n.AgentAssigned | n.AgentLeft | n.AgentUnassigned,
    change: type[ParticipantJoined | ParticipantLeft],
) -> ParticipantJoined | ParticipantLeft:
    """An agent's joining or leaving (`change`). The agent is `agent` (joined, left),
    `assigned` or `unassigned`; who (un)assigned them goes to `metadata`, as the frame's row
    says it too. The id is the row's when the frame carries one (the row makes the same event),
    else derived from the change, the frame's time and the agent."""
    d = frame.data
    if isinstance(d, n.AssignedData):
        agent, by, key = d.assigned, d.assignedBy, "assigned_by"
    elif isinstance(d, n.UnassignedData):
        agent, by, key = d.unassigned, d.unassignedBy, "unassigned_by"
    else:
        agent, by, key = d.agent or n.Agent(), None, ""
    metadata: dict[str, Any] = {} if by is None or by.id is None else {key: by.id}
    agent_id = agent.id
    if d.message is not None:
        at = _row_at(scope, d.message.createdAt, frame.at, "$.data.message")
        eid = event_id(scope.conversation_id, d.message.id)
        row_agent, row_metadata = _row_agent(d.message, "$.data.message")
        agent_id = agent_id or row_agent
        metadata = {**row_metadata, **metadata}
    else:
        at, stamp = _stamp(scope, frame.at)
        name = "joined" if change is ParticipantJoined else "left"
        eid = scope.event_id(name, stamp, agent_id)
    party = Party("agent", agent_id, agent.nickname or agent.fullname)
    return _event(change, scope, eid, at, participant=party, metadata=metadata)


def _rated(scope: Scope, at: n.Timestamp, d: n.RatedData) -> list[Event]:
    """The visitor rated the chat: its `rate_form` row's events, the rating among them as
    that row makes it wherever it appears (the frame's rating decides); without a row, a
    rating notice of its own."""
    row = d.message
    if row is None:
        at, key = _stamp(scope, at)
        return [_rating(scope, scope.event_id("rated", key), at, d.rating)]
    rid = f"{event_id(scope.conversation_id, row.id)}/rating"
    events = [e for e in _row(scope, row, at, "$.data.message") if e.id != rid]
    rated_at = _row_at(scope, row.createdAt, at, "$.data.message")
    return [*events, _rating(scope, rid, rated_at, d.rating)]


def _initialized(scope: Scope, at: n.Timestamp, d: n.InitializedData) -> list[Event]:
    """The `visitor.connect` ack: the chat's status, the account's availability, every row."""
    at, key = _stamp(scope, at)
    events: list[Event] = []
    if d.chat is not None:
        events.append(_status(scope, d.chat.status, at))
    if d.account is not None:
        events.append(_availability(scope, d.account.status, at, key))
    for i, row in enumerate([] if d.chat is None else d.chat.messages):
        events += _row(scope, row, at, f"$.data.chat.messages[{i}]")
    return events


def _row(
    scope: Scope, row: n.MessageRow, fallback: n.Timestamp, path: str, close_type: str | None = None
) -> list[Event]:
    """A chat row (a message or an event) as canonical events; the first has the row's id.
    `fallback` is the frame's time, for a row without its own; `path` the row's, for errors;
    `close_type` (a `chat.closed` frame's) decides a `chat_close` row's reason."""
    at = _row_at(scope, row.createdAt, fallback, path)
    eid = event_id(scope.conversation_id, row.id)
    kind, text = row.content.type, row.content.text
    if row.type == "message":
        if kind == "rate_form":
            form: list[Event] = [_event(Form, scope, eid, at, request_id=row.id, name=kind)]
            rating = _rating_of(row.content.data)
            if rating is not None:  # the visitor has answered the form
                form.append(_rating(scope, f"{eid}/rating", at, rating))
            return form
        sender, contents = _sender(row), _contents(row, path)
        if not contents:
            raise Refused("a message with neither text nor attachments", f"{path}.content.text")
        return [
            _event(Message, scope, f"{eid}/{i}" if i else eid, at, sender=sender, content=c)
            for i, c in enumerate(contents)
        ]
    # an event row: its agent is in `content.data` (the row's own `agentId` is null)
    change = _CHANGES.get(kind)
    if change is not None:
        agent_id, metadata = _row_agent(row, path)
        return [
            _event(change, scope, eid, at, participant=Party("agent", agent_id), metadata=metadata)
        ]
    if kind == "chat_close":
        data = _event_data(row, path)
        reason, by = _end_reason(close_type or data.closeType, row.subType)
        agent_id = data.agentId or row.agentId
        metadata = {} if agent_id is None else {"agent_id": agent_id}
        ended = {"reason": reason, "by": by, "text": text or None, "metadata": metadata}
        return [_event(Ended, scope, eid, at, **ended)]
    if text:  # another event row (ours: a notice)
        return [_event(Notice, scope, eid, at, kind="info", text=text)]
    return []


def _sender(row: n.MessageRow) -> Party:
    """Who wrote a message row, by its `subType`: `contact` the visitor, `agent`, `trigger`
    (an automation, named in `trigger {id, name}`), anything else the system."""
    match row.subType:
        case "agent":
            return Party("agent", row.agentId)
        case "contact":
            return Party("user", row.visitorId)
        case "trigger":
            trigger = row.trigger or n.Trigger()
            return Party("bot", trigger.id, trigger.name)
    return Party("system")


def _row_agent(row: n.MessageRow, path: str) -> tuple[str | None, dict[str, Any]]:
    """The agent an `agent_*` event row is about, and who (un)assigned them as metadata:
    `content.data.agentId` (join, leave), `assigned` (assign), `unassigned` (unassign); the
    row's own `agentId` only where `content.data` names no one."""
    data = _event_data(row, path)
    agent, by, key = _AGENT_FIELDS.get(row.content.type, ("agentId", "", ""))
    by_id = getattr(data, by) if by else None
    return getattr(data, agent) or row.agentId, {} if by_id is None else {key: by_id}


def _event_data(row: n.MessageRow, path: str) -> n.EventRowData:
    data = {} if row.content.data is None else row.content.data
    return _typed(data, n.EventRowData, f"{path}.content.data")


def _contents(row: n.MessageRow, path: str) -> list[Content]:
    """A message row's contents. The row's text is the caption of a first attachment that is
    an image, else a `Text` before the attachments. An upload row without `attachments`
    describes its file in `content.data`. An attachment without a `url` is refused (the
    canonical Image and File need a location)."""
    text = row.content.text
    attachments, where = row.attachments, f"{path}.attachments"
    if not attachments and row.content.type == "upload" and row.content.data is not None:
        where = f"{path}.content.data"
        attachments = [_typed(row.content.data, n.Attachment, where)]
    if not attachments:
        return [] if text is None else [Text(text)]
    contents: list[Content] = []
    caption = text or None
    for i, a in enumerate(attachments):
        if not a.url:
            url_path = f"{where}[{i}].url" if row.attachments else f"{where}.url"
            raise Refused("an attachment without a url", url_path)
        if a.type == "image":
            contents.append(Image(url=a.url, file_name=a.fileName, caption=caption))
        else:
            contents += [Text(caption)] if caption else []
            contents.append(
                File(url=a.url, file_name=a.fileName, mime_type=a.fileType, size=a.size)
            )
        caption = None
    return contents


def _rating_of(data: Any) -> n.Rating | None:
    """The rating a `rate_form` row's `content.data` holds once the visitor rated (a number
    `value`); None before (what the form's data is before an answer is not public)."""
    value = data.get("value") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    text = data.get("text")
    return n.Rating(value=value, text=text if isinstance(text, str) else None)


def _rating(scope: Scope, eid: str, at: str, rating: n.Rating) -> Notice:
    """The visitor's rating of the chat as a notice (the model has no rating event: ours),
    the rating itself in `metadata`."""
    text = f"Chat rated {rating.value:g}" + (f": {rating.text}" if rating.text else "")
    metadata: dict[str, Any] = {"rating": rating.value}
    if rating.text:
        metadata["rating_text"] = rating.text
    return _event(Notice, scope, eid, at, kind="info", text=text, metadata=metadata)


def _status(scope: Scope, native: str, at: str) -> Status:
    """The chat's status; its id is the native status alone: `initialized` after every
    reconnect repeats it, and the repeat deduplicates."""
    return _event(Status, scope, scope.event_id("status", native), at, status=STATUSES[native])


def _availability(scope: Scope, status: str, at: str, key: str) -> Availability:
    eid = scope.event_id("availability", status, key)
    return _event(Availability, scope, eid, at, online=status == "online")


def _error(scope: Scope, err: n.ServerErrorData, at: str, key: str) -> Error:
    cls = errors.error_class(err)
    eid = scope.event_id("error", key, err.code, err.type, err.event, err.message)
    error = {"code": cls.code, "message": err.message, "recoverable": cls.recoverable}
    return _event(Error, scope, eid, at, **error, metadata=errors.details(err))


def _end_reason(close_type: str | None, sub_type: str | None) -> tuple[EndReason, EndedBy]:
    """`closeType` (the SDK types `visitor_close`, `agent_close` or any string), else who
    wrote the row, as the reason and who ended the chat."""
    text = close_type or ""
    if "agent" in text or (not text and sub_type == "agent"):
        return "agent", "agent"
    if "contact" in text or "visitor" in text or (not text and sub_type == "contact"):
        return "user", "user"
    if "inactiv" in text or "timeout" in text or "idle" in text:
        return "inactivity", "system"
    return "completed", "system"


def _stamp(scope: Scope, value: n.Timestamp, path: str = "$.at") -> tuple[str, str]:
    """`(at, key)` of a frame's time `value`: the event's time (the body's receive time when
    there is none) and the time a derived id is built from, `""` for a frame without one (an
    id built from the receive time would make a re-posted body a new event)."""
    if value is None or value == "":
        return scope.received_at, ""
    at = _at(value, path)
    return at, at


def _row_at(scope: Scope, value: n.Timestamp, fallback: n.Timestamp, row_path: str) -> str:
    """A row's time: its `createdAt`, else the frame's `at`, else the receive time."""
    if value is not None and value != "":
        return _at(value, f"{row_path}.createdAt")
    return _stamp(scope, fallback)[0]


def _at(value: n.Timestamp, path: str) -> str:
    try:
        return to_at(value)
    except ValueError:
        raise Refused(f"not a timestamp: {value!r}", path) from None


def _typed(value: Any, kind: type[T], path: str) -> T:
    """A part of a frame that its type leaves open (`content.data`) as `kind`, refused at its
    JSON path under `path` when it does not fit."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        message, sep, tail = str(exc).rpartition(" - at `")
        inner = tail.rstrip("`")[1:] if sep else ""
        raise Refused(message if sep else str(exc), path + inner) from None


SPEC: Spec[n.Frame] = Spec(
    dialect=n.DIALECT,
    frame=n.Frame,
    tag="event",
    build=build,
    conversation=conversation,
    envelopes=(Envelope("events", n.Events, frames="events"),),
)
