"""Genesys encoder: canonical commands → GMS Chat API v2 requests. Pure.

`Start`, `Send` (text, url), `SetTyping` (with preview) and `End` become form-encoded
`NativeRequest`s whose `path` is relative to the service URL (`.../genesys/2/chat/<service>`);
`refresh_request` is the connector's poll. `MarkRead`, `Forward`, `Recover` raise `Unsupported`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.adapter import NativeRequest
from gateway.errors import RequestError, SessionNotFound, Unsupported
from gateway.model import Command, End, Send, SetTyping, Start, Text, Url


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
