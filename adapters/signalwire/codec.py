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

Decoding has a fast path (the whole body decoded typed in one pass, then mapped) and the exact
path (parsed untyped, converted frame by frame); the fast path hands every body it cannot vouch
for, every invalid one included, to the exact path, so both give the same events and errors.

`encode(command, session)` builds the REST request of a `Start` (join: the older body, or the
newer one when the session names our own fabric address), `Send` (message) or `Recover` (first
history page); anything else raises `Unsupported`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

import msgspec

from adapters.signalwire.native import (
    ABSENT,
    EVENT_TYPES,
    SUBTYPES,
    ConversationEnded,
    EndedBody,
    FastConversationEnded,
    FastMessageEvent,
    FastMessageUpdated,
    FastPage,
    FastRow,
    FastRpcEvent,
    FastRpcParams,
    FrameHead,
    MessageUpdated,
    ParamsHead,
    Row,
    RpcEvent,
)
from gateway.adapter import Decoded, NativeRequest
from gateway.codec import (
    conversation_id,
    convert_each,
    derived_id,
    event_id,
    is_utf8,
    joined_id,
    loads,
    to_at,
)
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

DIALECT: Final = "signalwire"
DEFAULT_PAGE_SIZE: Final = 10  # the SDK's getMessages default
MESSAGES_PATH: Final = "/api/fabric/messages"
JOIN_PATH: Final = "/api/fabric/conversations/join"

_PREFIX: Final = conversation_id(DIALECT, "")
_NO_SELF: Final[frozenset[str]] = frozenset()
_EVENT_METHOD: Final = "signalwire.event"

# ---------------------------------------------------------------------------------------------
# Decode
#
# Two paths that give the same answer. The fast path decodes the whole body typed, in one pass
# (`native.Fast*`: `Row` and `RpcEvent` plus presence fields), and maps it with as few calls as it
# can. Whenever it meets anything it is not sure of (a typed decode fails, a row names no
# conversation, a timestamp is no time, a shape it does not handle), it gives up and the body
# takes the exact path: parsed untyped, each frame converted on its own, which names the
# failing frame's index and JSON path. Errors therefore always come from the exact path, and
# the fast path only has to be right about the bodies it accepts.

_frames_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])
_page_decoder: Final = msgspec.json.Decoder(FastPage)
_rows_decoder: Final = msgspec.json.Decoder(list[FastRow])
_rpc_decoder: Final = msgspec.json.Decoder(FastRpcEvent)
_row_decoder: Final = msgspec.json.Decoder(FastRow)
_head_decoder: Final = msgspec.json.Decoder(FrameHead)
_heads_decoder: Final = msgspec.json.Decoder(list[FrameHead])
_params_head_decoder: Final = msgspec.json.Decoder(ParamsHead)
_params_decoder: Final[msgspec.json.Decoder[FastRpcParams]] = msgspec.json.Decoder(FastRpcParams)

# What a body is, guessed from how it opens: its form (`{` or `[`) and its first key. A guess
# only: it picks the typed decoder to try first, and every decoder checks the whole body.
# Keyed by the fourth byte, which tells the usual openings apart (indexing bytes makes no
# object; a slice would cost a body ~0.1 µs more): a row `{"id`, a live event `{"jsonrpc` or
# `{"method`, a history page `{"data`, arrays of rows `[{"id` and of events `[{"jsonrpc`.
_ROW, _RPC, _PAGE, _ROWS, _RPCS, _OTHER = range(6)
_OPENINGS: Final = {
    ord("d"): _ROW,  # {"id
    ord("s"): _RPC,  # {"jsonrpc
    ord("e"): _RPC,  # {"method
    ord("a"): _PAGE,  # {"data
    ord("i"): _ROWS,  # [{"id
    ord("j"): _RPCS,  # [{"jsonrpc
    ord("m"): _RPCS,  # [{"method
}
_WHITESPACE: Final = b" \t\r\n"


class _Slow(Exception):
    """The fast path cannot vouch for this body: decode it the exact way."""


