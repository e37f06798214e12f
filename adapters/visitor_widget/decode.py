"""Visitor widget frames → canonical events: the dialect's spec for the shared decode pipeline
(`gateway.decoding`). Pure: no I/O, no logging.

A body is one frame `{"event", "data", "at"?}`, an array of them, or the envelope
`{"events": [...]}` (native.py). Ids: the conversation is `visitor_widget:<chatId>`; a chat
row's event is `<conv>/<row id>` (`<conv>/<row id>/<n>` for the n-th extra event of one row,
e.g. a second attachment, and `<conv>/<row id>/rating` for a rating); an event the platform
does not identify gets a derived id from what makes it and the frame's own time, never the
receive time, so a re-posted time-less body deduplicates (`joined_id` of those parts written
as one string, `\x1f` between them: `derived_id` of the parts). A frame without a chat id takes the
caller's conversation (`?conversation=`); with the option `pin` (`PIN`: a connector's
session) every frame takes it, whatever chat id it names (a session's conversation never
changes, even when the platform creates its chat later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from adapters.visitor_widget import errors
from adapters.visitor_widget import native as n
from gateway.codec import joined_id, to_at
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


def build(frame: n.Frame, scope: Scope) -> list[Event]:
    """One native frame as its canonical events: the builder of its type (`_BUILDERS`)."""
    return _BUILDERS[type(frame)](frame, scope)


def conversation(frame: n.Frame, scope: Scope) -> str | None:
    """A frame's native conversation: its chat id, else the caller's (always, with `pin`)."""
    if scope.options.get("pin"):
        return scope.conversation
    d = frame.data
    if type(d) is n.InitializedData:
        chat_id = d.chat.id if d.chat is not None else d.visitor.chatId
    else:
        chat_id = getattr(d, "chatId", None)  # account and server events carry none
    return chat_id or scope.conversation


# ---------------------------------------------------------------------------------------------
# One builder per frame type: `(frame, scope)` to the frame's events, in native order.


def _message_received(frame: n.MessageReceived, scope: Scope) -> list[Event]:
    return _row(scope, frame.data.message, frame.at, "$.data.message")


def _agent_typing(frame: n.AgentTyping, scope: Scope) -> list[Event]:
    d = frame.data
    at, key = _stamp(scope, frame.at)
    active, agent_id = d.typing.is_, d.agentId
    return [
        Typing(
            id=joined_id(scope.conversation_id, f"typing\x1f{key}\x1f{agent_id}\x1f{active}"),
            conversation_id=scope.conversation_id,
            dialect=n.DIALECT,
            at=at,
            sender=Party("agent", agent_id),
            active=active,
            preview=d.typing.text or None,
        )
    ]


def _contact_read(frame: n.ContactRead, scope: Scope) -> list[Event]:
    """The visitor read up to `lastReadAt`; without one, the frame's own time stands in."""
    d = frame.data
    if d.lastReadAt is None or d.lastReadAt == "":
        at, key = _stamp(scope, frame.at)
    else:
        at, key = _stamp(scope, d.lastReadAt, "$.data.lastReadAt")
    return [
        Receipt(
            id=joined_id(scope.conversation_id, f"read\x1f{key}\x1f{d.byId}"),
            conversation_id=scope.conversation_id,
            dialect=n.DIALECT,
            at=at,
            sender=Party("user", d.byId),
            status="read",
            up_to=at,
        )
    ]


def _closed(frame: n.Closed, scope: Scope) -> list[Event]:
    """The chat closed: its `chat_close` row makes the end (the frame's `closeType`, when it
    has one, decides its reason); any other row makes its own events, then the end."""
    d = frame.data
    row = d.message
    if row is not None and row.type == "event" and row.content.type == "chat_close":
        return _row(scope, row, frame.at, "$.data.message", d.closeType)
    events = [] if row is None else _row(scope, row, frame.at, "$.data.message")
    at, key = _stamp(scope, frame.at)
    reason, by = _end_reason(d.closeType, None)
    ended = Ended(
        id=joined_id(scope.conversation_id, f"closed\x1f{key}\x1f{d.closeType}"),
        conversation_id=scope.conversation_id,
        dialect=n.DIALECT,
        at=at,
        reason=reason,
        by=by,
    )
    return [*events, ended]


def _agent_joined(frame: n.AgentJoined, scope: Scope) -> list[Event]:
    """An agent joined: the chat is open, and they are in it."""
    joined = _agent_change(scope, frame, ParticipantJoined, frame.data.agent or n.Agent())
    return [_status(scope, "open", joined.at), joined]


def _agent_assigned(frame: n.AgentAssigned, scope: Scope) -> list[Event]:
    """An agent was assigned: the chat is open, and they are in it."""
    d = frame.data
    joined = _agent_change(scope, frame, ParticipantJoined, d.assigned, d.assignedBy, "assigned_by")
    return [_status(scope, "open", joined.at), joined]


def _agent_left(frame: n.AgentLeft, scope: Scope) -> list[Event]:
    return [_agent_change(scope, frame, ParticipantLeft, frame.data.agent or n.Agent())]


