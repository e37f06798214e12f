"""SignalWire encoding: canonical commands → the platform's REST requests. Pure: no I/O.

`encode(command, session)` builds the request of a `Start` (join: the older body, or the
newer one when the session names our own fabric address), `Send` (message, with its
`metadata` and `details`) or `Recover` (first history page); anything else raises
`Unsupported`. Paths are relative to the REST host (`https://fabric.<space domain>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.adapter import NativeRequest
from gateway.errors import RequestError, SessionNotFound, Unsupported
from gateway.model import Command, Recover, Send, Start, Text

DEFAULT_PAGE_SIZE = 10  # the SDK's getChatMessages default
MESSAGES_PATH = "/api/fabric/messages"
JOIN_PATH = "/api/fabric/conversations/join"


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The REST request for `command`. `session` is the connector's snapshot: it names the
    conversation joined (`address_id`, or `group_id` after the newer join) and our own fabric
    address (`from_address_id`) when we have one.

    A `Start` names the address to chat with in `agent_id` or `participant.to` (else the
    session's `agent_id`); with a `from_address_id` it uses the newer join
    (`from_fabric_address_id` + `fabric_address_ids`, answered with a `group_id`), else the
    older `{"conversation_id": address}`. A `Send` in a group posts `group_id` (and our
    address), else `conversation_id`; its canonical `metadata` goes out as the message's
    `metadata`, except a `details` object, which goes out as its `details` (decoding puts a
    row's `details` there, so a message reads back as it was sent).

    Raises `RequestError` for a command missing what the platform needs, `Unsupported` for a
    command SignalWire chat cannot carry (typing, read, end, forward, non-text content).
    """
    match command:
        case Start():
            return _join(command, session)
        case Send():
            return _message(command, session)
        case Recover():
            return history_request(_rest_key(session))
        case _:
            tag = command.__struct_config__.tag
            raise Unsupported(f"signalwire chat cannot carry {tag!r}")


def _join(command: Start, session: Mapping[str, Any]) -> NativeRequest:
    address = command.agent_id or command.participant.to or session.get("agent_id")
    if not address:
        raise RequestError(
            "start needs the address to chat with (agent_id)", code="MISSING_ADDRESS"
        )
    me = session.get("from_address_id")
    if me:
        body = {"from_fabric_address_id": me, "fabric_address_ids": [address, me]}
        return NativeRequest(method="POST", path=JOIN_PATH, json=body)
    return NativeRequest(method="POST", path=JOIN_PATH, json={"conversation_id": address})


def _message(command: Send, session: Mapping[str, Any]) -> NativeRequest:
    key = _rest_key(session)
    if not isinstance(command.content, Text):
        raise Unsupported(
            f"signalwire sends text only, not {command.content.__struct_config__.tag!r}"
        )
    if not command.content.text.strip():
        raise RequestError("a message needs non-empty text")
    body: dict[str, Any]
    if session.get("group_id"):
        body = {"group_id": key, "text": command.content.text}
        if session.get("from_address_id"):
            body["from_fabric_address_id"] = session["from_address_id"]
    else:
        body = {"conversation_id": key, "text": command.content.text}
    metadata = dict(command.metadata)
    details = metadata.pop("details", None)
    if details is not None and not isinstance(details, dict):
        raise RequestError("metadata.details must be an object", path="$.metadata.details")
    if metadata:
        body["metadata"] = metadata
    if details:
        body["details"] = details
    return NativeRequest(method="POST", path=MESSAGES_PATH, json=body)


def history_request(key: str, page_size: int = DEFAULT_PAGE_SIZE) -> NativeRequest:
    """The first history page of the conversation `key` (the address joined, or the group id
    of the newer join); later pages follow the answer's `links`."""
    if page_size < 1:
        raise RequestError("page_size must be at least 1")
    return NativeRequest(
        method="GET",
        path=f"/api/fabric/conversations/{key}/messages",
        query={"page_size": str(page_size)},
    )


def _rest_key(session: Mapping[str, Any]) -> str:
    """What the REST calls name the conversation by: the group id, else the address joined."""
    key = session.get("group_id") or session.get("address_id")
    if not isinstance(key, str) or not key:
        raise SessionNotFound("no signalwire conversation in this session")
    return key