# What makes the fast path give up: `_Slow`, any msgspec error (`DecodeError` and
# `ValidationError` are `ValueError`s, and so is bad UTF-8 inside a string), `to_at`'s
# `ValueError`, nesting too deep for a typed decoder, and a body too short to guess from
# (`IndexError`). The exact path maps bad UTF-8 and deep nesting to `MalformedJSON` (`loads`):
# `decode` keeps `Adapter.decode`'s whole contract itself.
_GIVE_UP: Final = (_Slow, ValueError, RecursionError, IndexError)


def decode(
    body: bytes | str,
    conversation: str | None = None,
    self_ids: Collection[str] = _NO_SELF,
) -> Decoded:
    """Decode a body (frame, array, or history page) into canonical events; see the module doc.

    `conversation` is the native conversation id for rows that carry none; `self_ids` are the
    addresses whose rows are the user's own. Raises what `Adapter.decode` does (this is the
    adapter's `decode` itself): `MalformedJSON` for a body that is not JSON, nor UTF-8, or is
    nested too deeply; `DecodeError` for a known frame that breaks its schema.
    """
    # The fast path, inline (one call less on every body). A frame's shape is decided by which
    # keys it has, as the exact path does; how the body opens only says which typed decoder to
    # try first. Anything it cannot vouch for raises one of `_GIVE_UP`: the exact path.
    if not body.isascii() and not is_utf8(body):  # bad bytes a typed decode could skip unread
        return _decode_exact(body, conversation, self_ids)
    try:
        if type(body) is not bytes:
            body = _as_bytes(body)
        opening = _OPENINGS.get(body[3])  # a body under four bytes: `IndexError`
        if opening is None:
            opening = _opening(body)
        event: Event | None
        if opening == _RPC:
            try:
                rpc = _rpc_decoder.decode(body)
            except msgspec.ValidationError:
                event = _classify(body, conversation, self_ids, top=True)
            else:
                params = rpc.params
                if type(params) is FastMessageEvent:  # the live chat message: no detour
                    event = _row_event(
                        params.params, conversation, self_ids, params.is_author, params.timestamp
                    )
                else:
                    event = _rpc_event(params, conversation, self_ids)
        elif opening == _ROW:
            try:
                row = _row_decoder.decode(body)
            except msgspec.ValidationError:
                event = _classify(body, conversation, self_ids, top=True)
            else:
                if row.method is ABSENT and row.jsonrpc is ABSENT:
                    event = _row_event(row, conversation, self_ids, False, None)
                else:
                    event = _classify(body, conversation, self_ids, top=True)
        elif opening == _PAGE:
            page = _page_decoder.decode(body)  # fails for `{"params"...` too: the exact path
            if page.id is not ABSENT or page.method is not ABSENT:
                raise _Slow  # an object with `data` and `id` / `method` is a frame, not a page
            decoded = _rows(page.data, conversation, self_ids)
            if decoded is None:
                raise _Slow  # a JSON-RPC frame among the rows: the exact path
            return decoded
        elif opening == _ROWS:
            try:
                decoded = _rows(_rows_decoder.decode(body), conversation, self_ids)
            except msgspec.ValidationError:
                decoded = None
            if decoded is None:  # not rows only: frame by frame
                decoded = _frames(body, conversation, self_ids)
            return decoded
        elif opening == _RPCS:
            decoded = _rpc_frames(body, conversation, self_ids)
            if decoded is None:  # a row among them: frame by frame
                decoded = _frames(body, conversation, self_ids)
            return decoded
        else:
            raise _Slow  # a scalar, or no JSON: no frame at all, and the exact path says so
        return Decoded([event]) if event is not None else Decoded([], 1)
    except _GIVE_UP:
        pass  # outside the handler, so that its errors do not chain this exception
    return _decode_exact(body, conversation, self_ids)


def _as_bytes(body: bytes | str) -> bytes:
    """A `str` body (the connector's WebSocket text) as bytes; anything else gives up."""
    if type(body) is not str:
        raise _Slow
    return body.encode()  # lone surrogates: `UnicodeEncodeError`, a `ValueError`


def _opening(body: bytes) -> int:
    """`_OPENINGS` of a body that is pretty-printed (tests, people) or opens with another key."""
    compact = body[:64].translate(None, _WHITESPACE)
    opening = _OPENINGS.get(compact[3]) if len(compact) > 3 else None
    if opening is not None:
        return opening
    form = compact[:1]
    return _ROW if form == b"{" else _ROWS if form == b"[" else _OTHER


