"""One known transcript entry (GMS or widget form) as its canonical event. Pure.

`to_event` gives an entry its id (`"genesys:<chatId>/<n>"`, `n` the line's GMS transcript
position: a GMS `index`, counted from 1, or a widget `index`, counted from 0, plus one; see
`_line_id`), else a `derived_id` from what makes the entry: its time when it carries one, never
the time it was received), its time (`utcTime` / `timestamp`, ms, s, strings, ISO) and its
party's role.
`ended` and `error_event` build the events every path shares (decoder, envelope, connector).

`events_of` is `to_event` for a whole batch of `AnyEntry` (every type's fields in one Struct,
unknown types included), the decoder's fast path and the per-frame hot path of ingest: one
handler per entry type builds its event with keyword arguments straight from the typed entry
(the decoder already checked every field's type), parties are cached and looked up inline,
GMS epoch milliseconds are formatted inline, and the rare cases (index-less ids, the widget's
boolean party form, errors) are kept out of line. The handlers serve both paths: they read
only the fields their type owns, which `Entry` and `AnyEntry` share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeAlias

from adapters.genesys import native as n
from adapters.genesys.errors import error_code
from gateway.adapter import Decoded
from gateway.codec import MILLIS_TAILS, MS_THRESHOLD, epoch_second_prefixes, joined_id, to_at
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

DIALECT: Final = "genesys"

_ROLES: Final[dict[str, Role]] = {
    "client": "user",
    "agent": "agent",
    "supervisor": "supervisor",
    "external": "system",  # DIALECTS.md: External is the routing strategy, i.e. the system
}
_END_REASONS: Final[dict[int, tuple[EndReason, EndedBy]]] = {
    1: ("user", "user"),
    2: ("agent", "agent"),
    3: ("error", "system"),
}
_AGENT: Final = Party(role="agent")  # a widget agent event without its party
_parties: Final[dict[n.Who, Party]] = {}
"""Parties by their native form (hashable when `type` is a string): a party speaks many times,
so its `Party` is built once."""
_prefixes: Final = epoch_second_prefixes.get
_TAILS: Final = MILLIS_TAILS


def ended(
    conv: str, at: str, reason: EndReason, by: EndedBy | None, text: str | None = None
) -> Ended:
    """The one `ended` event of a conversation (its id does not depend on who reports it):
    its id is `derived_id(conv, "ended")`."""
    return Ended(
        id=joined_id(conv, "ended"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason=reason,
        by=by,
        text=text,
    )


def error_event(
    conv: str,
    vendor_code: int | str,
    text: str | None,
    at: str,
    when: str | None = None,
    fatal: bool = False,
) -> Error:
    """A widget or GMS error code as a canonical `error` event (`metadata.vendor_code`); its id
    is derived from `when` (default `at`): empty for an error of a frame without a time.
    The id is `derived_id(conv, "error", when, vendor_code)`, its parts joined here (an
    f-string `{x}` is `str(x)` for the int or string a code is). `fatal` (a GMS statusCode 2)
    makes it not recoverable whatever its code."""
    code, recoverable = error_code(vendor_code)
    return Error(
        id=joined_id(conv, f"error\x1f{at if when is None else when}\x1f{vendor_code}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        code=code,
        message=text or f"genesys error {vendor_code}",
        recoverable=recoverable and not fatal,
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
    return _HANDLERS[str(entry.__struct_config__.tag)](entry, conv, at, None, index)


def events_of(entries: Sequence[n.AnyEntry], chat: str | None) -> Decoded:
    """The events of `entries` of the chat `chat` (unless an entry names its own), and how
    many were of unknown types (only counted, the rule of `decode.convert_entries`): the
    decoder's fast path, `to_event` for a whole batch.

    On the first entry that is not right it raises `ValueError` (a time that is no time) or
    `DecodeError` (no chat, no party, a field its type requires that is None) without the care
    `to_event` takes to name the frame (the index it gives is always 0): the decoder then
    decodes the body again on its exact path, which reports the error. So the loop keeps no
    index (no `enumerate`).
    """
    # `conversation_id` inlined, `DIALECT` written out (a literal, no global lookup per entry).
    default = f"genesys:{chat}" if chat else None
    events: list[Event] = []
    append = events.append
    ignored = 0
    for entry in entries:
        handle = _HANDLERS.get(entry.type)
        if handle is None:  # a type we do not know: counted, nothing else looked at
            ignored += 1
            continue
        own = entry.chatId or entry.sessionId
        conv = f"genesys:{own}" if own else default
        if conv is None:
            raise DecodeError("no chat id", index=0, path="$.chatId")
        stamp = entry.utcTime
        if stamp is None:
            stamp = entry.timestamp
        if type(stamp) is int:
            # GMS epoch milliseconds, formatted here when `to_at` has cached their second
            # (`gateway.codec.epoch_second_prefixes`): its call was ~290 ns of ~800 an entry took.
            second = stamp // 1000
            prefix = _prefixes(second)
            at = (
                prefix + _TAILS[stamp % 1000]
                if prefix is not None and stamp > MS_THRESHOLD
                else to_at(stamp)
            )
        else:
            at = to_at(stamp)
        # The party, when it is a cached one (`_party`'s first case, inlined).
        who = entry.from_
        if who is None:
            who = entry.party
        party = _parties.get(who) if who is not None and isinstance(who.type, str) else None
        append(handle(entry, conv, at, party, 0))
    return Decoded(events, ignored)


def time_of(entry: n.Entry | n.AnyEntry) -> n.Stamp:
    """The entry's own time (`utcTime`, else `timestamp`), `None` when it carries none."""
    return entry.utcTime if entry.utcTime is not None else entry.timestamp


