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

History pages (`collect_chat`, below) fold REST pages into chat pages the way the SDK's
`chat.getMessages` does, with cursors we can hand to a frontend; the connector fetches them
and maps their rows with `row_event`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from adapters.signalwire.native import (
    DIALECT,
    EVENT_TYPES,
    SUBTYPES,
    ConversationEnded,
    Frame,
    MessageUpdated,
    Page,
    Row,
)
from gateway.codec import event_id, to_at
from gateway.decoding import Envelope, Refused, Scope, Skip, Spec
from gateway.model import Ended, Event, Message, Notice, Party, Text

EVENT_METHOD = "signalwire.event"


class PageEnvelope(msgspec.Struct):
    """A REST history page: its rows are the frames (`links` is the connector's to follow)."""

    data: list[msgspec.Raw]


def conversation(frame: Frame, scope: Scope) -> str:
    """A frame's native conversation (`conversation_id`, else `group_id`, else the body's);
    raises `Skip` for a frame we do not map, and `Refused` for one that names no conversation
    or a bare row whose `id` is no string."""
    if frame.rpc:
        params = frame.params
        if frame.method != EVENT_METHOD:
            raise Skip  # a response, or another request
        if params is msgspec.UNSET:
            raise Refused("Object missing required field `params`", "$")
        if not isinstance(params, ConversationEnded) and not params.params.maps:
            raise Skip
        found, path = params.params.conversation, "$.params.params.conversation_id"
    else:
        if not frame.maps:
            raise Skip
        if not isinstance(frame.id, str):
            problem = "Object missing required field `id`" if frame.id is None else "Expected `str`"
            raise Refused(problem, "$" if frame.id is None else "$.id")
        found, path = frame.conversation, "$.conversation_id"
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


def build(frame: Frame, scope: Scope) -> list[Event]:
    """One frame's canonical event (`conversation` has skipped those we do not map)."""
    params = frame.params
    if params is msgspec.UNSET:  # a bare row
        return [_row_event(frame, scope, False, None, "$.ts")]
    if isinstance(params, ConversationEnded):
        return [_ended(params, scope)]
    row = params.params
    if params.is_author and row.sender:
        scope.learn(own_address=row.sender)
    event = _row_event(row, scope, params.is_author, params.timestamp, "$.params.params.ts")
    if isinstance(params, MessageUpdated):
        event.metadata = {**event.metadata, "updates": event.id}
        event.id = scope.event_id("updated", row.id, row.ts, row.text)
    return [event]


def _row_event(
    row: Row | Frame, scope: Scope, is_author: bool, fallback_ts: float | str | None, path: str
) -> Message | Notice:
    """`row_event` for a frame of the body (`path`: where its `ts` is): the own address is read
    from the conversation's context only for a chat row no author flag makes the user's."""
    conv = scope.conversation_id
    if row.ts is not None:
        at = _at(row.ts, path)
    elif fallback_ts is not None:
        at = _at(fallback_ts, path)
    else:
        at = scope.received_at
    if row.subtype == "log":
        return _notice(row, conv, at)
    return _message(row, conv, at, is_author or bool(row.is_author) or row.is_from(_own(scope)))


def _own(scope: Scope) -> str | None:
    """The conversation's own address: its context's, else the configured one (`address_id`,
    our own fabric address, which ingest hands over as a decode option)."""
    configured = scope.options.get("address_id")
    return scope.context().own_address or (configured if isinstance(configured, str) else None)


def row_event(
    row: Row,
    conversation_id: str,
    own_address: str | None,
    scope: Scope | None = None,
    *,
    is_author: bool = False,
    fallback_ts: float | str | None = None,
    prefix: str = "$",
) -> Message | Notice:
    """One message row of `conversation_id` as a `Message` (subtype chat) or a call-log
    `Notice` (subtype log). A row without `ts` takes `fallback_ts` (the event's), else the
    body's arrival (`scope`), else now. Raises `Refused` for a timestamp that is no time."""
    ts = row.ts if row.ts is not None else fallback_ts
    at = scope.received_at if ts is None and scope is not None else _at(ts, f"{prefix}.ts")
    if row.subtype == "log":
        return _notice(row, conversation_id, at)
    mine = is_author or bool(row.is_author) or row.is_from(own_address)
    return _message(row, conversation_id, at, mine)


