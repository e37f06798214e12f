"""Wonderful encode: commands → REST requests (`NativeRequest`). Pure (no I/O, no logging).

Start, recover, send, end and forward under `SESSIONS_PATH` (the paths are ours: the SDK hides
them). Typing and read receipts do not exist on this platform: `Unsupported`. Every POST goes
out with an `Idempotency-Key` header (our convention, see `idempotency_key`) so that a retry
after a lost answer is delivered once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

from adapters.wonderful.decode import DIALECT, Fault, message_event
from adapters.wonderful.native import Message as NativeMessage
from adapters.wonderful.native import MessageData, SendResponse
from gateway.adapter import NativeRequest
from gateway.errors import RequestError, Unsupported
from gateway.model import (
    Command,
    Content,
    End,
    File,
    Forward,
    Image,
    Message,
    Recover,
    Send,
    Start,
    Text,
)

SESSIONS_PATH = "/api/v1/chat/sessions"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The REST request for `command`; `session` is the connector's snapshot (its `agent_id`
    is the default agent). Raises `RequestError` (INVALID_REQUEST, MISSING_PARTICIPANT) for a
    command the platform would refuse and `Unsupported` for one it cannot carry."""
    match command:
        case Start():
            return NativeRequest(
                method="POST", path=SESSIONS_PATH, json=start_body(command, session)
            )
        case Recover(conversation=conv):
            return NativeRequest(method="GET", path=f"{SESSIONS_PATH}/{native_session_id(conv)}")
        case Send(conversation=conv):
            body = msgspec.to_builtins(chat_message(command.content))
            if command.metadata:
                body["metadata"] = command.metadata
            return NativeRequest(
                path=f"{SESSIONS_PATH}/{native_session_id(conv)}/messages", json=body
            )
        case End(conversation=conv):
            return NativeRequest(path=f"{SESSIONS_PATH}/{native_session_id(conv)}/end", json={})
        case Forward(conversation=conv, destination=destination):
            if not destination.strip():
                raise RequestError("forward needs a destination")
            return NativeRequest(
                path=f"{SESSIONS_PATH}/{native_session_id(conv)}/forward",
                json={"destination": destination},
            )
    raise Unsupported(f"{DIALECT} has no {command.__struct_config__.tag!r} command")


def start_body(command: Start, session: Mapping[str, Any]) -> dict[str, Any]:
    """The start request: the participant, locale (default en-US), agent, and the session
    metadata merged with the participant info as the SDK sends it (`from`, `from_type`, then
    `from_number` / `from_email` for phone / email identities; `name` is display only)."""
    p = command.participant
    if not p.from_.strip():
        raise RequestError("start needs the participant's `from`", code="MISSING_PARTICIPANT")
    if p.to_type is not None and not p.to:
        raise RequestError("start has `toType` without `to`")
    metadata: dict[str, Any] = {"from": p.from_, "from_type": p.from_type}
    number = p.from_ if p.from_type == "phone" else p.phone
    email = p.from_ if p.from_type == "email" else p.email
    if number:
        metadata["from_number"] = number
    if email:
        metadata["from_email"] = email
    if p.name:
        metadata["name"] = p.name
    if command.subject:
        metadata["subject"] = command.subject
    for key, value in command.metadata.items():
        metadata.setdefault(key, value)  # the participant's identity is not for custom keys
    body: dict[str, Any] = {"from": p.from_, "fromType": p.from_type}
    agent = command.agent_id or session.get("agent_id")
    if agent:
        body["agentId"] = agent
    if p.to:
        body["to"] = p.to
        body["toType"] = p.to_type or "name"
    body["locale"] = command.locale or "en-US"
    body["metadata"] = metadata
    return body


def chat_message(content: Content) -> MessageData:
    """The SDK's `ChatMessage` for `content`, with its validation rules (INVALID_REQUEST)."""
    match content:
        case Text(text=text):
            if not text:
                raise RequestError("a text message needs `text`")
            return MessageData(type="text", text=text)
        case Image(url=url, file_name=name, caption=caption):
            if not url:
                raise RequestError("an image message needs `mediaUrl` (a hosted URL)")
            return MessageData(type="image", media_url=url, file_name=name, text=caption)
        case File(url=url, file_name=name):
            if not url:
                raise RequestError("a document message needs `mediaUrl` (a hosted URL)")
            return MessageData(type="document", media_url=url, file_name=name)
    raise Unsupported(f"{DIALECT} cannot send {content.__struct_config__.tag!r} content")


def sent_message(command: Send, response: SendResponse, locale: str | None = None) -> Message:
    """The canonical message for a message the platform accepted: the same id, sender, content
    and metadata its echo (speaker `customer`, the same `eventId`, the session's `locale`)
    decodes to."""
    native = NativeMessage(
        event_id=response.event_id,
        session_id=native_session_id(command.conversation),
        speaker="user",
        data=chat_message(command.content),
        locale=locale,
        metadata=command.metadata or None,
        timestamp=response.timestamp,
    )
    try:
        return message_event(native)
    except Fault as fault:  # a send answer whose timestamp is no time
        raise fault.error(0) from None


def native_session_id(conversation: str) -> str:
    """The Wonderful session id in a canonical conversation id (`wonderful:<sessionId>`)."""
    prefix, sep, native = conversation.partition(":")
    if prefix != DIALECT or not sep or not native:
        raise RequestError(f"{conversation!r} is not a {DIALECT} conversation")
    return native


def idempotency_key(command: Command) -> str | None:
    """The `Idempotency-Key` header (our convention) of the POST carrying `command`: derived
    from its `ref` in the ref's scope (the participant for start, else the conversation), so
    every retry of it, from any replica, names the same delivery. None without a ref."""
    if command.ref is None:
        return None
    if isinstance(command, Start):
        scope = f"start:{DIALECT}:{command.participant.from_}"
    else:
        scope = command.conversation
    parts = (scope, command.__struct_config__.tag, command.ref)
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()
