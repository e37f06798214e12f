"""Genesys frames → canonical events: the dialect's spec for the shared pipeline. Pure.

A body is one entry (GMS or widget form), an array of entries, a GMS v2 reply
(`{"statusCode", "chatId", "chatEnded", "messages": [...]}`) or a widget transcript
(`{"transcript": [...], "chatId"}`); see `native`. The chat id comes from the entry's own
`chatId` / `sessionId`, else the envelope's, else the `?conversation=` parameter.

Ids. A transcript line's id is `"genesys:<chatId>/<n>"`, `n` its position in the GMS transcript:
GMS counts from 1, the widget from 0 (widget line `i` is GMS entry `i + 1`), so one line dedups
whichever form and however often (a widget `restored` replay) it arrives, and two lines never
share an id. Entries without an index get a `derived_id` from what makes them (their time when
they carry one, never the time they were received, so a re-posted body dedups). The end of a
chat is always `derived_id(conv, "ended")`, so the GMS `chatEnded` flag, the widget
`SessionEnded` and the connector's own end are one event.

A GMS reply also stands for events of its own, after its entries' (`reply_events`): an `error`
per GMS error (statusCode 1 or 2), and `ended` when `chatEnded` is set (reason `error` when the
status is not 0: DIALECTS.md, "statusCode 2 with chatEnded").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from adapters.genesys import native as n
from adapters.genesys.errors import error_code
from adapters.genesys.native import DIALECT
from gateway.codec import derived_id, to_at
from gateway.decoding import Envelope, Refused, Scope, Spec
from gateway.errors import RequestError
from gateway.model import (
    Ended,
    EndedBy,
    EndReason,
    Error,
    Event,
    Link,
    Message,
    Notice,
    ParticipantJoined,
    ParticipantLeft,
    Text,
    Typing,
    Url,
)


def ended(
    conv: str, at: str, reason: EndReason, by: EndedBy | None, text: str | None = None
) -> Ended:
    """The one `ended` event of a conversation: its id does not depend on who reports it."""
    return Ended(
        id=derived_id(conv, "ended"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason=reason,
        by=by,
        text=text,
    )


def error_event(
    conv: str, eid: str, vendor_code: int | str, text: str | None, at: str, fatal: bool = False
) -> Error:
    """A widget or GMS error code as a canonical `error` event (`metadata.vendor_code`), id
    `eid`; `fatal` (a GMS statusCode 2) makes it not recoverable whatever its code."""
    code, recoverable = error_code(vendor_code)
    return Error(
        id=eid,
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        code=code,
        message=text or f"genesys error {vendor_code}",
        recoverable=recoverable and not fatal,
        metadata={"vendor_code": vendor_code},
    )


# --- one entry ------------------------------------------------------------------------------


def _message(
    entry: n.GmsMessage | n.GmsPushUrl | n.MessageReceived, scope: Scope
) -> tuple[Message]:
    """A message from the entry's party: a GMS `Message` (text), a GMS `PushUrl` (a URL), or a
    widget `MessageReceived` (a URL when its `content.type` says `url`, the string or the
    object of booleans; else text). An entry without an index is told apart by its text (its
    derived id)."""
    if isinstance(entry, n.MessageReceived):
        text, form = entry.content.text, entry.content.type
        url = form == "url" if isinstance(form, str) else bool(form.get("url"))
    else:
        text, url = entry.text, type(entry) is n.GmsPushUrl
    at = _at(entry, scope)
    sender = n.party(entry)
    return (
        Message(
            id=_id(entry, scope, at, sender.id, text),
            conversation_id=scope.conversation_id,
            dialect=DIALECT,
            at=at,
            sender=sender,
            content=Url(url=text) if url else Text(text),
        ),
    )


def _change(
    entry: n.GmsJoined | n.AgentConnected | n.GmsLeft | n.AgentDisconnected, scope: Scope
) -> tuple[ParticipantJoined | ParticipantLeft]:
    """The entry's party joined (GMS `ParticipantJoined`, the widget's `AgentConnected`) or
    left (`ParticipantLeft`, `AgentDisconnected`)."""
    at = _at(entry, scope)
    who = n.party(entry)
    change = ParticipantJoined if type(entry) in _JOINS else ParticipantLeft
    return (
        change(
            id=_id(entry, scope, at, who.id),
            conversation_id=scope.conversation_id,
            dialect=DIALECT,
            at=at,
            participant=who,
        ),
    )


_JOINS = (n.GmsJoined, n.AgentConnected)


def _gms_typing(entry: n.GmsTypingStarted | n.GmsTypingStopped, scope: Scope) -> tuple[Typing]:
    """GMS `TypingStarted` / `TypingStopped`; the entry's `text`, if any, is the preview."""
    at = _at(entry, scope)
    who, active = n.party(entry), type(entry) is n.GmsTypingStarted
    return (
        Typing(
            id=_id(entry, scope, at, who.id, active),
            conversation_id=scope.conversation_id,
            dialect=DIALECT,
            at=at,
            sender=who,
            active=active,
            preview=entry.text or None,
        ),
    )