def _agent_unassigned(frame: n.AgentUnassigned, scope: Scope) -> list[Event]:
    d = frame.data
    by, key = d.unassignedBy, "unassigned_by"
    return [_agent_change(scope, frame, ParticipantLeft, d.unassigned, by, key)]


def _rated(frame: n.Rated, scope: Scope) -> list[Event]:
    """The visitor rated the chat: its `rate_form` row's events, the rating among them as
    that row makes it wherever it appears (the frame's rating decides); without a row, a
    rating notice of its own."""
    d = frame.data
    row = d.message
    if row is None:
        at, key = _stamp(scope, frame.at)
        return [_rating(scope, joined_id(scope.conversation_id, f"rated\x1f{key}"), at, d.rating)]
    rid = f"{scope.conversation_id}/{row.id}/rating"
    events = [e for e in _row(scope, row, frame.at, "$.data.message") if e.id != rid]
    rated_at = _row_at(scope, row.createdAt, frame.at, "$.data.message")
    return [*events, _rating(scope, rid, rated_at, d.rating)]


def _deleted(frame: n.Deleted, scope: Scope) -> list[Event]:
    """A deleted chat has ended; a chat is deleted once: the id says that."""
    return [
        Ended(
            id=joined_id(scope.conversation_id, "deleted"),
            conversation_id=scope.conversation_id,
            dialect=n.DIALECT,
            at=_stamp(scope, frame.at)[0],
            reason="completed",
            by="system",
            metadata={"deleted": True},
        )
    ]


def _account(frame: n.AccountUpdated | n.AccountStatusUpdated, scope: Scope) -> list[Event]:
    """The account's availability; none when the account changed in a way no event tells."""
    d = frame.data
    status = d if isinstance(d, str) else d.status
    if status is None:
        return []
    return [_availability(scope, status, *_stamp(scope, frame.at))]


def _server_error(frame: n.ServerError, scope: Scope) -> list[Event]:
    """The platform's error as an `error` event (`errors`: its code and whether it passes)."""
    err = frame.data
    at, key = _stamp(scope, frame.at)
    cls = errors.error_class(err)
    parts = f"error\x1f{key}\x1f{err.code}\x1f{err.type}\x1f{err.event}\x1f{err.message}"
    return [
        Error(
            id=joined_id(scope.conversation_id, parts),
            conversation_id=scope.conversation_id,
            dialect=n.DIALECT,
            at=at,
            code=cls.code,
            message=err.message,
            recoverable=cls.recoverable,
            metadata=errors.details(err),
        )
    ]


def _initialized(frame: n.Initialized, scope: Scope) -> list[Event]:
    """The `visitor.connect` ack: the chat's status, the account's availability, every row."""
    d = frame.data
    at, key = _stamp(scope, frame.at)
    events: list[Event] = []
    if d.chat is not None:
        events.append(_status(scope, d.chat.status, at))
    if d.account is not None:
        events.append(_availability(scope, d.account.status, at, key))
    for i, row in enumerate([] if d.chat is None else d.chat.messages):
        events += _row(scope, row, at, f"$.data.chat.messages[{i}]")
    return events


_BUILDERS: dict[type[Any], Callable[[Any, Scope], list[Event]]] = {
    n.MessageReceived: _message_received,
    n.AgentTyping: _agent_typing,
    n.ContactRead: _contact_read,
    n.Closed: _closed,
    n.AgentJoined: _agent_joined,
    n.AgentAssigned: _agent_assigned,
    n.AgentLeft: _agent_left,
    n.AgentUnassigned: _agent_unassigned,
    n.Rated: _rated,
    n.Deleted: _deleted,
    n.AccountUpdated: _account,
    n.AccountStatusUpdated: _account,
    n.ServerError: _server_error,
    n.Initialized: _initialized,
}
"""Each frame type's builder (every member of `native.Frame`)."""


# ---------------------------------------------------------------------------------------------
# The parts frames share


def _agent_change(
    scope: Scope,
    frame: n.AgentJoined | n.AgentAssigned | n.AgentLeft | n.AgentUnassigned,
    change: type[ParticipantJoined | ParticipantLeft],
    agent: n.Agent,
    by: n.Agent | None = None,
    by_key: str = "",
) -> ParticipantJoined | ParticipantLeft:
    """`agent`'s joining or leaving (`change`): the frame's `agent` (joined, left), `assigned`
    or `unassigned`; who (un)assigned them (`by`) goes to `metadata` at `by_key`, as the frame's
    row says it too. The id is the row's when the frame carries one (the row makes the same
    event), else derived from the change, the frame's time and the agent."""
    row = frame.data.message
    metadata: dict[str, Any] = {} if by is None or by.id is None else {by_key: by.id}
    agent_id = agent.id
    if row is not None:
        at = _row_at(scope, row.createdAt, frame.at, "$.data.message")
        eid = f"{scope.conversation_id}/{row.id}"
        row_agent, row_metadata = _row_agent(row, "$.data.message")
        agent_id = agent_id or row_agent
        metadata = {**row_metadata, **metadata}
    else:
        at, stamp = _stamp(scope, frame.at)
        name = "joined" if change is ParticipantJoined else "left"
        eid = joined_id(scope.conversation_id, f"{name}\x1f{stamp}\x1f{agent_id}")
    return change(
        id=eid,
        conversation_id=scope.conversation_id,
        dialect=n.DIALECT,
        at=at,
        participant=Party("agent", agent_id, agent.nickname or agent.fullname),
        metadata=metadata,
    )


