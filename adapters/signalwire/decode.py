"""SignalWire frames → canonical events: the dialect's spec for the shared pipeline
(`gateway.decoding`). Pure: no I/O, no logging.

A body is one frame, an array of frames, or a REST history page (`{"data": [...], "links":
{...}}`, the envelope); a frame is a JSON-RPC message of the Relay socket or a bare message row
(`native.py`). The two shapes share no key that names an event (a live event names it at
`params.event_type`, a row by its `type`/`subtype`), so frames are read untyped, told apart by
their keys (`conversation`), and converted to the native Structs by the builder (`build`),
where msgspec names the path of anything that breaks them. Mapping:

- a row of subtype `chat` → `Message` (text), id `"signalwire:<conv>/<row id>"`; a chat row
  whose `text` is null or absent is a message with empty text (the SDK's types allow it, and
  its v4 `Address.textMessage` keeps every chat row among the text messages);
- a row of subtype `log` (call history) → `Notice(kind="call_log")`, never a Message;
- `conversation.message.updated` → `Message` with a derived id and `metadata.updates` naming
  the original (the original id would be dropped by the hub's dedup);
- `conversation.ended` (our own) → `Ended`;
- the sender is the user when `is_author` is true or an author field of the row (`user_id`,
  `from_fabric_address_id`, `from_address_id`) is the conversation's own address
  (`ConversationContext.own_address`, else the configured `address_id`); otherwise an agent.
  A live event with `is_author: true` teaches the conversation that its author is the own
  address (`Scope.learn`): history rows carry no `is_author`.

Skipped and counted as ignored: JSON-RPC methods other than `signalwire.event` (by name),
responses, event types we do not map (`signalwire.authorization.state` among them: it is the
link's, not the conversation's), and rows of another type/subtype.

The connector maps the rows of REST history pages (folded by `native.collect_chat`) with
`row_event`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from adapters.signalwire.native import (
    DIALECT,
    EVENT_TYPES,
    SUBTYPES,
    ConversationEnded,
    Frame,
    MessageUpdated,
    Row,
)
from gateway.decoding import SKIP, Envelope, Refused, Scope, Skip, Spec, native_time
from gateway.model import Ended, Event, Message, Notice, Party, Text

EVENT_METHOD = "signalwire.event"
_BAD_TIME = "bad timestamp {value!r}: {error}"
"""How a native time that is no time is refused (`native_time`)."""


class PageEnvelope(msgspec.Struct):
    """A REST history page: its rows are the frames (`links` is the connector's to follow)."""

    data: list[msgspec.Raw]


def conversation(frame: Frame, scope: Scope) -> str | Literal[Skip.SKIP]:
    """A frame's native conversation (`conversation_id`, else `group_id`, else the body's);
    `SKIP` for a frame we do not map; raises `Refused` for one that names no conversation
    or a bare row whose `id` is no string."""
    if frame.method is None and frame.jsonrpc is None:  # a bare row
        if frame.type != "message" or frame.subtype not in SUBTYPES:
            return SKIP
        if type(frame.id) is not str:
            if frame.id is None:
                raise Refused("Object missing required field `id`", "$")
            raise Refused("Expected `str`", "$.id")
        found, path = frame.conversation_id or frame.group_id, "$.conversation_id"
    else:
        if frame.method != EVENT_METHOD:
            return SKIP  # a response, or another request
        params = frame.params
        if params is msgspec.UNSET:
            raise Refused("Object missing required field `params`", "$")
        body = params.params
        if type(body) is Row and (body.type != "message" or body.subtype not in SUBTYPES):
            return SKIP
        found, path = body.conversation_id or body.group_id, "$.params.params.conversation_id"
    if found:
        return found
    if scope.conversation is not None:
        return scope.conversation
    raise Refused("no conversation_id nor group_id", path)


class _Named(msgspec.Struct, gc=False):
    method: Any = None
    jsonrpc: Any = None
    params: Any = None
    type: Any = "message"
    subtype: Any = "chat"


_named = msgspec.json.Decoder(_Named)


def name(raw: msgspec.Raw) -> str | None:
    """The name of a frame that did not decode (`Spec.name`): a `signalwire.event`'s event
    type, another JSON-RPC message's method, a row's `<type>/<subtype>`; None when the frame
    does not say."""
    try:
        named = _named.decode(raw)
    except msgspec.ValidationError:
        return None
    if named.method is not None or named.jsonrpc is not None:
        if named.method != EVENT_METHOD:
            return named.method if isinstance(named.method, str) else None
        params = named.params if isinstance(named.params, dict) else {}
        event_type: str | None = params.get("event_type")
        return event_type
    if isinstance(named.type, str) and isinstance(named.subtype, str):
        return f"{named.type}/{named.subtype}"
    return None


def build(frame: Frame, scope: Scope) -> tuple[Event]:
    """One frame's canonical event (`conversation` has skipped those we do not map). A row
    without `ts` takes its live event's `timestamp`, else the body's arrival. A chat row is
    the user's when an `is_author` flag says so, else when an author field names the
    conversation's own address (`_own`, read only then)."""
    params = frame.params
    row: Row | Frame
    if params is msgspec.UNSET:  # a bare row
        row, mine = frame, frame.is_author
        at = native_time(frame.ts, "$.ts", _BAD_TIME, scope)
    elif isinstance(params, ConversationEnded):
        return (_ended(params, scope),)
    else:
        row, mine = params.params, params.is_author or params.params.is_author
        if params.is_author:
            sender = row.user_id or row.from_fabric_address_id or row.from_address_id
            if sender:
                scope.learn(own_address=sender)
        ts = row.ts if row.ts is not None else params.timestamp
        at = native_time(ts, "$.params.params.ts", _BAD_TIME, scope)
    event: Message | Notice
    if row.subtype == "log":
        event = _notice(row, scope.conversation_id, at)
    else:
        event = _message(row, scope.conversation_id, at, bool(mine) or row.is_from(_own(scope)))
    if isinstance(params, MessageUpdated):
        event.metadata = {**event.metadata, "updates": event.id}
        event.id = scope.event_id("updated", row.id, row.ts, row.text)
    return (event,)


def _own(scope: Scope) -> str | None:
    """The conversation's own address: its context's, else the configured one (`address_id`,
    our own fabric address, which ingest hands over as a decode option)."""
    configured = scope.options.get("address_id")
    return scope.context().own_address or (configured if isinstance(configured, str) else None)


def row_event(row: Row, conversation_id: str, own_address: str | None) -> Message | Notice:
    """One message row of a REST history page of `conversation_id` as a `Message` (subtype
    chat; the user's when `is_author` or an author field names `own_address`) or a call-log
    `Notice` (subtype log); a row without `ts` is now. Raises `Refused` for a timestamp that is
    no time."""
    at = native_time(row.ts, "$.ts", _BAD_TIME)
    if row.subtype == "log":
        return _notice(row, conversation_id, at)
    return _message(row, conversation_id, at, bool(row.is_author) or row.is_from(own_address))


def _message(row: Row | Frame, conversation_id: str, at: str, mine: bool) -> Message:
    """A chat row as a `Message`: the user's when `mine`, else an agent's."""
    return Message(
        id=f"{conversation_id}/{row.id}",
        conversation_id=conversation_id,
        dialect=DIALECT,
        at=at,
        metadata=_metadata(row) if row.details or row.hidden else row.metadata or {},
        sender=Party(
            role="user" if mine else "agent",
            id=row.user_id or row.from_fabric_address_id or row.from_address_id,
            name=row.user_name,
        ),
        content=Text(row.text or ""),
    )


def _notice(row: Row | Frame, conversation_id: str, at: str) -> Notice:
    """A log row (call history) as a call-log `Notice`."""
    return Notice(
        id=f"{conversation_id}/{row.id}",
        conversation_id=conversation_id,
        dialect=DIALECT,
        at=at,
        metadata=_metadata(row) if row.details or row.hidden else row.metadata or {},
        kind="call_log",
        text=row.text or _call_log_text(row.details),
    )


def _metadata(row: Row | Frame) -> dict[str, Any]:
    """The metadata of a row with `details` or `hidden` set: its `metadata`, with those (a
    new dict; a row without either has its own `metadata` as the event's)."""
    metadata = dict(row.metadata) if row.metadata else {}
    if row.details:
        metadata["details"] = row.details
    if row.hidden:
        metadata["hidden"] = True
    return metadata


def _ended(params: ConversationEnded, scope: Scope) -> Ended:
    body = params.params
    if body.ts is not None:
        at = native_time(body.ts, "$.params.params.ts", _BAD_TIME)
    else:
        at = native_time(params.timestamp, "$.params.timestamp", _BAD_TIME, scope)
    return Ended(
        id=scope.event_id("ended", at, body.reason, body.by),
        conversation_id=scope.conversation_id,
        dialect=DIALECT,
        at=at,
        reason=body.reason,
        by=body.by,
        text=body.text,
    )


def _call_log_text(details: Mapping[str, Any] | None) -> str:
    status = details.get("status") if details else None
    return f"call {status}" if status else "call"


SPEC: Spec[Frame] = Spec(
    dialect=DIALECT,
    frame=Frame,
    tag="method",
    build=build,
    conversation=conversation,
    envelopes=(Envelope("data", PageEnvelope, frames="data"),),
    contextual=True,
    known=EVENT_TYPES | {f"message/{subtype}" for subtype in SUBTYPES},
    name=name,
)