def _agent_typing(entry: n.AgentTyping, scope: Scope) -> tuple[Typing]:
    """The widget's `AgentTyping`: its party typing or not."""
    at = _at(entry, scope)
    who = n.party(entry)
    return (
        Typing(
            id=_id(entry, scope, at, who.id, entry.isTyping),
            conversation_id=scope.conversation_id,
            dialect=DIALECT,
            at=at,
            sender=who,
            active=entry.isTyping,
        ),
    )


def _gms_notice(entry: n.GmsNotice, scope: Scope) -> tuple[Notice]:
    """A GMS `Notice`: an `info` notice of its text."""
    at = _at(entry, scope)
    return (
        Notice(
            id=_id(entry, scope, at, entry.text),
            conversation_id=scope.conversation_id,
            dialect=DIALECT,
            at=at,
            kind="info",
            text=entry.text,
        ),
    )


def _session_ended(entry: n.SessionEnded, scope: Scope) -> tuple[Ended]:
    """The widget's `SessionEnded`: the conversation's one `ended` event, told by its reason."""
    at = _at(entry, scope)
    why, by = n.end_reason(entry.reason)
    return (ended(scope.conversation_id, at, why, by, entry.reason.description),)


def _interrupted(entry: n.Interrupted, scope: Scope) -> tuple[Link]:
    """The widget's link to GMS went down (`onInterrupted`); it retries."""
    at = _at(entry, scope)
    return (
        Link(
            id=_link_id(entry, scope, at),
            conversation_id=scope.conversation_id,
            dialect=DIALECT,
            at=at,
            state="down",
            reason="widget link interrupted",
            will_retry=True,
        ),
    )


def _continued(entry: n.Continued, scope: Scope) -> tuple[Link]:
    """The widget's link to GMS is back (`onContinued`)."""
    at = _at(entry, scope)
    return (
        Link(
            id=_link_id(entry, scope, at),
            conversation_id=scope.conversation_id,
            dialect=DIALECT,
            at=at,
            state="restored",
        ),
    )


def _link_id(entry: n.Interrupted | n.Continued, scope: Scope, at: str) -> str:
    """A link event is no transcript line, so its id is derived; an `index` it may carry is one
    of its parts."""
    parts = () if entry.index is None else (entry.index,)
    return scope.event_id(entry.__struct_config__.tag, _own_time(entry, at), *parts)


def _widget_error(entry: n.WidgetError, scope: Scope) -> tuple[Error]:
    """The widget's `Error`: its code as a canonical `error` event (id derived from the code)."""
    at = _at(entry, scope)
    code = entry.error.code
    eid = scope.event_id("error", _own_time(entry, at), code)
    return (error_event(scope.conversation_id, eid, code, entry.error.description, at),)


BUILDERS: dict[type[Any], Callable[[Any, Scope], tuple[Event]]] = {
    n.GmsMessage: _message,
    n.GmsPushUrl: _message,
    n.MessageReceived: _message,
    n.GmsJoined: _change,
    n.AgentConnected: _change,
    n.GmsLeft: _change,
    n.AgentDisconnected: _change,
    n.GmsTypingStarted: _gms_typing,
    n.GmsTypingStopped: _gms_typing,
    n.AgentTyping: _agent_typing,
    n.GmsNotice: _gms_notice,
    n.SessionEnded: _session_ended,
    n.Interrupted: _interrupted,
    n.Continued: _continued,
    n.WidgetError: _widget_error,
}
"""The builder of each entry type: every member of `native.Entry`."""


