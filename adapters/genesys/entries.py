"""One known transcript entry (GMS or widget form) as its canonical event. Pure.

`to_event` gives an entry its id (`"genesys:<chatId>/<index>"` from the transcript index, else a
`derived_id` from what makes the entry: its time when it carries one, never the time it was
received), its time (`utcTime` / `timestamp`, ms, s, strings, ISO) and its party's role.
`ended` and `error_event` build the events every path shares (decoder, envelope, connector).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.genesys import native as n
from adapters.genesys.errors import error_code
from gateway.codec import derived_id, to_at
from gateway.errors import DecodeError
from gateway.model import (
    Content,
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
    Party,
    Role,
    Text,
    Typing,
    Url,
)

DIALECT = "genesys"

_ROLES: dict[str, Role] = {
    "client": "user",
    "agent": "agent",
    "supervisor": "supervisor",
    "external": "system",  # DIALECTS.md: External is the routing strategy, i.e. the system
}
_END_REASONS: dict[int, tuple[EndReason, EndedBy]] = {
    1: ("user", "user"),
    2: ("agent", "agent"),
    3: ("error", "system"),
}


def ended(
    conv: str, at: str, reason: EndReason, by: EndedBy | None, text: str | None = None
) -> Ended:
    """The one `ended` event of a conversation (its id does not depend on who reports it)."""
    eid = derived_id(conv, "ended")
    return Ended(
        id=eid, conversation_id=conv, dialect=DIALECT, at=at, reason=reason, by=by, text=text
    )


def error_event(
    conv: str, vendor_code: int | str, text: str | None, at: str, when: str | None = None
) -> Error:
    """A widget or GMS error code as a canonical `error` event (`metadata.vendor_code`); its id
    is derived from `when` (default `at`): empty for an error of a frame without a time."""
    code, recoverable = error_code(vendor_code)
    return Error(
        id=derived_id(conv, "error", at if when is None else when, vendor_code),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        code=code,
        message=text or f"genesys error {vendor_code}",
        recoverable=recoverable,
        metadata={"vendor_code": vendor_code},
    )


def _party(entry: n.Entry, index: int, default: Role | None = None) -> Party:
    who = entry.from_ if entry.from_ is not None else entry.party
    if who is not None and isinstance(who.type, str):  # hashable: the common case, cached
        party = _parties.get(who)
        if party is None:
            if len(_parties) > 4096:  # bounded: parties are few per chat, chats are many
                _parties.clear()
            party = _parties[who] = _make_party(who, _ROLES[who.type.lower()])
        return party
    if who is None:
        if default is None:
            raise DecodeError(f"frame {index}: missing `from`", index=index, path="$.from")
        return Party(role=default)
    kind = who.type
    role: Role | None = default
    if isinstance(kind, dict):  # the widget's boolean form: {"agent": true}
        role = next((_ROLES[k.lower()] for k, v in kind.items() if v and k.lower() in _ROLES), None)
    if role is None:
        key = "from" if entry.from_ is not None else "party"
        raise DecodeError(f"frame {index}: no party type", index=index, path=f"$.{key}.type")
    return _make_party(who, role)


def _make_party(who: n.Who, role: Role) -> Party:
    pid = who.participantId if who.participantId is not None else who.id
    return Party(role=role, id=None if pid is None else str(pid), name=who.nickname or who.name)


_parties: dict[n.Who, Party] = {}


def _is_url(kind: str | dict[str, bool]) -> bool:
    return kind == "url" if isinstance(kind, str) else bool(kind.get("url"))


def _reason(reason: n.Reason) -> tuple[EndReason, EndedBy | None]:
    if reason.code in _END_REASONS:
        return _END_REASONS[reason.code]
    if reason.leaveRequest:
        return _END_REASONS[1]
    if reason.agent:
        return _END_REASONS[2]
    if reason.error:
        return _END_REASONS[3]
    return "completed", None


def to_event(entry: n.Entry, conv: str, index: int = 0) -> Event:
    """One known entry as its canonical event; `index` is its place in the batch (for errors).

    An entry without a time is given the current time, but its derived id does not depend on
    it (`when` is then empty): the same body posted twice is one event."""
    stamp = time_of(entry)
    try:
        at = to_at(stamp)
    except ValueError:
        path = "$.utcTime" if entry.utcTime is not None else "$.timestamp"
        raise DecodeError(
            f"frame {index}: bad timestamp {stamp!r}", index=index, path=path
        ) from None
    when = "" if stamp is None or stamp == "" else at
    eid = f"{conv}/{entry.index}" if entry.index is not None else None  # `event_id`, inlined
    return _HANDLERS[type(entry)](entry, conv, at, when, eid, index)


def time_of(entry: n.Entry) -> n.Stamp:
    """The entry's own time (`utcTime`, else `timestamp`), `None` when it carries none."""
    return entry.utcTime if entry.utcTime is not None else entry.timestamp


