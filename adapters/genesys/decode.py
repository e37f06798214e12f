"""Genesys decoder: native frames → canonical events. Pure.

A body is one entry (GMS or widget form), an array of entries, a GMS v2 response envelope
(`{"statusCode", "chatId", "chatEnded", "messages": [...]}`) or a widget transcript
(`{"transcript": [...], "chatId"}`). The chat id comes from the entry's own `chatId` /
`sessionId`, else the envelope's `chatId`, else the `?conversation=` ingest parameter.

Event ids are `"genesys:<chatId>/<index>"` (the transcript index, so a widget `restored` replay
of an entry dedups against the entry itself); entries without an index get a `derived_id` from
what makes them (their time when they carry one, never the time they were received, so a
re-posted body dedups); the end of a session is always `derived_id(conv, "ended")`, so the GMS
`chatEnded` flag, the widget `SessionEnded` and the connector's own end are one event.

Raises `MalformedJSON` for a body that is not JSON and `DecodeError` (with `index`, `path`) for a
known entry that breaks its schema; unknown entry types are counted in `Decoded.ignored`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from adapters.genesys import native as n
from adapters.genesys.entries import DIALECT, ended, error_event, time_of, to_event
from gateway.adapter import Decoded
from gateway.codec import conversation_id, invalid, loads
from gateway.errors import DecodeError
from gateway.model import (
    Ended,
    Event,
    ParticipantLeft,
    now_at,
)

_entry_decoder: msgspec.json.Decoder[n.Entry] = msgspec.json.Decoder(n.Entry)
_batch_decoder: msgspec.json.Decoder[list[n.Entry]] = msgspec.json.Decoder(list[n.Entry])
_envelope_decoder: msgspec.json.Decoder[n.TypedEnvelope] = msgspec.json.Decoder(n.TypedEnvelope)
_ENVELOPE_KEYS = ("messages", "statusCode", "chatEnded", "nextPosition")


def decode(body: bytes, conversation: str | None = None) -> Decoded:
    """Decode a webhook body (see the module docstring).

    The common shapes (one entry, an array or a GMS envelope of known entries) are typed
    straight from the bytes; anything else (unknown entry types to count, a malformed frame to
    report with its index and path, a widget transcript) takes the generic path.
    """
    first = body[:1]
    try:
        if first == b"{":
            try:
                entry = _entry_decoder.decode(body)
            except msgspec.DecodeError:
                if b'"messages"' not in body:
                    raise
                env = _envelope_decoder.decode(body)
                return _envelope_decoded(env, list(enumerate(env.messages)), 0, conversation)
            return Decoded([to_event(entry, _conv_of(entry, conversation, 0), 0)])
        if first == b"[":
            batch = _batch_decoder.decode(body)
            events = [to_event(e, _conv_of(e, conversation, i), i) for i, e in enumerate(batch)]
            return Decoded(events)
    except msgspec.DecodeError:
        pass
    return _decode_generic(loads(body), conversation)


def _decode_generic(raw: Any, conversation: str | None) -> Decoded:
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
    `error` event per GMS error (statusCode 1 or 2), then `ended` when `chatEnded` is set.
    Envelope-made events carry the time of the last entry (the envelope has none of its own),
    else the current time, which their ids do not depend on (a re-posted body dedups)."""
    entries, ignored = convert_entries(env.messages)
    return _envelope_decoded(env, entries, ignored, chat)


def _envelope_decoded(
    env: n.Envelope | n.TypedEnvelope,
    entries: Sequence[tuple[int, n.Entry]],
    ignored: int,
    conversation: str | None,
) -> Decoded:
    chat = env.chatId or conversation
    events: list[Event] = [to_event(e, _conv_of(e, chat, i), i) for i, e in entries]
    if env.statusCode == 0 and not env.chatEnded:
        return Decoded(events, ignored)
    conv = _conv_required(chat, 0)
    at = events[-1].at if events else now_at()
    when = at if events and time_of(entries[-1][1]) not in (None, "") else ""
    if env.statusCode != 0:
        errors = env.errors or [n.GmsError(code=52, advice=f"statusCode {env.statusCode}")]
        events += [error_event(conv, e.code, e.advice, at, when) for e in errors]
    if env.chatEnded:
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
