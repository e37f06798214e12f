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

`encode(command, session)` builds the REST request of a `Start` (join), `Send` (message) or
`Recover` (first history page); anything else raises `Unsupported`.
"""

from __future__ import annotations

import time
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
# Timestamps

_last_second: list[Any] = [None, ""]  # one-entry cache: live frames cluster within a second
_MILLIS = [f"{ms:03d}Z" for ms in range(1000)]


def at_of(value: float | str | None) -> str:
    """`gateway.codec.to_at`, with a fast path for the float epoch seconds SignalWire sends.

    Same result as `to_at` (rounding half-even to microseconds, then truncating to ms, as
    `datetime.fromtimestamp` does); about 4x faster because the formatted second is cached.
    """
    if type(value) is not float or not 0 <= value < 1e11:
        return to_at(value)
    second = int(value)
    micros = round((value - second) * 1e6)
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    if _last_second[0] != second:
        t = time.gmtime(second)
        _last_second[1] = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        )
        _last_second[0] = second
    return _last_second[1] + _MILLIS[micros // 1000]  # type: ignore[no-any-return]


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
        at = at_of(row.ts)
    except (ValueError, OverflowError, OSError):
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
        return at_of(value)
    except (ValueError, OverflowError, OSError) as exc:
        message = f"frame {index}: bad timestamp {value!r}: {exc}"
        raise DecodeError(message, index=index, path=path) from None


def _call_log_text(details: Mapping[str, Any] | None) -> str:
    status = details.get("status") if details else None
    return f"call {status}" if status else "call"


# ---------------------------------------------------------------------------------------------
# Encode


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The REST request for `command`. `session` is the connector's snapshot (it names the
    `address_id` joined); a `Start` names the address in `agent_id` or `participant.to`.

    Raises `RequestError` for a command missing what the platform needs, `Unsupported` for a
    command SignalWire chat cannot carry (typing, read, end, forward, non-text content).
    """
    match command:
        case Start():
            address = command.agent_id or command.participant.to or session.get("address_id")
            if not address:
                raise RequestError(
                    "start needs the address to chat with (agent_id)", code="MISSING_ADDRESS"
                )
            return NativeRequest(method="POST", path=JOIN_PATH, json={"conversation_id": address})
        case Send():
            address = _address(session)
            if not isinstance(command.content, Text):
                raise Unsupported(
                    f"signalwire sends text only, not {command.content.__struct_config__.tag!r}"
                )
            if not command.content.text.strip():
                raise RequestError("a message needs non-empty text")
            return NativeRequest(
                method="POST",
                path=MESSAGES_PATH,
                json={"conversation_id": address, "text": command.content.text},
            )
        case Recover():
            return history_request(_address(session))
        case _:
            tag = command.__struct_config__.tag
            raise Unsupported(f"signalwire chat cannot carry {tag!r}")


def history_request(address: str, page_size: int = DEFAULT_PAGE_SIZE) -> NativeRequest:
    """The first history page of the conversation with `address` (later pages: `links`)."""
    if page_size < 1:
        raise RequestError("page_size must be at least 1")
    return NativeRequest(
        method="GET",
        path=f"/api/fabric/conversations/{address}/messages",
        query={"page_size": str(page_size)},
    )


def _address(session: Mapping[str, Any]) -> str:
    address = session.get("address_id")
    if not isinstance(address, str) or not address:
        raise SessionNotFound("no signalwire conversation in this session")
    return address
