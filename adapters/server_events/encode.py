"""`server_events` encoding: canonical commands → the platform's requests. Pure.

`encode(command, session)` builds the `NativeRequest` of a command (`session` is the
connector's `snapshot()`); paths are relative to the API base (`/clientweb/api/v2/`), which
the connector adds with the transport details (auth header, `tenantUrl`, cache-buster).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from adapters.server_events import native as n
from adapters.server_events.native import DIALECT
from gateway.adapter import NativeRequest
from gateway.codec import conversation_id
from gateway.errors import RequestError, SessionNotFound, Unsupported
from gateway.model import (
    Command,
    End,
    File,
    Image,
    Location,
    MarkRead,
    Send,
    SetTyping,
    Start,
    Text,
    Url,
)

_MSG_NAMESPACE = uuid.UUID("6f1d8a3e-3c1b-4f0e-9a53-5e7a2b1c9d04")


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The native request for `command`; `session` is the connector's `snapshot()` (its
    `chat_id`, and `last_msg_id` for a read receipt without `up_to`).

    Raises `RequestError` for a command that breaks the contract and `Unsupported` for one the
    platform cannot carry (forward, recover, audio and action content).
    """
    if isinstance(command, Start):
        return request_chat(command)
    if not isinstance(command, Send | SetTyping | MarkRead | End):
        raise Unsupported(f"server_events cannot carry {command.__struct_config__.tag!r}")
    chat_id = _chat_of(command.conversation, session)
    if isinstance(command, Send):
        return events_request(chat_id, _send_event(command, chat_id))
    if isinstance(command, SetTyping):
        return events_request(chat_id, n.ClientTyping() if command.active else n.ClientNotTyping())
    if isinstance(command, MarkRead):
        return events_request(chat_id, n.ClientRead(ref_msg_id=_read_target(command, session)))
    return events_request(chat_id, n.ClientEnd())


def request_chat(command: Start) -> NativeRequest:
    """`POST chats`: the participant's identity and the command's metadata as parameters."""
    who = command.participant
    parameters: dict[str, Any] = {"locale": command.locale}
    for key, value in (("name", who.name), ("email", who.email), ("subject", command.subject)):
        if value is not None:
            parameters[key] = value
    phone = who.phone or (who.from_ if who.from_type == "phone" else None)
    body = n.RequestChat(
        from_=who.from_, phone_number=phone, parameters=parameters | command.metadata
    )
    return NativeRequest(method="POST", path="chats", json=msgspec.to_builtins(body))


def events_request(chat_id: str, *events: n.ClientEvent) -> NativeRequest:
    """`POST chats/{chatId}/events` carrying `events`."""
    return NativeRequest(
        method="POST",
        path=f"chats/{chat_id}/events",
        json={"events": [msgspec.to_builtins(e) for e in events]},
    )


def sent_msg_id(request: NativeRequest) -> str | None:
    """The `msg_id` the client chose in a request `encode` built (`None` for non-messages)."""
    events = request.json.get("events") if isinstance(request.json, dict) else None
    if events and isinstance(events[0], dict):
        msg_id = events[0].get("msg_id")
        return msg_id if isinstance(msg_id, str) else None
    return None


def _chat_of(conversation: str, session: Mapping[str, Any]) -> str:
    chat_id = session.get("chat_id")
    if not isinstance(chat_id, str) or not chat_id:
        raise SessionNotFound(f"no server_events chat for {conversation!r}")
    if conversation != conversation_id(DIALECT, chat_id):
        raise RequestError(
            f"command for {conversation!r} sent to session {conversation_id(DIALECT, chat_id)!r}",
            field="conversation",
        )
    return chat_id


def _msg_id(command: Send, chat_id: str) -> str:
    chosen = command.metadata.get("msg_id")
    if isinstance(chosen, str) and chosen:
        return chosen
    if command.ref:  # a retried command keeps its msg_id, so the platform and the hub dedup
        return uuid.uuid5(_MSG_NAMESPACE, f"{chat_id}/{command.ref}").hex
    return uuid.uuid4().hex


def _send_event(command: Send, chat_id: str) -> n.ClientEvent:
    content = command.content
    msg_id = _msg_id(command, chat_id)
    if isinstance(content, Text):
        if not content.text.strip():
            raise RequestError("a text message needs text", field="content.text")
        return n.ClientMessage(msg_id=msg_id, msg=content.text)
    if isinstance(content, Url):
        if not content.url:
            raise RequestError("a url message needs a url", field="content.url")
        text = f"{content.text} {content.url}" if content.text else content.url
        return n.ClientMessage(msg_id=msg_id, msg=text)
    if isinstance(content, Image | File):
        if not content.file_id:
            raise RequestError(
                "server_events sends files by `file_id`: upload the file first",
                field="content.file_id",
            )
        return n.ClientFile(
            file_id=content.file_id,
            file_type="image" if isinstance(content, Image) else "attachment",
            msg_id=msg_id,
            file_name=content.file_name,
        )
    if isinstance(content, Location):
        return n.ClientLocation(
            msg_id=msg_id, latitude=content.latitude, longitude=content.longitude, url=content.url
        )
    raise Unsupported(f"server_events cannot send {content.__struct_config__.tag!r} content")


def _read_target(command: MarkRead, session: Mapping[str, Any]) -> str:
    if command.up_to is None:
        last = session.get("last_msg_id")
        if not isinstance(last, str):
            raise RequestError("no message to mark read yet", field="up_to")
        return last
    prefix = f"{command.conversation}/"
    if not command.up_to.startswith(prefix) or len(command.up_to) == len(prefix):
        raise RequestError(
            f"`up_to` must be a message id of {command.conversation!r}", field="up_to"
        )
    return command.up_to[len(prefix) :]
