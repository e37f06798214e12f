"""SignalWire Call Fabric chat: the native frames we read and write (private to this package).

Three shapes reach decoding (see `docs/dialects/signalwire.md`):

- a JSON-RPC 2.0 event from the Relay WebSocket::

    {"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event",
     "params": {"event_type": "conversation.message", "event_channel": "...",
                "timestamp": 1708192187.7, "is_author": true, "params": {<message row>}}}

- a REST history page ``{"data": [<row>, ...], "links": {"next": "...", "prev": "..."}}``;
- a bare message row (the seed's ``ConversationChatMessage``)::

    {"id": "3c11...", "conversation_id": "9dbe...", "user_id": "cecb...", "ts": 1708192187.67,
     "details": {}, "type": "message", "subtype": "chat" | "log", "text": "..."}

Rows come in two vintages: older ``conversation_id`` + ``user_id``, newer ``group_id`` +
``from_fabric_address_id``; both are accepted. The SDK's types allow a chat row whose ``text``
is null (`@signalwire/core` `types/conversation.ts`, the v4 SDK's `ConversationMessagePayload`)
and an ``event_channel`` that is a string or an array of strings (v4 `EventChannel`).
``conversation.ended`` is OUR OWN invention (the platform documents no end of a chat); the
emulator sends it when the agent closes a conversation.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, TypeAlias

import msgspec

from gateway.model import EndedBy, EndReason

DIALECT = "signalwire"

MESSAGE_EVENTS = frozenset({"conversation.message", "conversation.message.updated"})
EVENT_TYPES = MESSAGE_EVENTS | {"conversation.ended"}
SUBTYPES = frozenset({"chat", "log"})
AUTHORIZATION_STATE = "signalwire.authorization.state"
"""The event that hands the client the opaque state it sends back on a reconnect."""


# The inbound Structs are `gc=False`: made from JSON, they hold no reference cycles, so the
# cyclic collector need not track the many a busy socket decodes. Fields are declared in the
# order the platform sends them (msgspec looks a key up from the field after the last found).
class _RowFields(msgspec.Struct, kw_only=True, gc=False):
    """A conversation message row's fields (`Row`, and a bare row as a `Frame`)."""

    id: str | int | None = None  # a `Row`'s is a string; see `Frame`
    conversation_id: str | None = None  # older API
    user_id: str | None = None  # older API
    ts: float | str | None = None  # float epoch seconds (other forms tolerated)
    details: dict[str, Any] | None = None
    type: str = "message"
    subtype: str = "chat"
    kind: str | None = None
    hidden: bool = False
    text: str | None = None  # null (or absent) on a chat row: a message without text
    metadata: dict[str, Any] | None = None
    user_name: str | None = None
    group_id: str | None = None  # newer API
    from_fabric_address_id: str | None = None  # newer API
    from_address_id: str | None = None  # the SDK's types name this one too
    is_author: bool | None = None  # our own: lets a webhook row say it is the user's

    @property
    def conversation(self) -> str | None:
        return self.conversation_id or self.group_id

    @property
    def sender(self) -> str | None:
        return self.user_id or self.from_fabric_address_id or self.from_address_id

    def is_from(self, address: str | None) -> bool:
        """Whether `address` wrote this row (any of the author fields names it)."""
        return address is not None and address in (
            self.user_id,
            self.from_fabric_address_id,
            self.from_address_id,
        )


class Row(_RowFields, kw_only=True, gc=False):
    """One conversation message row (REST history, or `params.params` of a live event)."""

    id: str


class EndedBody(msgspec.Struct, kw_only=True, gc=False):
    """`params.params` of our own `conversation.ended` event."""

    conversation_id: str | None = None
    group_id: str | None = None
    reason: EndReason = "completed"
    by: EndedBy | None = None
    text: str | None = None
    ts: float | str | None = None

    @property
    def conversation(self) -> str | None:
        return self.conversation_id or self.group_id


class _EventParams(msgspec.Struct, tag_field="event_type", kw_only=True, gc=False):
    event_channel: str | list[str] | None = None
    timestamp: float | str | None = None
    is_author: bool = False


class MessageEvent(_EventParams, tag="conversation.message", kw_only=True):
    params: Row


class MessageUpdated(_EventParams, tag="conversation.message.updated", kw_only=True):
    params: Row


class ConversationEnded(_EventParams, tag="conversation.ended", kw_only=True):
    params: EndedBody


EventParams: TypeAlias = MessageEvent | MessageUpdated | ConversationEnded


class Frame(_RowFields, kw_only=True, gc=False):
    """One frame as it arrives, typed in one pass: a JSON-RPC message of the Relay WebSocket
    (`jsonrpc` or `method` set; a `signalwire.event` request holds its event in `params`, and
    is answered with an empty result) or a bare message row (its fields are this Struct's; a
    row's `id` must be a string, which the builder checks: a JSON-RPC `id` may be a number)."""

    jsonrpc: str | None = None
    method: str | None = None
    params: EventParams | msgspec.UnsetType = msgspec.UNSET
    """Absent on a bare row and on a JSON-RPC response (`null`: a broken request)."""


class Links(msgspec.Struct, kw_only=True):
    """Opaque absolute URLs of a REST page."""

    first: str | None = None
    self: str | None = None
    next: str | None = None
    prev: str | None = None


class Page(msgspec.Struct, kw_only=True):
    """A REST history page: `GET /api/fabric/conversations/{addressId}/messages`."""

    data: list[Row]
    links: Links = msgspec.field(default_factory=Links)


class RpcError(msgspec.Struct, kw_only=True):
    code: int | str
    message: str = ""


class RpcResponse(msgspec.Struct, kw_only=True):
    """A JSON-RPC response (to our `signalwire.connect`, or an ack)."""

    id: str | int | None = None
    result: Any = None
    error: RpcError | None = None
    method: str | None = None  # set: this is a request (an event), not a response


class AuthorizationState(msgspec.Struct, kw_only=True):
    """`params.params` of a `signalwire.authorization.state` event: an opaque string the
    client keeps and sends back in `signalwire.connect` on a reconnect."""

    authorization_state: str


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