def _message(row: Row | Frame, conversation_id: str, at: str, mine: bool) -> Message:
    """A chat row as a `Message`: the user's when `mine`, else an agent's."""
    return Message(
        id=event_id(conversation_id, row.id),
        conversation_id=conversation_id,
        dialect=DIALECT,
        at=at,
        metadata=_metadata(row),
        sender=Party(role="user" if mine else "agent", id=row.sender, name=row.user_name),
        content=Text(row.text or ""),
    )


def _notice(row: Row | Frame, conversation_id: str, at: str) -> Notice:
    """A log row (call history) as a call-log `Notice`."""
    return Notice(
        id=event_id(conversation_id, row.id),
        conversation_id=conversation_id,
        dialect=DIALECT,
        at=at,
        metadata=_metadata(row),
        kind="call_log",
        text=row.text or _call_log_text(row.details),
    )


def _metadata(row: Row | Frame) -> dict[str, Any]:
    """A row's event metadata: its `metadata`, with its `details` and `hidden` when set (a new
    dict then; the row's own otherwise)."""
    if not row.details and not row.hidden:
        return row.metadata or {}
    metadata = dict(row.metadata) if row.metadata else {}
    if row.details:
        metadata["details"] = row.details
    if row.hidden:
        metadata["hidden"] = True
    return metadata


def _ended(params: ConversationEnded, scope: Scope) -> Ended:
    body = params.params
    if body.ts is not None:
        at = _at(body.ts, "$.params.params.ts")
    elif params.timestamp is not None:
        at = _at(params.timestamp, "$.params.timestamp")
    else:
        at = scope.received_at
    return Ended(
        id=scope.event_id("ended", at, body.reason, body.by),
        conversation_id=scope.conversation_id,
        dialect=DIALECT,
        at=at,
        reason=body.reason,
        by=body.by,
        text=body.text,
    )


def _at(value: float | str | None, path: str) -> str:
    """A native time as the canonical one (None: now); `Refused` at `path` for one that is no
    time."""
    try:
        return to_at(value)
    except ValueError as exc:
        raise Refused(f"bad timestamp {value!r}: {exc}", path) from None


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


# ---------------------------------------------------------------------------------------------
# History pages
#
# Chat-history paging the way the SDK's `chat.getMessages` does it, with cursors we can hand
# to a frontend.
#
# The platform pages every row of a conversation, newest first (chat text, call logs, other
# conversations' rows on shared pages), and links pages by opaque absolute URLs. A frontend wants
# `limit` chat messages at a time. As in the SDK, a row belongs when `subtype == "chat"` and its
# conversation (`conversation_id`, or `group_id` in the newer API) is the one asked for, and a
# short page is filled from the `next` link.
#
# A `Cursor` names a place among those rows: a platform page URL and an index among that page's
# chat rows. Going *forward* (`next`, older rows) collects from that index on, across `next`
# links, until `limit` rows are in; going *back* (`prev`, newer rows) takes the `limit` rows
# before an index of one page (the platform's `prev` link when the page holds none before it).
# So a page that stops in the middle of a platform page continues exactly where it stopped, in
# either direction, with no row shown twice or skipped::
#
#     pages = [(url, first_page)]                       # GET .../conversations/{addr}/messages
#     chat = collect_chat(pages, addr, 10)
#     while not chat.complete:                          # fewer than 10 rows and a `next` link
#         pages.append((chat.fetch, get(chat.fetch)))   # links are opaque absolute URLs
#         chat = collect_chat(pages, addr, 10)
#     chat.rows, chat.next, chat.prev                   # rows newest first, as the platform
#
# `encode_cursor`/`decode_cursor` turn a `Cursor` into the opaque token frontends pass back; the
# connector checks that its URL is on the platform's own origin and conversation before it
# fetches anything (a cursor is client input).

MAX_PAGES = 20
"""Platform pages one answer reads at most (a conversation of call logs could be long)."""