# --- parties --------------------------------------------------------------------------------


_EitherEntry: TypeAlias = n.Entry | n.AnyEntry  # the exact path's, the fast path's


def _party(entry: _EitherEntry, index: int, default: Role | None = None) -> Party:
    """The entry's party (`from`, else `party`), cached when its `type` is a string; `default`
    is the role of a party without any (widget agent events); `DecodeError` when there is
    neither.

    The forms that are not cached (no party, no `type`, the widget's object of booleans,
    which is unhashable) are told by a type test, not by a failed lookup: an exception costs
    more than the test does on every entry."""
    who = entry.from_
    if who is None:
        who = entry.party
    if who is not None and isinstance(who.type, str):
        party = _parties.get(who)
        return party if party is not None else _cache_party(who)
    if who is None and default is not None:
        return _AGENT if default == "agent" else Party(role=default)
    return _odd_party(entry, who, index, default)


def _cache_party(who: n.Who) -> Party:
    if len(_parties) > 4096:  # bounded: parties are few per chat, chats are many
        _parties.clear()
    party = _parties[who] = _make_party(who, _ROLES[str(who.type).lower()])
    return party


def _odd_party(entry: _EitherEntry, who: n.Who | None, index: int, default: Role | None) -> Party:
    """The rare party forms: none at all, no type, or the widget's object of booleans (whose
    first true key naming a role, in the object's order, gives the role)."""
    if who is None:
        if default is None:
            raise DecodeError(f"frame {index}: missing `from`", index=index, path="$.from")
        return Party(role=default)
    kind = who.type
    role: Role | None = default
    if type(kind) is dict:  # the widget's boolean form: {"agent": true}
        role = None
        for key, value in kind.items():
            if value:
                role = _ROLES.get(key.lower())
                if role is not None:
                    break
    if role is None:
        key = "from" if entry.from_ is not None else "party"
        raise DecodeError(f"frame {index}: no party type", index=index, path=f"$.{key}.type")
    return _make_party(who, role)


def _make_party(who: n.Who, role: Role) -> Party:
    pid = who.participantId if who.participantId is not None else who.id
    return Party(role=role, id=None if pid is None else str(pid), name=who.nickname or who.name)


# --- ids ------------------------------------------------------------------------------------


