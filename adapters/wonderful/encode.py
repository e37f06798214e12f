"""Wonderful encode: commands → native requests (`NativeRequest`). Pure (no I/O, no logging).

The platform's chat WebSocket carries what it has frames for: `start` opens the socket
`CHAT_PATH?commType=chat` and sends `{"type": "init", "metadata"}` on it; a text `send` is
`{"type": "message", "text"}` on it (`NativeRequest.frame`). What that wire has no frame for
goes to REST paths that are NOT public (ours, under `sessions_path`, default `SESSIONS_PATH`,
which the connector's option `sessions_path` overrides): recover (`GET …/{id}`), image and
document messages (`POST …/{id}/messages`), end (`POST …/{id}/end`) and forward (`POST
…/{id}/forward`). Every POST goes out with an `Idempotency-Key` header (our convention, see
`idempotency_key`) so that a retry after a lost answer is delivered once. Typing and read
receipts do not exist on this platform: `Unsupported`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgspec

from adapters.wonderful.decode import message_event
from adapters.wonderful.native import (
    DIALECT,
    InitFrame,
    MessageData,
    SendResponse,
    UserMessageFrame,
)
from adapters.wonderful.native import Message as NativeMessage
from gateway.adapter import NativeRequest
from gateway.decoding import Refused
from gateway.errors import RequestError, Unsupported, VendorError
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

CHAT_PATH = "/api/v1/agents/{agent_id}/chat"
CHAT_QUERY = {"commType": "chat"}
SESSIONS_PATH = "/api/v1/chat/sessions"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The native request for `command`; `session` is the connector's snapshot (its
    `agent_id` is the default agent, its `sessions_path` the REST base). Raises `RequestError`
    (INVALID_REQUEST, MISSING_PARTICIPANT) for a command the platform would refuse and
    `Unsupported` for one it cannot carry."""
    sessions = str(session.get("sessions_path") or SESSIONS_PATH)
    match command:
        case Start():
            agent = command.agent_id or session.get("agent_id")
            if not agent:
                raise RequestError("start needs an agent: `agent_id` (or the connector's)")
            return NativeRequest(
                method="GET",
                path=chat_path(str(agent)),
                query=dict(CHAT_QUERY),
                frame=msgspec.to_builtins(InitFrame(init_metadata(command))),
            )
        case Recover(conversation=conv):
            return NativeRequest(method="GET", path=f"{sessions}/{native_session_id(conv)}")
        case Send(conversation=conv, content=Text(text=text)):
            if not text:
                raise RequestError("a text message needs `text`")
            native_session_id(conv)
            return NativeRequest(frame=msgspec.to_builtins(UserMessageFrame(text)))
        case Send(conversation=conv):
            body = msgspec.to_builtins(chat_message(command.content))
            if command.metadata:
                body["metadata"] = command.metadata
            return NativeRequest(path=f"{sessions}/{native_session_id(conv)}/messages", json=body)
        case End(conversation=conv):
            return NativeRequest(path=f"{sessions}/{native_session_id(conv)}/end", json={})
        case Forward(conversation=conv, destination=destination):
            if not destination.strip():
                raise RequestError("forward needs a destination")
            return NativeRequest(
                path=f"{sessions}/{native_session_id(conv)}/forward",
                json={"destination": destination},
            )
    raise Unsupported(f"{DIALECT} has no {command.__struct_config__.tag!r} command")


def chat_path(agent_id: str) -> str:
    """The chat WebSocket's path for agent `agent_id`."""
    return CHAT_PATH.format(agent_id=quote(agent_id, safe=""))


def init_metadata(command: Start) -> dict[str, Any]:
    """The session metadata of `init`, merged with the participant info as the SDK sends it:
    `from`, `from_type`, then `from_number` / `from_email` for phone / email identities (a
    `name` identity is display only), the participant's `name`, the `subject` and `locale` when
    given, then the custom keys (which never override the participant's identity)."""
    p = command.participant
    if not p.from_.strip():
        raise RequestError("start needs the participant's `from`", code="MISSING_PARTICIPANT")
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
    if command.locale:
        metadata["locale"] = command.locale
    for key, value in command.metadata.items():
        metadata.setdefault(key, value)
    return metadata


def chat_message(content: Content) -> MessageData:
    """The SDK's `ChatMessage` for media `content`, with its validation rules."""
    match content:
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
    """The canonical message for a media message the platform accepted over REST: the id,
    sender, content and metadata its line in the session's history (speaker `customer`, the
    same `eventId`, the session's `locale`) decodes to."""
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
    except Refused as refused:  # a send answer whose timestamp is no time
        raise VendorError(f"unexpected send answer: {refused} at {refused.path}") from None


def native_session_id(conversation: str) -> str:
    """The Wonderful session id in a canonical conversation id (`wonderful:<sessionId>`)."""
    prefix, sep, native = conversation.partition(":")
    if prefix != DIALECT or not sep or not native:
        raise RequestError(f"{conversation!r} is not a {DIALECT} conversation")
    return native


def idempotency_key(command: Command) -> str | None:
    """The `Idempotency-Key` header (our convention) of the POST carrying `command`: derived
    from its `ref` in the ref's scope (the conversation), so every retry of it, from any
    replica, names the same delivery. None without a ref."""
    if command.ref is None or isinstance(command, Start):
        return None
    parts = (command.conversation, command.__struct_config__.tag, command.ref)
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()