class Cursor(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A place among the chat rows of the platform page at `url`.

    Forward (`before` is None): the rows from chat index `start` on, then the next pages'.
    Back (`before` set): the `limit` rows before chat index `before` of this page alone
    (`-1`: before the page's end, i.e. its last rows).
    """

    url: str
    start: int = 0
    before: int | None = None


class ChatPage(msgspec.Struct, kw_only=True):
    """One page of chat rows (newest first), and the cursors around it."""

    rows: list[Row]
    next: Cursor | None = None
    """Where the older rows continue; None at the conversation's first message."""
    prev: Cursor | None = None
    """Where the newer rows are; None on the newest page."""
    complete: bool = True
    """False while the page is short and `fetch` (a `next` link) could fill it."""
    fetch: str | None = None

    @property
    def has_next(self) -> bool:
        return self.next is not None

    @property
    def has_prev(self) -> bool:
        return self.prev is not None


def chat_rows(page: Page, conversation: str) -> list[Row]:
    """The page's chat rows of `conversation`, in the platform's order."""
    return [r for r in page.data if r.subtype == "chat" and r.conversation == conversation]


def collect_chat(
    pages: Sequence[tuple[str, Page]],
    conversation: str,
    limit: int,
    cursor: Cursor | None = None,
) -> ChatPage:
    """Collect up to `limit` chat rows of `conversation` from `pages`: `(url, page)` pairs in
    the order read, the first at `cursor` (None: the newest page, from its start)."""
    if not pages:
        return ChatPage(rows=[])
    first_url, first = pages[0]
    if cursor is not None and cursor.before is not None:
        return _back(first_url, first, conversation, limit, cursor.before)
    start = cursor.start if cursor is not None else 0
    rows: list[Row] = []
    next_cursor: Cursor | None = None
    for index, (url, page) in enumerate(pages):
        chat = chat_rows(page, conversation)
        offset = start if index == 0 else 0
        taken = chat[offset : offset + limit - len(rows)]
        rows += taken
        if offset + len(taken) < len(chat):  # the page holds more: continue right here
            next_cursor = Cursor(url=url, start=offset + len(taken))
            break
        next_cursor = Cursor(url=page.links.next) if page.links.next else None
        if len(rows) >= limit:
            break
    else:
        if len(rows) < limit and next_cursor is not None and len(pages) < MAX_PAGES:
            return ChatPage(rows=rows, complete=False, fetch=next_cursor.url)
    return ChatPage(rows=rows, next=next_cursor, prev=_before(first_url, first, start))


def _back(url: str, page: Page, conversation: str, limit: int, before: int) -> ChatPage:
    chat = chat_rows(page, conversation)
    end = len(chat) if before < 0 else min(before, len(chat))
    begin = max(0, end - limit)
    if end < len(chat):
        next_cursor: Cursor | None = Cursor(url=url, start=end)
    else:
        next_cursor = Cursor(url=page.links.next) if page.links.next else None
    return ChatPage(rows=chat[begin:end], next=next_cursor, prev=_before(url, page, begin))


def _before(url: str, page: Page, start: int) -> Cursor | None:
    """The cursor of the rows newer than chat index `start` of the page at `url`."""
    if start > 0:
        return Cursor(url=url, before=start)
    return Cursor(url=page.links.prev, before=-1) if page.links.prev else None


_cursor_encoder = msgspec.json.Encoder()
_cursor_decoder = msgspec.json.Decoder(Cursor)


def encode_cursor(cursor: Cursor) -> str:
    """The opaque token a frontend passes back (URL-safe base64 of the cursor's JSON)."""
    return base64.urlsafe_b64encode(_cursor_encoder.encode(cursor)).rstrip(b"=").decode()


def decode_cursor(token: str) -> Cursor:
    """The cursor a token names; `ValueError` for anything `encode_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = _cursor_decoder.decode(raw)
    except (binascii.Error, msgspec.DecodeError, ValueError):
        raise ValueError("not a signalwire history cursor") from None
    if cursor.start < 0 or (cursor.before is not None and cursor.before < -1):
        raise ValueError("not a signalwire history cursor")
    return cursor
