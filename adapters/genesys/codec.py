"""Genesys codec: native frames ⇄ canonical events, commands → GMS requests. Pure.

Decode (`decode`): a body is one entry (GMS or widget form), an array of entries, a GMS v2
response envelope (`{"statusCode", "chatId", "chatEnded", "messages": [...]}`) or a widget
transcript (`{"transcript": [...], "chatId"}`). The chat id comes from the entry's own `chatId` /
`sessionId`, else the envelope's `chatId`, else the `?conversation=` ingest parameter.
Event ids are `"genesys:<chatId>/<index>"` (the transcript index, so a widget `restored` replay of
an entry dedups against the entry itself); entries without an index get a `derived_id`; the end
of a session is always `derived_id(conv, "ended")`, so the GMS `chatEnded` flag, the widget
`SessionEnded` and the connector's own end of a session are one event.

Raises `MalformedJSON` for a body that is not JSON and `DecodeError` (with `index`, `path`) for a
known entry that breaks its schema; unknown entry types are counted in `Decoded.ignored`.

Encode (`encode`): `Start`, `Send` (text, url), `SetTyping` (with preview) and `End` become
form-encoded `NativeRequest`s whose `path` is relative to the service URL
(`.../genesys/2/chat/<service>`); `MarkRead`, `Forward`, `Recover` raise `Unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from adapters.genesys import native as n
from adapters.genesys.clock import fast_at
from adapters.genesys.errors import error_code
from gateway.adapter import Decoded, NativeRequest
from gateway.codec import conversation_id, derived_id, invalid, loads
from gateway.errors import DecodeError, RequestError, SessionNotFound, Unsupported
from gateway.model import (
    Command,
    Content,
    End,
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
    Send,
    SetTyping,
    Start,
    Text,
    Typing,
    Url,
    now_at,
)

DIALECT = "genesys"

_entry_decoder: msgspec.json.Decoder[n.Entry] = msgspec.json.Decoder(n.Entry)
_batch_decoder: msgspec.json.Decoder[list[n.Entry]] = msgspec.json.Decoder(list[n.Entry])
_envelope_decoder: msgspec.json.Decoder[n.TypedEnvelope] = msgspec.json.Decoder(n.TypedEnvelope)
_ROLES: dict[str, Role] = {
    "client": "user",
    "agent": "agent",
    "supervisor": "supervisor",
    "external": "system",  # DIALECTS.md: External is the routing strategy, i.e. the system
}
_ENVELOPE_KEYS = ("messages", "statusCode", "chatEnded", "nextPosition")
_END_REASONS: dict[int, tuple[EndReason, EndedBy]] = {
    1: ("user", "user"),
    2: ("agent", "agent"),
    3: ("error", "system"),
}

# ---------------------------------------------------------------------------------------------
# Decode


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
    else the current time."""
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
    if env.statusCode != 0:
        errors = env.errors or [n.GmsError(code=52, advice=f"statusCode {env.statusCode}")]
        events += [error_event(conv, e.code, e.advice, at) for e in errors]
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


def ended(
    conv: str, at: str, reason: EndReason, by: EndedBy | None, text: str | None = None
) -> Ended:
    """The one `ended` event of a conversation (its id does not depend on who reports it)."""
    eid = derived_id(conv, "ended")
    return Ended(
        id=eid, conversation_id=conv, dialect=DIALECT, at=at, reason=reason, by=by, text=text
    )


def error_event(conv: str, vendor_code: int | str, text: str | None, at: str) -> Error:
    """A widget or GMS error code as a canonical `error` event (`metadata.vendor_code`)."""
    code, recoverable = error_code(vendor_code)
    return Error(
        id=derived_id(conv, "error", at, vendor_code),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        code=code,
        message=text or f"genesys error {vendor_code}",
        recoverable=recoverable,
        metadata={"vendor_code": vendor_code},
    )


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
    """One known entry as its canonical event; `index` is its place in the batch (for errors)."""
    stamp = entry.utcTime if entry.utcTime is not None else entry.timestamp
    try:
        at = fast_at(stamp)
    except (ValueError, OverflowError, OSError):
        path = "$.utcTime" if entry.utcTime is not None else "$.timestamp"
        raise DecodeError(
            f"frame {index}: bad timestamp {stamp!r}", index=index, path=path
        ) from None
    eid = f"{conv}/{entry.index}" if entry.index is not None else None  # `event_id`, inlined
    return _HANDLERS[type(entry)](entry, conv, at, eid, index)


def _id(eid: str | None, conv: str, entry: n.Entry, *parts: object) -> str:
    """The entry's index-based id, else one derived from what makes the entry itself."""
    return eid or derived_id(conv, entry.__struct_config__.tag, *parts)


def _message(entry: Any, conv: str, at: str, eid: str | None, index: int) -> Event:
    sender = _party(entry, index)
    if type(entry) is n.MessageReceived:
        text = entry.content.text
        content: Content = Url(url=text) if _is_url(entry.content.type) else Text(text=text)
    else:
        text = entry.text
        content = Url(url=text) if type(entry) is n.GmsPushUrl else Text(text=text)
    return Message(
        id=eid or _id(eid, conv, entry, at, sender.id, text),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=sender,
        content=content,
    )


