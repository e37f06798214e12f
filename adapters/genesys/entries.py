"""One known transcript entry (GMS or widget form) as its canonical event. Pure.

`to_event` gives an entry its id (`"genesys:<chatId>/<index>"` from the transcript index, else a
`derived_id` from what makes the entry: its time when it carries one, never the time it was
received), its time (`utcTime` / `timestamp`, ms, s, strings, ISO) and its party's role.
`ended` and `error_event` build the events every path shares (decoder, envelope, connector).

`events_of` is `to_event` for a whole batch, the decoder's fast path and the per-frame hot path
of ingest: one handler per entry type builds its event with keyword arguments straight from the
typed entry (the decoder already checked every field's type), parties are cached, GMS epoch
milliseconds are formatted inline, and the rare cases (index-less ids, the widget's boolean
party form, errors) are kept out of line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
_AGENT = Party(role="agent")  # a widget agent event without its party


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


def to_event(entry: n.Entry, conv: str, index: int = 0) -> Event:
    """One known entry as its canonical event; `index` is its place in the batch (for errors).

    An entry without a time is given the current time, but its derived id does not depend on
    it (see `_derived`): the same body posted twice is one event."""
    stamp = entry.utcTime if entry.utcTime is not None else entry.timestamp  # `time_of`
    try:
        at = to_at(stamp)
    except ValueError:
        path = "$.utcTime" if entry.utcTime is not None else "$.timestamp"
        raise DecodeError(
            f"frame {index}: bad timestamp {stamp!r}", index=index, path=path
        ) from None
    return _HANDLERS[type(entry)](entry, conv, at, index)


def events_of(entries: Sequence[n.Entry], chat: str | None) -> list[Event]:
    """The events of `entries` of the chat `chat`, unless an entry names its own: `to_event`
    for a whole batch, the decoder's fast path.

    On the first entry that is not right it raises `ValueError` (a time that is no time) or
    `DecodeError` (no chat, no party) without the care `to_event` takes to name the frame (the
    index it gives is the entry's place in `entries`, not in the body): the decoder then
    decodes the body again on its exact path, which reports the error.
    """
    default = f"{DIALECT}:{chat}" if chat else None  # `conversation_id`, inlined
    events: list[Event] = []
    append = events.append
    for index, entry in enumerate(entries):
        own = entry.chatId or entry.sessionId
        conv = f"{DIALECT}:{own}" if own else default
        if conv is None:
            raise DecodeError("no chat id", index=index, path="$.chatId")
        stamp = entry.utcTime if entry.utcTime is not None else entry.timestamp
        if type(stamp) is int and _MS_LOW <= stamp <= _MS_HIGH:  # GMS `utcTime`: see `_MS_LOW`
            second = stamp // 1000
            prefix = _second_prefixes.get(second)
            if prefix is None:
                prefix = _second_prefix(second)
            at = prefix + _MILLIS[stamp % 1000]
        else:
            at = to_at(stamp)
        append(_HANDLERS[type(entry)](entry, conv, at, index))
    return events


# GMS stamps every entry with `utcTime` in epoch milliseconds, so `events_of` formats those
# itself instead of calling `to_at`, a general parser (ISO, seconds, strings) whose call was
# about 290 ns of the 800 ns an entry took here; inline it is about 120 ns (4 % of the codec
# benchmark). Only the split into second and millisecond is done here: each second is
# formatted by `to_at` itself and cached (a stream revisits its seconds), so the result is
# `to_at`'s by construction, and a test compares the two over the whole range.
_MS_LOW = 100_000_001_000  # above `to_at`'s 1e11 threshold (ms, not s) with a whole second
_MS_HIGH = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, `to_at`'s last
_MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))
_second_prefixes: dict[int, str] = {}


def _second_prefix(second: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.` of an epoch second, from `to_at` (cached, bounded)."""
    if len(_second_prefixes) > 4096:  # a long-running process sees new seconds forever
        _second_prefixes.clear()
    prefix = _second_prefixes[second] = to_at(second * 1000)[:-4]
    return prefix


def time_of(entry: n.Entry) -> n.Stamp:
    """The entry's own time (`utcTime`, else `timestamp`), `None` when it carries none."""
    return entry.utcTime if entry.utcTime is not None else entry.timestamp


# --- parties --------------------------------------------------------------------------------

_parties: dict[n.Who, Party] = {}
"""Parties by their native form (hashable when `type` is a string): a party speaks many times,
so its `Party` is built once."""


def _party(entry: n.Entry, index: int, default: Role | None = None) -> Party:
    """The entry's party (`from`, else `party`), cached when its `type` is a string; `default`
    is the role of a party without any (widget agent events); `DecodeError` when there is
    neither."""
    try:  # the common case first, one lookup: a party seen before. No party is a KeyError,
        # the widget's boolean `type` (a dict, unhashable) a TypeError: both take the long way.
        return _parties[entry.from_ or entry.party]  # type: ignore[index]
    except (KeyError, TypeError):
        pass
    who = entry.from_ if entry.from_ is not None else entry.party
    if who is not None and type(who.type) is str:  # hashable: cached
        return _cache_party(who)
    if who is None and default is not None:
        return _AGENT if default == "agent" else Party(role=default)
    return _odd_party(entry, who, index, default)


def _cache_party(who: n.Who) -> Party:
    if len(_parties) > 4096:  # bounded: parties are few per chat, chats are many
        _parties.clear()
    party = _parties[who] = _make_party(who, _ROLES[str(who.type).lower()])
    return party


def _odd_party(entry: n.Entry, who: n.Who | None, index: int, default: Role | None) -> Party:
    """The rare party forms: none at all, no type, or the widget's object of booleans."""
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


# --- ids ------------------------------------------------------------------------------------


def _derived(entry: n.Entry, conv: str, at: str, *parts: object) -> str:
    """The id of an entry without an index: derived from its type, its own time (empty when
    it carries none: the receive time would make a re-posted body a new event) and `parts`."""
    stamp = time_of(entry)
    when = "" if stamp is None or stamp == "" else at
    return derived_id(conv, entry.__struct_config__.tag, when, *parts)


# --- one handler per entry type: (entry, conv, at, index) → event ---------------------------


def _gms_text(content: Callable[[str], Content]) -> Callable[[Any, str, str, int], Event]:
    """The handler of a GMS entry whose text is the message: `content` makes its content
    (`Text` for `Message`, `Url` for `PushUrl`)."""

    def handle(entry: Any, conv: str, at: str, index: int) -> Event:
        sender = _party(entry, index)
        text = entry.text
        i = entry.index
        return Message(
            id=f"{conv}/{i}" if i is not None else _derived(entry, conv, at, sender.id, text),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            sender=sender,
            content=content(text),
        )

    return handle


def _widget_message(entry: Any, conv: str, at: str, index: int) -> Event:
    sender = _party(entry, index)
    content = entry.content
    text = content.text
    kind = content.type
    url = kind == "url" if type(kind) is str else bool(kind.get("url"))
    i = entry.index
    return Message(
        id=f"{conv}/{i}" if i is not None else _derived(entry, conv, at, sender.id, text),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=sender,
        content=Url(url=text) if url else Text(text=text),
    )


def _presence(
    kind: type[ParticipantJoined] | type[ParticipantLeft], default: Role | None = None
) -> Callable[[Any, str, str, int], Event]:
    """The handler of a party joining or leaving (`kind`); `default` is the role of a party
    the entry does not describe (the widget's agent events)."""

    def handle(entry: Any, conv: str, at: str, index: int) -> Event:
        who = _party(entry, index, default)
        i = entry.index
        return kind(
            id=f"{conv}/{i}" if i is not None else _derived(entry, conv, at, who.id),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            participant=who,
        )

    return handle


def _gms_typing(entry: Any, conv: str, at: str, index: int) -> Event:
    who = _party(entry, index)
    active = type(entry) is n.GmsTypingStarted
    i = entry.index
    return Typing(
        id=f"{conv}/{i}" if i is not None else _derived(entry, conv, at, who.id, active),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=who,
        active=active,
        preview=entry.text or None,
    )


def _agent_typing(entry: Any, conv: str, at: str, index: int) -> Event:
    who = _party(entry, index, "agent")
    active = entry.isTyping
    i = entry.index
    return Typing(
        id=f"{conv}/{i}" if i is not None else _derived(entry, conv, at, who.id, active),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=who,
        active=active,
    )


def _notice(entry: Any, conv: str, at: str, index: int) -> Event:
    text = entry.text
    i = entry.index
    return Notice(
        id=f"{conv}/{i}" if i is not None else _derived(entry, conv, at, text),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="info",
        text=text,
    )


def _session_ended(entry: Any, conv: str, at: str, index: int) -> Event:
    reason = entry.reason
    why, by = _reason(reason)
    return ended(conv, at, why, by, reason.description)


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


def _interrupted(entry: Any, conv: str, at: str, index: int) -> Event:
    """The widget's own link to GMS went down (`onInterrupted`)."""
    i = entry.index
    return Link(
        id=f"{conv}/{i}" if i is not None else _derived(entry, conv, at),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        state="down",
        reason="widget link interrupted",
        will_retry=True,
    )


def _continued(entry: Any, conv: str, at: str, index: int) -> Event:
    """The widget's own link to GMS is back (`onContinued`)."""
    i = entry.index
    return Link(
        id=f"{conv}/{i}" if i is not None else _derived(entry, conv, at),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        state="restored",
    )


def _error(entry: Any, conv: str, at: str, index: int) -> Event:
    stamp = time_of(entry)
    when = "" if stamp is None or stamp == "" else at
    return error_event(conv, entry.error.code, entry.error.description, at, when)


_HANDLERS: dict[type[Any], Callable[[Any, str, str, int], Event]] = {
    n.GmsMessage: _gms_text(Text),
    n.GmsPushUrl: _gms_text(lambda url: Url(url=url)),
    n.MessageReceived: _widget_message,
    n.GmsJoined: _presence(ParticipantJoined),
    n.AgentConnected: _presence(ParticipantJoined, "agent"),
    n.GmsLeft: _presence(ParticipantLeft),
    n.AgentDisconnected: _presence(ParticipantLeft, "agent"),
    n.GmsTypingStarted: _gms_typing,
    n.GmsTypingStopped: _gms_typing,
    n.AgentTyping: _agent_typing,
    n.GmsNotice: _notice,
    n.SessionEnded: _session_ended,
    n.Interrupted: _interrupted,
    n.Continued: _continued,
    n.WidgetError: _error,
}