def _frames(body: bytes, conversation: str | None, self_ids: Collection[str]) -> Decoded:
    """An array of frames of mixed kinds (rows and JSON-RPC), each decoded on its own."""
    events: list[Event] = []
    ignored = 0
    for raw in _frames_decoder.decode(body):
        event = _frame(raw, conversation, self_ids)
        if event is None:
            ignored += 1
        else:
            events.append(event)
    return Decoded(events, ignored)


def _rows(
    rows: list[FastRow], conversation: str | None, self_ids: Collection[str]
) -> Decoded | None:
    """Frames decoded as rows in one pass; `None` when one of them is a JSON-RPC frame."""
    events: list[Event] = []
    ignored = 0
    for row in rows:
        if row.method is not ABSENT or row.jsonrpc is not ABSENT:
            return None
        event = _row_event(row, conversation, self_ids, False, None)
        if event is None:
            ignored += 1
        else:
            events.append(event)
    return Decoded(events, ignored)


def _rpc_frames(body: bytes, conversation: str | None, self_ids: Collection[str]) -> Decoded | None:
    """An array of JSON-RPC frames, their heads (`FrameHead`) decoded in one pass; `None` when
    one of them is a row (no `method` nor `jsonrpc`: no head tells it, `_frames` does).

    A head says what its frame is, as `_classify` does: only a `signalwire.event` whose
    `event_type` (`ParamsHead`) we map has its `params` decoded typed; pings, responses and
    other event types are counted with no typed decode, let alone a failed one (an exception).
    One pass for the heads instead of one for the frames' bytes (`_frames`), then a search of
    each frame's bytes for our event types and a second head for each frame we skip: ~17 %
    less time for `rpc_batch_array` (two events of ours among five frames).
    """
    events: list[Event] = []
    ignored = 0
    for head in _heads_decoder.decode(body):
        if head.method is msgspec.UNSET and head.jsonrpc is msgspec.UNSET:
            return None
        event = _rpc_head_event(head, conversation, self_ids)
        if event is None:
            ignored += 1
        else:
            events.append(event)
    return Decoded(events, ignored)


def _rpc_head_event(
    head: FrameHead, conversation: str | None, self_ids: Collection[str]
) -> Event | None:
    """A JSON-RPC frame by its head, as `_convert` decides: a response, an ack, a ping or an
    event type we do not map is `None` (ignored); our event is decoded from its `params`."""
    if head.method != _EVENT_METHOD:
        return None
    event_type = _params_head_decoder.decode(head.params).event_type
    if isinstance(event_type, str) and event_type not in EVENT_TYPES:
        return None
    return _rpc_event(_params_of(head), conversation, self_ids)


def _params_of(head: FrameHead) -> FastRpcParams:
    """The typed `params` of a `signalwire.event` from its head: what `FastRpcEvent` decodes,
    its envelope checked as `FastRpcEvent` types it (`jsonrpc` absent or `"2.0"`, `id` a
    string or an integer); anything else gives up."""
    jsonrpc, kind = head.jsonrpc, type(head.id)
    if (jsonrpc is not msgspec.UNSET and jsonrpc != "2.0") or (kind is not str and kind is not int):
        raise _Slow
    return _params_decoder.decode(head.params)


def _frame(raw: msgspec.Raw, conversation: str | None, self_ids: Collection[str]) -> Event | None:
    """One object frame of a mixed array as its event, or `None` when it is ignored (the exact
    path's `_convert`): a bare row (`FastRow`) first, else `_classify` decides what it is."""
    try:
        row = _row_decoder.decode(raw)
    except msgspec.ValidationError:
        return _classify(raw, conversation, self_ids, top=False)
    if row.method is not ABSENT or row.jsonrpc is not ABSENT:
        return _classify(raw, conversation, self_ids, top=False)
    return _row_event(row, conversation, self_ids, False, None)