def _joined(entry: Any, conv: str, at: str, eid: str | None, index: int) -> Event:
    who = _party(entry, index, "agent" if type(entry) is n.AgentConnected else None)
    return ParticipantJoined(
        id=_id(eid, conv, entry, at, who.id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=who,
    )


def _left(entry: Any, conv: str, at: str, eid: str | None, index: int) -> Event:
    who = _party(entry, index, "agent" if type(entry) is n.AgentDisconnected else None)
    return ParticipantLeft(
        id=_id(eid, conv, entry, at, who.id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=who,
    )


def _typing(entry: Any, conv: str, at: str, eid: str | None, index: int) -> Event:
    if type(entry) is n.AgentTyping:
        who = _party(entry, index, "agent")
        active, preview = entry.isTyping, None
    else:
        who = _party(entry, index)
        active, preview = type(entry) is n.GmsTypingStarted, entry.text or None
    return Typing(
        id=_id(eid, conv, entry, at, who.id, active),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=who,
        active=active,
        preview=preview,
    )


def _notice(entry: Any, conv: str, at: str, eid: str | None, index: int) -> Event:
    return Notice(
        id=_id(eid, conv, entry, at, entry.text),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="info",
        text=entry.text,
    )


def _session_ended(entry: Any, conv: str, at: str, eid: str | None, index: int) -> Event:
    reason, by = _reason(entry.reason)
    return ended(conv, at, reason, by, entry.reason.description)


def _link(entry: Any, conv: str, at: str, eid: str | None, index: int) -> Event:
    """The widget's own link to GMS (`onInterrupted` / `onContinued`)."""
    down = type(entry) is n.Interrupted
    return Link(
        id=_id(eid, conv, entry, at),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        state="down" if down else "restored",
        reason="widget link interrupted" if down else None,
        will_retry=True if down else None,
    )


def _error(entry: Any, conv: str, at: str, eid: str | None, index: int) -> Event:
    return error_event(conv, entry.error.code, entry.error.description, at)


_HANDLERS: dict[type[Any], Callable[[Any, str, str, str | None, int], Event]] = {
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


# ---------------------------------------------------------------------------------------------
# Encode


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The GMS request for `command`; `session` is the connector's snapshot (for all but
    `Start`): `chat_id`, `user_id`, `secure_key`, `alias`, `position`.

    Raises `RequestError` for a command that breaks GMS's rules (empty text, no name…),
    `SessionNotFound` when `session` names no chat, `Unsupported` for what GMS cannot carry.
    """
    match command:
        case Start():
            return _request_chat(command)
        case Send():
            form = _session_form(session)
            content = command.content
            if isinstance(content, Text):
                if not content.text.strip():
                    raise RequestError("a text message needs non-empty `text`")
                form.update(message=content.text, messageType="text")
            elif isinstance(content, Url):
                if not content.url.startswith(("http://", "https://")):
                    raise RequestError("a url message needs an absolute http(s) `url`")
                form.update(message=content.url, messageType="url")
            else:
                raise Unsupported(f"genesys cannot send {content.__struct_config__.tag!r} content")
            return NativeRequest(path=f"/{session['chat_id']}/send", form=form)
        case SetTyping():
            form = _session_form(session)
            if command.preview:
                form["message"] = command.preview
            op = "startTyping" if command.active else "stopTyping"
            return NativeRequest(path=f"/{session['chat_id']}/{op}", form=form)
        case End():
            return NativeRequest(
                path=f"/{session['chat_id']}/disconnect", form=_session_form(session)
            )
    tag = command.__struct_config__.tag
    raise Unsupported(f"genesys (GMS chat API v2) has no {tag!r} command")


def refresh_request(session: Mapping[str, Any], position: int | None = None) -> NativeRequest:
    """The `refresh` request from `position` (default: the session's own)."""
    form = _session_form(session)
    if position is not None:
        form["transcriptPosition"] = str(position)
    return NativeRequest(path=f"/{session['chat_id']}/refresh", form=form)


def _session_form(session: Mapping[str, Any]) -> dict[str, str]:
    if not session.get("chat_id") or not session.get("secure_key"):
        raise SessionNotFound("no genesys chat session (chat_id/secure_key) for this command")
    return {
        "userId": str(session.get("user_id") or ""),
        "secureKey": str(session["secure_key"]),
        "alias": str(session.get("alias") or ""),
        "transcriptPosition": str(session.get("position") or 1),
    }


def _request_chat(command: Start) -> NativeRequest:
    who = command.participant
    data = dict(command.metadata)
    first, last = data.pop("firstName", None), data.pop("lastName", None)
    nickname = (who.name or who.from_).strip()
    if not nickname and not (first and last):
        raise RequestError("genesys needs a participant name (or firstName and lastName)")
    form = {"nickname": nickname} if nickname else {}
    if first and last:
        form.update(firstName=str(first), lastName=str(last))
    email = who.email or (who.from_ if who.from_type == "email" else None)
    if email:
        form["emailAddress"] = email
    if command.subject:
        form["subject"] = command.subject
    phone = who.phone or (who.from_ if who.from_type == "phone" else None)
    if phone:
        data.setdefault("PhoneNumber", phone)
    for key, value in data.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise RequestError(
                f"userData values must be strings, numbers or booleans: metadata.{key}",
                path=f"$.metadata.{key}",
            )
        form[f"userData[{key}]"] = text
    return NativeRequest(path="", form=form)
