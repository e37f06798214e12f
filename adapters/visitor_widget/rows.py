"""Visitor widget chat rows → canonical events, and the times of frames and rows: the parts
several frame types share (a row comes in `chat.message_received`, `chat.closed`, the agent
frames, `chat.rated` and every row of `visitor.connect`'s ack). Pure. Ids and paths are as
decode.py's docstring states; the builders per frame type are decode.py's.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from adapters.visitor_widget import native as n
from gateway.decoding import Refused, Scope, native_time
from gateway.model import (
    Content,
    Ended,
    EndedBy,
    EndReason,
    Event,
    File,
    Form,
    Image,
    Message,
    Notice,
    ParticipantJoined,
    ParticipantLeft,
    Party,
    Text,
)

T = TypeVar("T")

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


def row_events(
    scope: Scope, row: n.MessageRow, fallback: n.Timestamp, path: str, close_type: str | None = None
) -> list[Event]:
    """A chat row (a message or an event) as canonical events; the first has the row's id
    (`<conv>/<row id>`). `fallback` is the frame's time, for a row without its own; `path` the
    row's, for errors; `close_type` (a `chat.closed` frame's) decides a `chat_close` row's
    reason."""
    at = row_at(scope, row.createdAt, fallback, path)
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
                form.append(rating_notice(scope, f"{eid}/rating", at, rating))
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
        agent_id, metadata = agent_of_row(row, path)
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
        reason, by = end_reason(close_type or data.closeType, row.subType)
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


def agent_of_row(row: n.MessageRow, path: str) -> tuple[str | None, dict[str, Any]]:
    """The agent an `agent_*` event row is about, and who (un)assigned them as metadata:
    `content.data.agentId` (join, leave), `assigned` (assign), `unassigned` (unassign); the
    row's own `agentId` only where `content.data` names no one."""
    data = _event_data(row, path)
    agent, by, key = _AGENT_FIELDS.get(row.content.type, ("agentId", "", ""))
    by_id = getattr(data, by) if by else None
    return getattr(data, agent) or row.agentId, {} if by_id is None else {key: by_id}


def _event_data(row: n.MessageRow, path: str) -> n.EventRowData:
    data = {} if row.content.data is None else row.content.data
    return _typed(data, n.EventRowData, path, ".content.data")


def _contents(row: n.MessageRow, path: str) -> list[Content]:
    """A message row's contents. The row's text is the caption of a first attachment that is
    an image, else a `Text` before the attachments. An upload row without `attachments`
    describes its file in `content.data`. An attachment without a `url` is refused (the
    canonical Image and File need a location)."""
    text = row.content.text
    attachments = row.attachments
    if not attachments and row.content.type == "upload" and row.content.data is not None:
        attachments = [_typed(row.content.data, n.Attachment, path, ".content.data")]
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


def rating_notice(scope: Scope, eid: str, at: str, rating: n.Rating) -> Notice:
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


def end_reason(close_type: str | None, sub_type: str | None) -> tuple[EndReason, EndedBy]:
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


def stamp(scope: Scope, value: n.Timestamp, path: str = "$.at") -> tuple[str, str]:
    """`(at, key)` of a frame's time `value`: the event's time (the body's receive time when
    there is none) and the time a derived id is built from, `""` for a frame without one (an
    id built from the receive time would make a re-posted body a new event)."""
    if value is None or value == "":
        return scope.received_at, ""
    at = native_time(value, path)
    return at, at


def row_at(scope: Scope, value: n.Timestamp, fallback: n.Timestamp, row_path: str) -> str:
    """A row's time: its `createdAt`, else the frame's `at`, else the receive time."""
    if value is None or value == "":
        return stamp(scope, fallback)[0]
    return native_time(value, row_path, key=".createdAt")


def _typed(value: Any, kind: type[T], path: str, key: str) -> T:
    """A part of a frame that its type leaves open (`content.data`) as `kind`, refused at its
    JSON path under `path` + `key` (joined only then) when it does not fit."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        message, sep, tail = str(exc).rpartition(" - at `")
        inner = tail.rstrip("`")[1:] if sep else ""
        raise Refused(message if sep else str(exc), path + key + inner) from None