def _at(entry: n.Entry, scope: Scope) -> str:
    """The entry's time (`utcTime`, else `timestamp`) as canonical; the body's receive time for
    an entry without one. Refused at the field for a time that is no time."""
    stamp = entry.utcTime if entry.utcTime is not None else entry.timestamp
    if stamp is None or stamp == "":
        return scope.received_at
    try:
        return to_at(stamp)
    except (ValueError, OverflowError, OSError) as exc:
        path = "$.utcTime" if entry.utcTime is not None else "$.timestamp"
        raise Refused(str(exc), path) from None


def _own_time(entry: n.Entry, at: str) -> str:
    """The time a derived id is made of: the entry's own (`at`), or "" for an entry without
    one, never the receive time (a re-posted body would make new ids)."""
    stamp = entry.utcTime if entry.utcTime is not None else entry.timestamp
    return "" if stamp is None or stamp == "" else at


def _id(entry: n.Entry, scope: Scope, at: str, *parts: object) -> str:
    """The id of a transcript entry's event: its line's (`line_id`) when it has an `index`,
    else derived from its name, its own time and `parts`."""
    if entry.index is None:
        tag = entry.__struct_config__.tag
        return scope.event_id(tag, _own_time(entry, at), *parts)
    return n.line_id(scope.conversation_id, entry.index, entry.first_index)


# --- the envelopes --------------------------------------------------------------------------


def reply_events(reply: n.Reply, scope: Scope, events: list[Event]) -> Iterator[Event]:
    """The events a GMS reply stands for after its entries' `events`: an `error` per GMS
    error (statusCode 1 or 2; not recoverable in a 2, nor when the chat ended), then `ended`
    when `chatEnded` is set (reason `error` when the status is not 0, else told by who left
    last).

    They take the time of the reply's last event (the reply has none), else the receive time;
    their ids depend on the reply's position in the transcript, not on a time, so a re-posted
    reply dedups."""
    status = reply.statusCode
    if status == 0 and not reply.chatEnded:
        return
    chat = reply.chatId or scope.conversation
    if not chat:
        raise RequestError(
            "genesys reply names no chat: the `conversation` parameter is required",
            parameter="conversation",
        )
    conv = f"{DIALECT}:{chat}"
    mine = [e for e in events if e.conversation_id == conv]
    at = mine[-1].at if mine else scope.received_at
    if status != 0:
        anchor = reply.nextPosition if reply.nextPosition is not None else len(mine)
        errors = reply.errors or [n.GmsError(code=52, advice=f"statusCode {status}")]
        for error in errors:
            eid = derived_id(conv, "error", f"statusCode {status}", anchor, error.code)
            fatal = status == 2 or reply.chatEnded  # GMS's 1 is "retry", unless it ended
            yield error_event(conv, eid, error.code, error.advice, at, fatal)
    if reply.chatEnded:
        # A failed reply that ends the chat is the chat ended by error (the widget's reason
        # code 3), whoever left last: not a normal completion.
        yield (
            ended(conv, at, "error", "system") if status != 0 else _ended_by_leaver(mine, conv, at)
        )


def _ended_by_leaver(events: Sequence[Event], conv: str, at: str) -> Ended:
    """The `ended` event of a GMS `chatEnded`: who left last tells who ended it."""
    for event in reversed(events):
        if isinstance(event, ParticipantLeft):
            role = event.participant.role
            if role == "user":
                return ended(conv, at, "user", "user")
            if role in ("agent", "supervisor"):
                return ended(conv, at, "agent", "agent")
    return ended(conv, at, "completed", None)


def _chat(entry: n.Entry, scope: Scope) -> str | None:
    """The entry's native chat id: its own, else its envelope's, else the caller's."""
    envelope = scope.envelope
    own = entry.chatId or entry.sessionId or (envelope.chat if envelope is not None else None)
    return own or scope.conversation


SPEC: Spec[n.Entry] = Spec(
    dialect=DIALECT,
    frame=n.Entry,
    tag="type",
    builders=BUILDERS,
    conversation=_chat,
    envelopes=(
        Envelope("transcript", n.Transcript, "transcript"),  # the widget's wins over a reply's
        *(
            Envelope(key, n.Reply, "messages", after=reply_events)
            for key in ("messages", "statusCode", "chatEnded", "nextPosition")
        ),
    ),
)