def _classify(
    buf: bytes | msgspec.Raw, conversation: str | None, self_ids: Collection[str], top: bool
) -> Event | None:
    """A frame the likely decoder did not fit, by the keys it has (as `_convert` decides):
    JSON-RPC that is not a known event is ignored; anything else must decode as what it is."""
    head = _head_decoder.decode(buf)  # any object decodes; anything else gives up
    is_page = head.data is not ABSENT and head.id is msgspec.UNSET and head.method is msgspec.UNSET
    if top and is_page:
        raise _Slow  # a page that does not open with `data`: rare, the exact path
    if head.method is not msgspec.UNSET or head.jsonrpc is not msgspec.UNSET:
        return _rpc_head_event(head, conversation, self_ids)
    row = _row_decoder.decode(buf)
    return _row_event(row, conversation, self_ids, False, None)


def _rpc_event(
    params: FastRpcParams, conversation: str | None, self_ids: Collection[str]
) -> Event | None:
    """`rpc_events` of a fast-decoded live event's `params` (`None`: a row we do not map,
    ignored).

    Ids it derives are `joined_id` of one f-string: the same id as the exact path's
    `derived_id` of those parts (`{x}` formats as `str(x)` for every type here), for half the cost.
    """
    if isinstance(params, FastConversationEnded):
        body = params.params
        native = body.conversation_id or body.group_id or conversation
        if native is None:
            raise _Slow
        conv = _PREFIX + native
        at = to_at(body.ts if body.ts is not None else params.timestamp)
        reason, by = body.reason, body.by
        return Ended(
            id=joined_id(conv, f"ended\x1f{at}\x1f{reason}\x1f{by}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            reason=reason,
            by=by,
            text=body.text,
        )
    row = params.params
    event = _row_event(row, conversation, self_ids, params.is_author, params.timestamp)
    if event is not None and type(params) is FastMessageUpdated:
        # `_row_event`'s metadata is this event's own dict: extended in place, the key lands
        # where `{**metadata, "updates": ...}` (the exact path) puts it.
        event.metadata["updates"] = event.id
        event.id = joined_id(
            event.conversation_id, f"updated\x1f{row.id}\x1f{row.ts}\x1f{row.text}"
        )
    return event


def _row_event(
    row: FastRow,
    conversation: str | None,
    self_ids: Collection[str],
    is_author: bool,
    fallback_ts: float | str | None,
) -> Message | Notice | None:
    """`row_event` of a fast-decoded row, `None` for a type/subtype we do not map.

    Maps exactly as `row_event` does (keep the two in step; `test_codec` compares them on
    every fixture); where `row_event` raises, this gives up instead.
    """
    subtype = row.subtype
    if row.type != "message" or (subtype != "chat" and subtype != "log"):
        return None
    native = row.conversation_id or row.group_id or conversation
    if native is None:
        raise _Slow
    conv = _PREFIX + native
    ts = row.ts
    at = to_at(ts if ts is not None else fallback_ts)
    # The decoded `metadata` dict is this row's own: it becomes the event's without a copy.
    metadata = row.metadata
    if metadata is None:
        metadata = {}
    details = row.details
    if details:
        metadata["details"] = details
    if row.hidden:
        metadata["hidden"] = True
    if subtype == "log":
        return Notice(
            id=f"{conv}/{row.id}",
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            kind="call_log",
            text=row.text or _call_log_text(details),
            metadata=metadata,
        )
    text = row.text
    if text is None:
        raise _Slow
    sender = row.user_id or row.from_fabric_address_id or row.from_address_id
    mine = is_author or row.is_author or (sender is not None and sender in self_ids)
    return Message(
        id=f"{conv}/{row.id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=Party("user" if mine else "agent", sender, row.user_name),  # positional: cheaper
        content=Text(text),
        metadata=metadata,
    )


# The exact path: what every body took before the fast path, and still the reference for it.


def _decode_exact(
    body: bytes | str, conversation: str | None, self_ids: Collection[str]
) -> Decoded:
    """Parse untyped and convert frame by frame: slower, and exact about errors (index, path)."""
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
        return _convert(frame, index, conversation, self_ids)

    batches, ignored = convert_each(frames, convert)
    return Decoded([event for batch in batches for event in batch], ignored)


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
    return _ended_event(body, conv, _at(ts, index, path))


def _ended_event(body: EndedBody, conv: str, at: str) -> Ended:
    """The `ended` of our `conversation.ended` event's body (the exact path; the fast one
    builds the same in `_rpc_event`)."""
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