def _derived(entry: _EitherEntry, conv: str, at: str, tag: str, rest: str = "") -> str:
    """The id of an entry of type `tag` without an index: `derived_id(conv, tag, when, *parts)`
    from its type, its own time (empty when it carries none: the receive time would make a
    re-posted body a new event) and its other parts, which the caller gives already joined as
    `rest` (each part after a `"\x1f"`, written `{part}` in an f-string, which is `str(part)`
    for the strings, ints, bools and None parts are). `joined_id` then hashes the one string:
    half the cost of `derived_id`'s varargs, conversions and join."""
    stamp = entry.utcTime if entry.utcTime is not None else entry.timestamp  # `time_of`
    when = "" if stamp is None or stamp == "" else at
    return joined_id(conv, f"{tag}\x1f{when}{rest}")


def _line_id(conv: str, i: int | str, first: int, index: int) -> str:
    """The id of the transcript line whose native index is `i`: `"<conv>/<n>"`, `n` the line's
    position in the GMS transcript.

    GMS numbers a chat's transcript from 1, the widget from 0 (the seed: "0-based index of this
    message in chat session transcript"); `first` is the form's first index. Widget line `i` is
    GMS entry `i + 1`, so a line that reaches the gateway in both forms has one id, and a widget
    event is never taken for another GMS entry. An index that is no position (not a whole
    number, or below `first`) is a `DecodeError` at `$.index`."""
    if type(i) is int:
        n = i
    elif i.isdigit() and i.isascii():  # type: ignore[union-attr]  # a str
        n = int(i)
    else:
        n = -1
    if n < first:
        raise DecodeError(
            f"frame {index}: `index` {i!r} is no transcript position (from {first})",
            index=index,
            path="$.index",
        )
    return f"{conv}/{n + 1 - first}"


def _missing(field: str, index: int) -> DecodeError:
    """A field the entry's type requires is None: only an `AnyEntry` can have that (see
    `native.AnyEntry`), and the decoder's exact path then names the error."""
    return DecodeError(f"frame {index}: missing `{field}`", index=index, path=f"$.{field}")


# --- one handler per entry type: (entry, conv, at, party, index) → event --------------------
#
# `party` is the entry's party when the caller has it at hand (`events_of` looks it up in
# `_parties` inline, saving the call to `_party` on the hot path), else None: a handler whose
# entry has a party then calls `_party`, which also raises the errors naming `index`. The tag
# of the type is the handler's own (a literal, or bound by its factory): an `AnyEntry` has no
# Struct tag.

_Handler = Callable[[Any, str, str, Party | None, int], Event]


