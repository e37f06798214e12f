"""SignalWire decoding: native frames → canonical events. Pure: no I/O, no logging.

`decode(body, conversation, own_address)` accepts one frame, an array of frames, or a REST
history page (`{"data": [...], "links": {...}}`); a frame is a JSON-RPC `signalwire.event` or a
bare message row (see `native.py`). Mapping:

- a row of subtype `chat` → `Message` (text), id `"signalwire:<conv>/<row id>"`; a chat row
  whose `text` is null or absent is a message with empty text (the SDK keeps such a row among
  its text messages);
- a row of subtype `log` (call history) → `Notice(kind="call_log")`, never a Message;
- `conversation.message.updated` → `Message` with a derived id and `metadata.updates` naming
  the original (the original id would be dropped by the hub's dedup);
- `conversation.ended` (our own) → `Ended`;
- the sender is the user when `is_author` is true or an author field of the row
  (`user_id`, `from_fabric_address_id`, `from_address_id`) is `own_address`, the gateway's own
  address in the conversation; otherwise an agent.

Unknown event types (`signalwire.authorization.state` among them: it is the link's, not the
conversation's), JSON-RPC responses and other methods, and rows of another type/subtype are
ignored and counted. A known frame that breaks its schema raises `DecodeError` with the frame
index and JSON path; a body that is not JSON raises `MalformedJSON`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from adapters.signalwire.native import (
    DIALECT,
    EVENT_TYPES,
    SUBTYPES,
    ConversationEnded,
    MessageUpdated,
    Row,
    RpcEvent,
)
from gateway.adapter import Decoded
from gateway.codec import conversation_id, convert_each, derived_id, event_id, loads, to_at
from gateway.errors import DecodeError
from gateway.model import Ended, Event, Message, Notice, Party, Text

EVENT_METHOD = "signalwire.event"


def decode(
    body: bytes | str, conversation: str | None = None, own_address: str | None = None
) -> Decoded:
    """Decode a body (frame, array, or history page) into canonical events; see the module doc.

    `conversation` is the native conversation id for rows that carry none; `own_address` is
    the gateway's own address in the conversation (its rows are the user's).
    """
    doc = loads(body)
    frames: list[Any]
    if isinstance(doc, list):
        frames = doc
    elif isinstance(doc, dict) and "data" in doc and "id" not in doc and "method" not in doc:
        data = doc["data"]
        if not isinstance(data, list):
            raise DecodeError("`data` of a history page must be an array", index=0, path="$.data")
        frames = data
    else:
        frames = [doc]

    def convert(frame: Any, index: int) -> list[Event] | None:
        return _convert(frame, index, conversation, own_address)

    batches, ignored = convert_each(frames, convert)
    return Decoded([event for batch in batches for event in batch], ignored)


def _convert(
    frame: Any, index: int, conversation: str | None, own_address: str | None
) -> list[Event] | None:
    """One frame's events, or None for a frame we do not map (ignored, counted)."""
    if isinstance(frame, dict) and ("method" in frame or "jsonrpc" in frame):
        if frame.get("method") != EVENT_METHOD:
            return None  # a response, an ack, a ping: not an event
        params = frame.get("params")
        event_type = params.get("event_type") if isinstance(params, dict) else None
        if isinstance(event_type, str) and event_type not in EVENT_TYPES:
            return None
        events = rpc_events(msgspec.convert(frame, RpcEvent), conversation, own_address, index)
        return events or None
    if isinstance(frame, dict):
        kind, subtype = frame.get("type", "message"), frame.get("subtype", "chat")
        if (isinstance(kind, str) and kind != "message") or (
            isinstance(subtype, str) and subtype not in SUBTYPES
        ):
            return None
    row = msgspec.convert(frame, Row)
    return [row_event(row, conversation, own_address, index=index)]


def rpc_events(
    rpc: RpcEvent, conversation: str | None, own_address: str | None, index: int
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
        own_address,
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
    own_address: str | None = None,
    *,
    is_author: bool = False,
    fallback_ts: float | str | None = None,
    index: int = 0,
    prefix: str = "$",
) -> Message | Notice:
    """One message row as a `Message` (subtype chat) or a call-log `Notice` (subtype log).

    Raises `DecodeError` (at `prefix`) for a row without a conversation, or a timestamp that
    is no time. A row without `ts` takes `fallback_ts` (the event's).
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
    mine = is_author or bool(row.is_author) or row.is_from(own_address)
    return Message(
        id=event_id(conv, row.id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=Party(role="user" if mine else "agent", id=row.sender, name=row.user_name),
        content=Text(row.text or ""),
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
