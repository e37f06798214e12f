"""SignalWire codec: native frames ⇄ canonical events and commands. Pure: no I/O, no logging.

`decode(body, conversation, self_ids)` accepts one frame, an array of frames, or a REST
history page (`{"data": [...], "links": {...}}`); a frame is a JSON-RPC `signalwire.event` or a
bare message row (see `native.py`). Mapping:

- a row of subtype `chat` → `Message` (text), id `"signalwire:<conv>/<row id>"`;
- a row of subtype `log` (call history) → `Notice(kind="call_log")`, never a Message;
- `conversation.message.updated` → `Message` with a derived id and `metadata.updates` naming
  the original (the original id would be dropped by the hub's dedup);
- `conversation.ended` (our own) → `Ended`;
- the sender is the user when `is_author` is true or its address is one of `self_ids` (the
  connector's own subscriber), otherwise an agent.

Unknown event types, JSON-RPC responses and other methods, and rows of another type/subtype
are ignored and counted. A known frame that breaks its schema raises `DecodeError` with the
frame index and JSON path; a body that is not JSON raises `MalformedJSON`.

`encode(command, session)` builds the REST request of a `Start` (join: the older body, or the
newer one when the session names our own fabric address), `Send` (message) or `Recover` (first
history page); anything else raises `Unsupported`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from adapters.signalwire.native import (
    EVENT_TYPES,
    SUBTYPES,
    ConversationEnded,
    LiveEvent,
    MessageUpdated,
    Row,
    RpcEvent,
)
from gateway.adapter import Decoded, NativeRequest
from gateway.codec import conversation_id, convert_each, derived_id, event_id, loads, to_at
from gateway.errors import DecodeError, RequestError, SessionNotFound, Unsupported
from gateway.model import (
    Command,
    Ended,
    Event,
    Message,
    Notice,
    Party,
    Recover,
    Send,
    Start,
    Text,
)

DIALECT = "signalwire"
DEFAULT_PAGE_SIZE = 10  # the SDK's getMessages default
MESSAGES_PATH = "/api/fabric/messages"
JOIN_PATH = "/api/fabric/conversations/join"

_live_decoder = msgspec.json.Decoder(LiveEvent)
_PREFIX = conversation_id(DIALECT, "")
_PLAIN = (msgspec.Raw(b"{}"), msgspec.Raw(b""))  # absent or empty: nothing to parse
_NO_SELF: frozenset[str] = frozenset()

# ---------------------------------------------------------------------------------------------
# Decode


def decode(
    body: bytes | str,
    conversation: str | None = None,
    self_ids: Collection[str] = _NO_SELF,
) -> Decoded:
    """Decode a body (frame, array, or history page) into canonical events; see the module doc.

    `conversation` is the native conversation id for rows that carry none; `self_ids` are the
    addresses whose rows are the user's own.
    """
    fast = _decode_live(body, self_ids)
    if fast is not None:
        return fast
    doc = loads(body)
    frames: list[Any]
    if isinstance(doc, list):
        frames = doc
    elif isinstance(doc, dict) and "data" in doc and "id" not in doc and "method" not in doc:
        frames = doc["data"]
        if not isinstance(frames, list):
            raise DecodeError("`data` of a history page must be an array", index=0, path="$.data")
    else:
        frames = [doc]

    def convert(frame: Any, index: int) -> list[Event] | None:
        return _convert(frame, index, conversation, self_ids)

    batches, ignored = convert_each(frames, convert)
    return Decoded([event for batch in batches for event in batch], ignored)


def _decode_live(body: bytes | str, self_ids: Collection[str]) -> Decoded | None:
    """The hot path (one live chat message, float `ts`); `None` sends the body the long way.

    Maps exactly as `row_event` does, with fewer calls: keep the two in step.
    """
    try:
        live = _live_decoder.decode(body)
    except msgspec.DecodeError:
        return None
    row = live.params.params
    native = row.conversation_id or row.group_id
    if native is None:
        return None
    metadata: dict[str, Any] = {}
    if row.metadata not in _PLAIN or row.details not in _PLAIN or row.hidden:
        extra = _extra_metadata(row.metadata, row.details)
        if extra is None:
            return None
        metadata = extra
        if row.hidden:
            metadata["hidden"] = True
    sender = row.user_id or row.from_fabric_address_id or row.from_address_id
    mine = live.params.is_author or row.is_author or (bool(self_ids) and sender in self_ids)
    conv = _PREFIX + native
    try:
        at = to_at(row.ts)
    except ValueError:
        return None
    message = Message(
        id=f"{conv}/{row.id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=Party(role="user" if mine else "agent", id=sender, name=row.user_name),
        content=Text(row.text),
        metadata=metadata,
    )
    return Decoded([message])


def _extra_metadata(metadata: msgspec.Raw, details: msgspec.Raw) -> dict[str, Any] | None:
    try:
        meta = msgspec.json.decode(metadata) if len(metadata) else None
        info = msgspec.json.decode(details) if len(details) else None
    except msgspec.DecodeError:
        return None
    if not isinstance(meta, dict | None) or not isinstance(info, dict | None):
        return None
    out: dict[str, Any] = dict(meta) if meta else {}
    if info:
        out["details"] = info
    return out


def _convert(
    frame: Any, index: int, conversation: str | None, self_ids: Collection[str]
) -> list[Event] | None:
    if isinstance(frame, dict) and ("method" in frame or "jsonrpc" in frame):
        if frame.get("method") != "signalwire.event":
            return None  # a response, an ack, a ping: not an event
        params = frame.get("params")
        event_type = params.get("event_type") if isinstance(params, dict) else None
        if isinstance(event_type, str) and event_type not in EVENT_TYPES:
            return None
        events = rpc_events(msgspec.convert(frame, RpcEvent), conversation, self_ids, index)
        return events or None  # a row of a type/subtype we do not map: ignored, counted
    if isinstance(frame, dict):
        kind, subtype = frame.get("type", "message"), frame.get("subtype", "chat")
        if (isinstance(kind, str) and kind != "message") or (
            isinstance(subtype, str) and subtype not in SUBTYPES
        ):
            return None
    row = msgspec.convert(frame, Row)
    return [row_event(row, conversation, self_ids, index=index)]


def rpc_events(
    rpc: RpcEvent, conversation: str | None, self_ids: Collection[str], index: int
) -> list[Event]:
    """The canonical events of one live event (one, or none for a row of an unknown subtype)."""
    params = rpc.params
    if isinstance(params, ConversationEnded):
        return [_ended(params, conversation, index)]
    row = params.params
    if row.type != "message" or row.subtype not in SUBTYPES:
        return []
    event = row_event(
        row,
        conversation,
        self_ids,
        is_author=params.is_author,
        fallback_ts=params.timestamp,
        index=index,
        prefix="$.params.params",
    )
    if isinstance(params, MessageUpdated):
        event.metadata = {**event.metadata, "updates": event.id}
        event.id = derived_id(event.conversation_id, "updated", row.id, row.ts, row.text)
    return [event]


def row_event(
    row: Row,
    conversation: str | None,
    self_ids: Collection[str] = _NO_SELF,
    *,
    is_author: bool = False,
    fallback_ts: float | str | None = None,
    index: int = 0,
    prefix: str = "$",
) -> Message | Notice:
    """One message row as a `Message` (subtype chat) or a call-log `Notice` (subtype log).

    Raises `DecodeError` (at `prefix`) for a row without a conversation, a chat row without
    text, or a timestamp that is no time. A row without `ts` takes `fallback_ts` (the event's).
    """
    native = row.conversation or conversation
    if native is None:
        raise DecodeError(
            f"frame {index}: no conversation_id nor group_id",
            index=index,
            path=f"{prefix}.conversation_id",
        )
    conv = conversation_id(DIALECT, native)
    at = _at(row.ts if row.ts is not None else fallback_ts, index, f"{prefix}.ts")
    metadata: dict[str, Any] = dict(row.metadata) if row.metadata else {}
    if row.details:
        metadata["details"] = row.details
    if row.hidden:
        metadata["hidden"] = True
    if row.subtype == "log":
        return Notice(
            id=event_id(conv, row.id),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            kind="call_log",
            text=row.text or _call_log_text(row.details),
            metadata=metadata,
        )
    if row.text is None:
        raise DecodeError(
            f"frame {index}: a chat row needs `text`", index=index, path=f"{prefix}.text"
        )
    sender = row.sender
    mine = is_author or bool(row.is_author) or (sender is not None and sender in self_ids)
    return Message(
        id=event_id(conv, row.id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=Party(role="user" if mine else "agent", id=sender, name=row.user_name),
        content=Text(row.text),
        metadata=metadata,
    )


def _ended(params: ConversationEnded, conversation: str | None, index: int) -> Ended:
    body = params.params
    native = body.conversation or conversation
    if native is None:
        raise DecodeError(
            f"frame {index}: no conversation_id nor group_id",
            index=index,
            path="$.params.params.conversation_id",
        )
    conv = conversation_id(DIALECT, native)
    ts = body.ts if body.ts is not None else params.timestamp
    path = "$.params.params.ts" if body.ts is not None else "$.params.timestamp"
    at = _at(ts, index, path)
    return Ended(
        id=derived_id(conv, "ended", at, body.reason, body.by),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason=body.reason,
        by=body.by,
        text=body.text,
    )


def _at(value: float | str | None, index: int, path: str) -> str:
    try:
        return to_at(value)
    except ValueError as exc:
        message = f"frame {index}: bad timestamp {value!r}: {exc}"
        raise DecodeError(message, index=index, path=path) from None


def _call_log_text(details: Mapping[str, Any] | None) -> str:
    status = details.get("status") if details else None
    return f"call {status}" if status else "call"


# ---------------------------------------------------------------------------------------------
# Encode


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The REST request for `command`. `session` is the connector's snapshot: it names the
    conversation joined (`address_id`, or `group_id` after the newer join) and our own fabric
    address (`from_address_id`) when we have one.

    A `Start` names the address to chat with in `agent_id` or `participant.to` (else the
    session's `agent_id`); with a `from_address_id` it uses the newer join
    (`from_fabric_address_id` + `fabric_address_ids`, answered with a `group_id`), else the
    older `{"conversation_id": address}`. A `Send` in a group posts `group_id` (and our
    address), else `conversation_id`.

    Raises `RequestError` for a command missing what the platform needs, `Unsupported` for a
    command SignalWire chat cannot carry (typing, read, end, forward, non-text content).
    """
    match command:
        case Start():
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
        case Send():
            key = _rest_key(session)
            if not isinstance(command.content, Text):
                raise Unsupported(
                    f"signalwire sends text only, not {command.content.__struct_config__.tag!r}"
                )
            if not command.content.text.strip():
                raise RequestError("a message needs non-empty text")
            text = command.content.text
            if session.get("group_id"):
                body = {"group_id": key, "text": text}
                if session.get("from_address_id"):
                    body["from_fabric_address_id"] = session["from_address_id"]
                return NativeRequest(method="POST", path=MESSAGES_PATH, json=body)
            return NativeRequest(
                method="POST", path=MESSAGES_PATH, json={"conversation_id": key, "text": text}
            )
        case Recover():
            return history_request(_rest_key(session))
        case _:
            tag = command.__struct_config__.tag
            raise Unsupported(f"signalwire chat cannot carry {tag!r}")


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
