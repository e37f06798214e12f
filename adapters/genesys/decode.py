"""Genesys decoder: native frames → canonical events. Pure.

A body is one entry (GMS or widget form), an array of entries, a GMS v2 response envelope
(`{"statusCode", "chatId", "chatEnded", "messages": [...]}`) or a widget transcript
(`{"transcript": [...], "chatId"}`). The chat id comes from the entry's own `chatId` /
`sessionId`, else the envelope's `chatId`, else the `?conversation=` ingest parameter.

Event ids are `"genesys:<chatId>/<n>"`, `n` the line's GMS transcript position (GMS counts from
1, the widget from 0: widget line `i` is GMS entry `i + 1`), so one line dedups whichever form
and however often (a widget `restored` replay) it arrives, and two lines never share an id;
entries without an index get a `derived_id` from what makes them (their time when they carry
one, never the time they were received, so a re-posted body dedups); the end of a session is
always `derived_id(conv, "ended")`, so the GMS `chatEnded` flag, the widget `SessionEnded` and
the connector's own end are one event.

Raises `MalformedJSON` for a body that is not JSON and `DecodeError` (with `index`, `path`) for a
known entry that breaks its schema; unknown entry types are counted in `Decoded.ignored`.

Two paths, one result. The fast path (`decode`) decodes the whole body typed from its bytes
in one pass, its form told by its first byte, each entry as an `AnyEntry` (every entry type's
fields in one Struct, so neither GMS's late `type` key nor an unknown type costs a second
read), and builds the events with `events_of`. It gives up whenever anything is off: a body
that is not JSON or breaks its schema (any entry's, even of an unknown type), a bad timestamp,
a frame of no chat or no party or without a field its type requires, a body of no known form
(`_Exact`). The exact path (`_decode_generic`: untyped parse, then one `msgspec.convert` per
frame, then `to_event`) then decodes the same body again and raises the error with the index,
path and message it always had. For a known type the typed decoders with `events_of`'s checks
accept no more than `convert` does (less, at most: a duplicate key whose first value is of the
wrong type, a field of another entry type of the wrong type), so where the fast path succeeds
the exact path gives the same events; a test holds the two to the same output on every
fixture and on mutations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from adapters.genesys import native as n
from adapters.genesys.entries import DIALECT, ended, error_event, events_of, time_of, to_event
from gateway.adapter import Decoded
from gateway.codec import conversation_id, invalid, is_utf8, loads
from gateway.errors import DecodeError
from gateway.model import (
    Ended,
    Event,
    ParticipantLeft,
    now_at,
)

# The fast path's decoders, their bound `decode` kept (one attribute lookup less per body).
_decode_entry: Final = msgspec.json.Decoder(n.AnyEntry).decode
_decode_batch: Final = msgspec.json.Decoder(list[n.AnyEntry]).decode
_decode_container_body: Final = msgspec.json.Decoder(n.Container).decode
_ENVELOPE_KEYS: Final = ("messages", "statusCode", "chatEnded", "nextPosition")
_UNSET: Final = msgspec.UNSET


class _Exact(Exception):
    """The fast path cannot decide this body: decode it on the exact path."""


def decode(body: bytes, conversation: str | None = None) -> Decoded:
    """Decode a webhook body (see the module docstring).

    The form of the body is told by its first byte, so each form is decoded typed once: an
    array as `list[AnyEntry]`, an object that looks like an envelope or a transcript as a
    `Container`, any other object as one entry. A body that takes none of these, or that the
    fast path gives up on, takes the exact path, which also raises every error.

    This is the adapter's `decode` itself (no `Adapter.decode` around it), so it keeps that
    contract whole: what msgspec raises besides its errors, bad UTF-8 inside a string
    (`UnicodeDecodeError`, a `ValueError`) and nesting too deep (`RecursionError`), sends the
    body to the exact path too, whose `loads` makes it `MalformedJSON`.
    """
    if not body.isascii() and not is_utf8(body):  # bad bytes a typed decode could skip unread
        return _decode_generic(loads(body), conversation)
    # The first byte as an int (`body[0]`: no slice to allocate, an int comparison).
    first = body[0] if body else 0
    if first != 91 and first != 123:  # not `[` or `{`: pretty-printed, the first non-space
        stripped = body.lstrip()
        first = stripped[0] if stripped else 0
    try:
        if first == 91:  # `[`
            return events_of(_decode_batch(body), conversation)
        if first == 123:  # `{`
            # Routing only, by the cheapest test there is: an entry holds no array, so an
            # object ending with one is most likely a container (a GMS envelope ends with its
            # `messages`, a transcript with its `transcript`). A body routed wrongly fails its
            # typed decode and takes the next way.
            if body.endswith(b"]}"):
                return _decode_container(body, conversation)
            try:
                entry = _decode_entry(body)
            except msgspec.ValidationError:  # no `type`: an envelope or a transcript, maybe
                return _decode_container(body, conversation)
            return events_of((entry,), conversation)
    except (_Exact, ValueError, DecodeError, RecursionError):  # ValueError: msgspec's errors
        pass  # (`UnicodeDecodeError` too), a bad time
    return _decode_generic(loads(body), conversation)


def _decode_container(body: bytes, conversation: str | None) -> Decoded:
    """A GMS envelope or a widget transcript (by the rules of `_decode_generic`)."""
    container = _decode_container_body(body)
    transcript = container.transcript
    if transcript is not _UNSET:  # the widget's (it wins): its chat may be named `sessionId`
        return events_of(transcript, container.chatId or container.sessionId or conversation)
    messages, status, chat_ended = container.messages, container.statusCode, container.chatEnded
    if (
        messages is _UNSET
        and status is _UNSET
        and chat_ended is _UNSET
        and container.nextPosition is _UNSET
    ):
        raise _Exact  # neither an envelope nor a transcript: the exact path names the error
    entries = [] if messages is _UNSET else messages
    chat = container.chatId or conversation
    decoded = events_of(entries, chat)
    if (status is _UNSET or status == 0) and chat_ended is not True:
        return decoded  # a poll's usual reply: its entries and nothing else
    status = 0 if status is _UNSET else status
    return _envelope_decoded(
        decoded.events,
        _last_known(entries) if status != 0 else None,  # read only for GMS errors
        decoded.ignored,
        chat,
        status,
        chat_ended is True,
        container.errors,
    )


def _last_known(entries: Sequence[n.AnyEntry]) -> n.AnyEntry | None:
    """The last entry of a known type (`convert_entries` keeps only those), if any."""
    for entry in reversed(entries):
        if entry.type in n.ENTRY_TYPES:
            return entry
    return None


def _decode_generic(raw: Any, conversation: str | None) -> Decoded:
    """The exact path: an untyped body, converted frame by frame (see the module docstring)."""
    if isinstance(raw, dict) and "type" not in raw:
        if "transcript" in raw:
            try:
                tr = msgspec.convert(raw, n.Transcript)
            except msgspec.ValidationError as exc:
                raise invalid(exc, 0) from None
            return _decode_entries(tr.transcript, tr.chatId or tr.sessionId or conversation)
        if any(key in raw for key in _ENVELOPE_KEYS):
            return decode_envelope(parse_envelope(raw), conversation)
    return _decode_entries(raw if isinstance(raw, list) else [raw], conversation)


def _decode_entries(frames: Sequence[Any], conversation: str | None) -> Decoded:
    entries, ignored = convert_entries(frames)
    return Decoded([to_event(e, _conv_of(e, conversation, i), i) for i, e in entries], ignored)


def convert_entries(frames: Sequence[Any]) -> tuple[list[tuple[int, n.Entry]], int]:
    """The known entries of `frames` with their index in the batch, and how many were unknown."""
    out: list[tuple[int, n.Entry]] = []
    ignored = 0
    for index, frame in enumerate(frames):
        if isinstance(frame, dict):
            kind = frame.get("type")
            if isinstance(kind, str) and kind not in n.ENTRY_TYPES:
                ignored += 1
                continue
        try:
            out.append((index, msgspec.convert(frame, n.Entry)))
        except msgspec.ValidationError as exc:
            raise invalid(exc, index) from None
    return out, ignored


def parse_envelope(raw: Any) -> n.Envelope:
    """A GMS v2 response from parsed JSON; `DecodeError` (index 0) when it breaks its schema."""
    try:
        return msgspec.convert(raw, n.Envelope)
    except msgspec.ValidationError as exc:
        raise invalid(exc, 0) from None


def decode_envelope(env: n.Envelope, chat: str | None) -> Decoded:
    """A GMS response (its `chatId`, else `chat`) as canonical events: its entries, then an
    `error` event per GMS error (statusCode 1 or 2), then `ended` when `chatEnded` is set
    (reason `error` when the status is not 0: DIALECTS.md, "statusCode 2 with chatEnded").
    Envelope-made events carry the time of the last entry (the envelope has none of its own),
    else the current time, which their ids do not depend on (a re-posted body dedups)."""
    entries, ignored = convert_entries(env.messages)
    chat = env.chatId or chat
    events = [to_event(e, _conv_of(e, chat, i), i) for i, e in entries]
    last = entries[-1][1] if entries else None
    return _envelope_decoded(events, last, ignored, chat, env.statusCode, env.chatEnded, env.errors)


def _envelope_decoded(
    events: list[Event],
    last: n.Entry | n.AnyEntry | None,
    ignored: int,
    chat: str | None,
    status: int,
    chat_ended: bool,
    errors: Sequence[n.GmsError],
) -> Decoded:
    """The envelope's own events after its entries' `events`, `last` the last of its known
    entries (see `decode_envelope`; read only when `status` is not 0)."""
    if status == 0 and not chat_ended:
        return Decoded(events, ignored)
    conv = _conv_required(chat, 0)
    at = events[-1].at if events else now_at()
    if status != 0:
        when = at if last is not None and time_of(last) not in (None, "") else ""
        errors = errors or [n.GmsError(code=52, advice=f"statusCode {status}")]
        fatal = status == 2  # GMS: 1 is "retry", 2 is fatal
        events += [error_event(conv, e.code, e.advice, at, when, fatal) for e in errors]
    if chat_ended:
        # An error reply that ends the chat is the chat ended by error (the widget's reason
        # code 3), whoever left last: not a normal completion.
        if status != 0:
            events.append(ended(conv, at, "error", "system"))
        else:
            events.append(ended_from(events, conv, at))
    return Decoded(events, ignored)


def ended_from(events: Sequence[Event], conv: str, at: str) -> Ended:
    """The `ended` event of a GMS `chatEnded`: who left last tells who ended it."""
    for event in reversed(events):
        if isinstance(event, ParticipantLeft):
            role = event.participant.role
            if role == "user":
                return ended(conv, at, "user", "user")
            if role in ("agent", "supervisor"):
                return ended(conv, at, "agent", "agent")
    return ended(conv, at, "completed", None)


def _conv_of(entry: n.Entry, conversation: str | None, index: int) -> str:
    chat = entry.chatId or entry.sessionId or conversation
    return f"{DIALECT}:{chat}" if chat else _conv_required(chat, index)  # `conversation_id`


def _conv_required(chat: str | None, index: int) -> str:
    if not chat:
        raise DecodeError(
            f"frame {index}: no chat id (give `chatId` or the ?conversation= parameter)",
            index=index,
            path="$.chatId",
        )
    return conversation_id(DIALECT, chat)