def _gms_text(tag: str, content: Callable[[str], Content]) -> _Handler:
    """The handler of a GMS entry whose text is the message: `content` makes its content
    (`Text` for `Message`, `Url` for `PushUrl`)."""

    def handle(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
        sender = party if party is not None else _party(entry, index)
        text = entry.text
        if text is None:
            raise _missing("text", index)
        i = entry.index
        return Message(
            id=_line_id(conv, i, 1, index)
            if i is not None
            else _derived(entry, conv, at, tag, f"\x1f{sender.id}\x1f{text}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            sender=sender,
            content=content(text),
        )

    return handle


def _widget_message(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
    sender = party if party is not None else _party(entry, index)
    content = entry.content
    if content is None:
        raise _missing("content", index)
    text = content.text
    kind = content.type
    url = kind == "url" if type(kind) is str else bool(kind.get("url"))
    i = entry.index
    return Message(
        id=_line_id(conv, i, 0, index)
        if i is not None
        else _derived(entry, conv, at, "MessageReceived", f"\x1f{sender.id}\x1f{text}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=sender,
        content=Url(url=text) if url else Text(text=text),
    )


def _presence(
    tag: str, kind: type[ParticipantJoined] | type[ParticipantLeft], default: Role | None = None
) -> _Handler:
    """The handler of a party joining or leaving (`kind`); `default` is the role of a party
    the entry does not describe: given for the widget's agent events, whose indexes count
    from 0 (GMS's from 1)."""
    first = 1 if default is None else 0

    def handle(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
        who = party if party is not None else _party(entry, index, default)
        i = entry.index
        return kind(
            id=_line_id(conv, i, first, index)
            if i is not None
            else _derived(entry, conv, at, tag, f"\x1f{who.id}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            participant=who,
        )

    return handle


def _gms_typing(tag: str, active: bool) -> _Handler:
    """The handler of GMS `TypingStarted` (`active`) or `TypingStopped`."""

    def handle(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
        who = party if party is not None else _party(entry, index)
        i = entry.index
        return Typing(
            id=_line_id(conv, i, 1, index)
            if i is not None
            else _derived(entry, conv, at, tag, f"\x1f{who.id}\x1f{active}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            sender=who,
            active=active,
            preview=entry.text or None,
        )

    return handle


def _agent_typing(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
    who = party if party is not None else _party(entry, index, "agent")
    active = entry.isTyping
    i = entry.index
    return Typing(
        id=_line_id(conv, i, 0, index)
        if i is not None
        else _derived(entry, conv, at, "AgentTyping", f"\x1f{who.id}\x1f{active}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=who,
        active=active,
    )


def _notice(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
    text = entry.text
    if text is None:
        raise _missing("text", index)
    i = entry.index
    return Notice(
        id=_line_id(conv, i, 1, index)
        if i is not None
        else _derived(entry, conv, at, "Notice", f"\x1f{text}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="info",
        text=text,
    )


def _session_ended(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
    reason = entry.reason
    why, by = _reason(reason)
    return ended(conv, at, why, by, reason.description)


def _reason(reason: n.Reason) -> tuple[EndReason, EndedBy | None]:
    known = _END_REASONS.get(reason.code)  # type: ignore[arg-type]  # None: not a code
    if known is not None:
        return known
    if reason.leaveRequest:
        return _END_REASONS[1]
    if reason.agent:
        return _END_REASONS[2]
    if reason.error:
        return _END_REASONS[3]
    return "completed", None


def _interrupted(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
    """The widget's own link to GMS went down (`onInterrupted`): no transcript line, so its id
    is derived (an `index` it may carry is one of its parts, never a line id)."""
    i = entry.index
    return Link(
        id=_derived(entry, conv, at, "Interrupted", "" if i is None else f"\x1f{i}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        state="down",
        reason="widget link interrupted",
        will_retry=True,
    )


def _continued(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
    """The widget's own link to GMS is back (`onContinued`); its id as `_interrupted`'s."""
    i = entry.index
    return Link(
        id=_derived(entry, conv, at, "Continued", "" if i is None else f"\x1f{i}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        state="restored",
    )


def _error(entry: Any, conv: str, at: str, party: Party | None, index: int) -> Event:
    error = entry.error
    if error is None:
        raise _missing("error", index)
    stamp = entry.utcTime if entry.utcTime is not None else entry.timestamp  # `time_of`
    when = "" if stamp is None or stamp == "" else at
    return error_event(conv, error.code, error.description, at, when)


_HANDLERS: Final[dict[str, _Handler]] = {
    "Message": _gms_text("Message", Text),
    "PushUrl": _gms_text("PushUrl", lambda url: Url(url=url)),
    "MessageReceived": _widget_message,
    "ParticipantJoined": _presence("ParticipantJoined", ParticipantJoined),
    "AgentConnected": _presence("AgentConnected", ParticipantJoined, "agent"),
    "ParticipantLeft": _presence("ParticipantLeft", ParticipantLeft),
    "AgentDisconnected": _presence("AgentDisconnected", ParticipantLeft, "agent"),
    "TypingStarted": _gms_typing("TypingStarted", True),
    "TypingStopped": _gms_typing("TypingStopped", False),
    "AgentTyping": _agent_typing,
    "Notice": _notice,
    "SessionEnded": _session_ended,
    "Interrupted": _interrupted,
    "Continued": _continued,
    "Error": _error,
}
"""The handler of each entry type, by its tag (`native.ENTRY_TYPES`, which a test holds equal
to these keys)."""
