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
from typing import Any

from adapters.visitor_widget import errors
from adapters.visitor_widget import native as n
from adapters.visitor_widget.rows import (
    agent_of_row,
    end_reason,
    rating_notice,
    row_at,
    row_events,
    stamp,
)
from gateway.codec import joined_id
from gateway.decoding import Envelope, Scope, Spec
from gateway.model import (
    Availability,
    Ended,
    Error,
    Event,
    ParticipantJoined,
    ParticipantLeft,
    Party,
    Receipt,
    SessionStatus,
    Status,
    Typing,
)

STATUSES: dict[str, SessionStatus] = {"pending": "queued", "open": "active", "closed": "completed"}
PIN = {"pin": True}
"""The options of a connector's decode: every frame in the session's conversation."""


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
    return row_events(scope, frame.data.message, frame.at, "$.data.message")


def _agent_typing(frame: n.AgentTyping, scope: Scope) -> list[Event]:
    d = frame.data
    at, key = stamp(scope, frame.at)
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
        at, key = stamp(scope, frame.at)
    else:
        at, key = stamp(scope, d.lastReadAt, "$.data.lastReadAt")
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
        return row_events(scope, row, frame.at, "$.data.message", d.closeType)
    events = [] if row is None else row_events(scope, row, frame.at, "$.data.message")
    at, key = stamp(scope, frame.at)
    reason, by = end_reason(d.closeType, None)
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
        at, key = stamp(scope, frame.at)
        return [
            rating_notice(scope, joined_id(scope.conversation_id, f"rated\x1f{key}"), at, d.rating)
        ]
    rid = f"{scope.conversation_id}/{row.id}/rating"
    events = [e for e in row_events(scope, row, frame.at, "$.data.message") if e.id != rid]
    rated_at = row_at(scope, row.createdAt, frame.at, "$.data.message")
    return [*events, rating_notice(scope, rid, rated_at, d.rating)]


def _deleted(frame: n.Deleted, scope: Scope) -> list[Event]:
    """A deleted chat has ended; a chat is deleted once: the id says that."""
    return [
        Ended(
            id=joined_id(scope.conversation_id, "deleted"),
            conversation_id=scope.conversation_id,
            dialect=n.DIALECT,
            at=stamp(scope, frame.at)[0],
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
    return [_availability(scope, status, *stamp(scope, frame.at))]


def _server_error(frame: n.ServerError, scope: Scope) -> list[Event]:
    """The platform's error as an `error` event (`errors`: its code and whether it passes)."""
    err = frame.data
    at, key = stamp(scope, frame.at)
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
    at, key = stamp(scope, frame.at)
    events: list[Event] = []
    if d.chat is not None:
        events.append(_status(scope, d.chat.status, at))
    if d.account is not None:
        events.append(_availability(scope, d.account.status, at, key))
    for i, row in enumerate([] if d.chat is None else d.chat.messages):
        events += row_events(scope, row, at, f"$.data.chat.messages[{i}]")
    return events


BUILDERS: dict[type[Any], Callable[[Any, Scope], list[Event]]] = {
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
        at = row_at(scope, row.createdAt, frame.at, "$.data.message")
        eid = f"{scope.conversation_id}/{row.id}"
        row_agent, row_metadata = agent_of_row(row, "$.data.message")
        agent_id = agent_id or row_agent
        metadata = {**row_metadata, **metadata}
    else:
        at, key = stamp(scope, frame.at)
        name = "joined" if change is ParticipantJoined else "left"
        eid = joined_id(scope.conversation_id, f"{name}\x1f{key}\x1f{agent_id}")
    return change(
        id=eid,
        conversation_id=scope.conversation_id,
        dialect=n.DIALECT,
        at=at,
        participant=Party("agent", agent_id, agent.nickname or agent.fullname),
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


SPEC: Spec[n.Frame] = Spec(
    dialect=n.DIALECT,
    frame=n.Frame,
    tag="event",
    builders=BUILDERS,
    conversation=conversation,
    envelopes=(Envelope("events", n.Events, frames="events"),),
)
