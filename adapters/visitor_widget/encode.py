"""Visitor widget encode: canonical commands → native emits. Pure: no I/O, no logging.

`encode(command, session)` builds the native emit (`NativeRequest.event` + `frame`) from a
command and the connector's `snapshot()` (plus `key` and `group` from the settings). Image/file
sends encode to `chat.upload_init`, with the file to upload in `NativeRequest.json`
(`{"url", "fileName", "fileType"}`): the connector does the HTTP upload and then emits
`upload_finish(token)`.

The frames are the vendor SDK's (smartsupp/smartsupp-sdk-websocket `src/visitor.ts`): a command
without a payload (`chat.read`, `chat.close`, `chat.upload_init`) sends `null`; typing sends
`{typing: {is, text}}` with `text` null unless a preview is typed; `chat.typing` and
`chat.read` are emitted without an ack callback (`NO_ACK`); `visitor.connect` always carries
`id` (null until the platform gave one) and the page context, and on every reconnect the
identity the platform returned (`reconnect_frame`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.visitor_widget.native import DIALECT
from gateway.adapter import NativeRequest
from gateway.errors import RequestError, Unsupported
from gateway.model import (
    Command,
    Content,
    End,
    File,
    Image,
    MarkRead,
    Send,
    SetTyping,
    Start,
    Text,
    Url,
)

NO_ACK = frozenset({"chat.typing", "chat.read"})
"""Emits the SDK sends without an ack callback (`chatTyping`, `chatRead`): nothing answers
them, so nothing may wait for an answer."""

PAGE_CONTEXT = ("pageUrl", "pageTitle", "referer", "domain")
"""The page context `visitor.connect` always carries (null where unknown, as the SDK sends it
outside a browser); a `start`'s `metadata` may give each, by these names."""

READONLY = frozenset({"bannedAt", "chatId", "status"})
"""Identity fields the SDK never sends back on `visitor.connect` (`readonlyProperties`)."""


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The native emit for `command` in the session `session` (a connector snapshot, plus
    `key` and `group` from the settings for `Start`). Raises `RequestError` for a command
    that breaks the contract and `Unsupported` for one the platform cannot carry."""
    if not isinstance(command, Start):
        _check_conversation(command, session)
    match command:
        case Start():
            return NativeRequest(event="visitor.connect", frame=_connect_frame(command, session))
        case Send(content=content):
            return _send(content)
        case SetTyping(active=active, preview=preview):
            typing = {"is": active, "text": (preview or None) if active else None}
            return NativeRequest(event="chat.typing", frame={"typing": typing})
        case MarkRead():
            return NativeRequest(event="chat.read", frame=None)  # the platform reads "up to now"
        case End():
            return NativeRequest(event="chat.close", frame=None)
    raise Unsupported(f"{DIALECT} cannot carry {command.__struct_config__.tag!r}")


def upload_finish(token: str) -> NativeRequest:
    """The last step of a file send, once the file is uploaded to the `upload_init` url."""
    return NativeRequest(event="chat.upload_finish", frame={"uploadToken": token})


def identity_of(visitor: Mapping[str, Any]) -> dict[str, Any]:
    """What a `visitor.connect` ack's `visitor` adds to every later `visitor.connect`: all of it
    but the fields the platform alone sets (`READONLY`)."""
    return {k: v for k, v in visitor.items() if k not in READONLY}


def reconnect_frame(session: Mapping[str, Any]) -> dict[str, Any]:
    """`visitor.connect` for a visitor the platform knows (every reconnect and every resume):
    the first connect's values (`session["connect"]`, without the key) with the identity the
    platform returned laid over them (`session["identity"]`, its `id` among it), as the SDK's
    `visitorConnect` builds it."""
    frame: dict[str, Any] = {"id": None, **dict.fromkeys(PAGE_CONTEXT)}
    frame.update(session.get("connect") or {})
    frame["key"] = session.get("key")
    frame.update(session.get("identity") or {"id": session["visitor_id"]})
    return frame


def _connect_frame(command: Start, session: Mapping[str, Any]) -> dict[str, Any]:
    key = session.get("key")
    if not key:
        raise RequestError("visitor_widget needs an account key (GATEWAY_VISITOR_WIDGET_KEY)")
    p = command.participant
    if not p.from_.strip():
        raise RequestError("participant `from` must not be empty")
    email = p.email or (p.from_ if p.from_type == "email" else None)
    phone = p.phone or (p.from_ if p.from_type == "phone" else None)
    if email is not None and "@" not in email:
        raise RequestError(f"not an email address: {email!r}")
    frame: dict[str, Any] = {
        "key": key,
        "name": p.name or (p.from_ if p.from_type == "name" else None),
        "email": email,
        "phone": phone,
        "lang": command.locale.split("-")[0].lower(),
    }
    if session.get("group"):
        frame["group"] = session["group"]
    variables = {k: v for k, v in command.metadata.items() if k not in PAGE_CONTEXT}
    if command.subject:
        variables["subject"] = command.subject
    if variables:
        frame["variables"] = variables
    page = {k: _page_value(command.metadata, k) for k in PAGE_CONTEXT}
    return {"id": None, **{k: v for k, v in frame.items() if v is not None}, **page}


def _page_value(metadata: Mapping[str, Any], name: str) -> str | None:
    value = metadata.get(name)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"metadata {name} must be a string", parameter=f"metadata.{name}")
    return value


def _send(content: Content) -> NativeRequest:
    match content:
        case Text(text=text):
            if not text.strip():
                raise RequestError("message text must not be empty")
            return _chat_message(text)
        case Url(url=url, text=text):
            if not url.strip():
                raise RequestError("url must not be empty")
            return _chat_message(f"{text}\n{url}" if text else url)
        case Image(url=url, file_name=name) | File(url=url, file_name=name):
            if not url:
                raise RequestError(f"{DIALECT} uploads {content.__struct_config__.tag} by `url`")
            mime = content.mime_type if isinstance(content, File) else None
            upload = {"url": url, "fileName": name, "fileType": mime}
            return NativeRequest(event="chat.upload_init", frame=None, json=upload)
    raise Unsupported(f"{DIALECT} cannot send {content.__struct_config__.tag!r} content")


def _chat_message(text: str) -> NativeRequest:
    return NativeRequest(event="chat.message", frame={"content": {"type": "text", "text": text}})


def _check_conversation(command: Command, session: Mapping[str, Any]) -> None:
    conv = session.get("conversation_id")
    asked = getattr(command, "conversation", None)
    if conv and asked and asked != conv:
        raise RequestError(f"command for {asked!r} sent to the session of {conv!r}")