def _row(
    scope: Scope, row: n.MessageRow, fallback: n.Timestamp, path: str, close_type: str | None = None
) -> list[Event]:
    """A chat row (a message or an event) as canonical events; the first has the row's id
    (`<conv>/<row id>`). `fallback` is the frame's time, for a row without its own; `path` the
    row's, for errors; `close_type` (a `chat.closed` frame's) decides a `chat_close` row's
    reason."""
    at = _row_at(scope, row.createdAt, fallback, path)
    conv = scope.conversation_id
    eid = f"{conv}/{row.id}"
    kind, text = row.content.type, row.content.text
    if row.type == "message":
        if kind == "rate_form":
            form: list[Event] = [
                Form(
                    id=eid,
                    conversation_id=conv,
                    dialect=n.DIALECT,
                    at=at,
                    request_id=row.id,
                    name=kind,
                )
            ]
            rating = _rating_of(row.content.data)
            if rating is not None:  # the visitor has answered the form
                form.append(_rating(scope, f"{eid}/rating", at, rating))
            return form
        sender, contents = _sender(row), _contents(row, path)
        if not contents:
            raise Refused("a message with neither text nor attachments", f"{path}.content.text")
        messages: list[Event] = []
        for i, content in enumerate(contents):  # the n-th after the first: `<row's id>/<n>`
            messages.append(
                Message(
                    id=f"{eid}/{i}" if i else eid,
                    conversation_id=conv,
                    dialect=n.DIALECT,
                    at=at,
                    sender=sender,
                    content=content,
                )
            )
        return messages
    # an event row: its agent is in `content.data` (the row's own `agentId` is null)
    change = _CHANGES.get(kind)
    if change is not None:
        agent_id, metadata = _row_agent(row, path)
        return [
            change(
                id=eid,
                conversation_id=conv,
                dialect=n.DIALECT,
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
                dialect=n.DIALECT,
                at=at,
                reason=reason,
                by=by,
                text=text or None,
                metadata={} if agent_id is None else {"agent_id": agent_id},
            )
        ]
    if text:  # another event row (ours: a notice)
        return [
            Notice(id=eid, conversation_id=conv, dialect=n.DIALECT, at=at, kind="info", text=text)
        ]
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
    attachments = row.attachments
    if not attachments and row.content.type == "upload" and row.content.data is not None:
        attachments = [_typed(row.content.data, n.Attachment, f"{path}.content.data")]
    if not attachments:
        return [] if text is None else [Text(text)]
    contents: list[Content] = []
    caption = text or None
    for i, a in enumerate(attachments):
        if not a.url:
            where = f"attachments[{i}]" if row.attachments else "content.data"
            raise Refused("an attachment without a url", f"{path}.{where}.url")
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
    return Notice(
        id=eid,
        conversation_id=scope.conversation_id,
        dialect=n.DIALECT,
        at=at,
        kind="info",
        text=text,
        metadata=metadata,
    )


def _status(scope: Scope, native: str, at: str) -> Status:
    """The chat's status; its id is the native status alone: `initialized` after every
    reconnect repeats it, and the repeat deduplicates."""
    return Status(
        id=joined_id(scope.conversation_id, f"status\x1f{native}"),
        conversation_id=scope.conversation_id,
        dialect=n.DIALECT,
        at=at,
        status=STATUSES[native],
    )


def _availability(scope: Scope, status: str, at: str, key: str) -> Availability:
    """The account's availability; its id is the status and the frame's time (`key`)."""
    return Availability(
        id=joined_id(scope.conversation_id, f"availability\x1f{status}\x1f{key}"),
        conversation_id=scope.conversation_id,
        dialect=n.DIALECT,
        at=at,
        online=status == "online",
    )


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
    try:
        at = to_at(value)
    except ValueError:
        raise _not_a_time(value, path) from None
    return at, at


def _row_at(scope: Scope, value: n.Timestamp, fallback: n.Timestamp, row_path: str) -> str:
    """A row's time: its `createdAt`, else the frame's `at`, else the receive time."""
    if value is None or value == "":
        return _stamp(scope, fallback)[0]
    try:
        return to_at(value)
    except ValueError:
        raise _not_a_time(value, f"{row_path}.createdAt") from None


def _not_a_time(value: n.Timestamp, path: str) -> Refused:
    """The refusal of a native time `value` at `path` that is no time."""
    return Refused(f"not a timestamp: {value!r}", path)


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