def _id(eid: str | None, conv: str, entry: n.Entry, *parts: object) -> str:
    """The entry's index-based id, else one derived from what makes the entry itself."""
    return eid or derived_id(conv, entry.__struct_config__.tag, *parts)


def _message(entry: Any, conv: str, at: str, when: str, eid: str | None, index: int) -> Event:
    sender = _party(entry, index)
    if type(entry) is n.MessageReceived:
        text = entry.content.text
        content: Content = Url(url=text) if _is_url(entry.content.type) else Text(text=text)
    else:
        text = entry.text
        content = Url(url=text) if type(entry) is n.GmsPushUrl else Text(text=text)
    return Message(
        id=eid or _id(eid, conv, entry, when, sender.id, text),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=sender,
        content=content,
    )


def _joined(entry: Any, conv: str, at: str, when: str, eid: str | None, index: int) -> Event:
    who = _party(entry, index, "agent" if type(entry) is n.AgentConnected else None)
    return ParticipantJoined(
        id=_id(eid, conv, entry, when, who.id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=who,
    )


def _left(entry: Any, conv: str, at: str, when: str, eid: str | None, index: int) -> Event:
    who = _party(entry, index, "agent" if type(entry) is n.AgentDisconnected else None)
    return ParticipantLeft(
        id=_id(eid, conv, entry, when, who.id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=who,
    )


def _typing(entry: Any, conv: str, at: str, when: str, eid: str | None, index: int) -> Event:
    if type(entry) is n.AgentTyping:
        who = _party(entry, index, "agent")
        active, preview = entry.isTyping, None
    else:
        who = _party(entry, index)
        active, preview = type(entry) is n.GmsTypingStarted, entry.text or None
    return Typing(
        id=_id(eid, conv, entry, when, who.id, active),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=who,
        active=active,
        preview=preview,
    )


def _notice(entry: Any, conv: str, at: str, when: str, eid: str | None, index: int) -> Event:
    return Notice(
        id=_id(eid, conv, entry, when, entry.text),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="info",
        text=entry.text,
    )


def _session_ended(entry: Any, conv: str, at: str, when: str, eid: str | None, index: int) -> Event:
    reason, by = _reason(entry.reason)
    return ended(conv, at, reason, by, entry.reason.description)


def _link(entry: Any, conv: str, at: str, when: str, eid: str | None, index: int) -> Event:
    """The widget's own link to GMS (`onInterrupted` / `onContinued`)."""
    down = type(entry) is n.Interrupted
    return Link(
        id=_id(eid, conv, entry, when),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        state="down" if down else "restored",
        reason="widget link interrupted" if down else None,
        will_retry=True if down else None,
    )


def _error(entry: Any, conv: str, at: str, when: str, eid: str | None, index: int) -> Event:
    return error_event(conv, entry.error.code, entry.error.description, at, when)


_HANDLERS: dict[type[Any], Callable[[Any, str, str, str, str | None, int], Event]] = {
    n.GmsMessage: _message,
    n.GmsPushUrl: _message,
    n.MessageReceived: _message,
    n.GmsJoined: _joined,
    n.AgentConnected: _joined,
    n.GmsLeft: _left,
    n.AgentDisconnected: _left,
    n.GmsTypingStarted: _typing,
    n.GmsTypingStopped: _typing,
    n.AgentTyping: _typing,
    n.GmsNotice: _notice,
    n.SessionEnded: _session_ended,
    n.Interrupted: _link,
    n.Continued: _link,
    n.WidgetError: _error,
}
