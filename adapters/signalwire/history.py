"""Chat-history paging the way the SDK's `chat.getMessages` does it, with cursors we can hand
to a frontend. Pure: no I/O.

The platform pages every row of a conversation, newest first (chat text, call logs, other
conversations' rows on shared pages), and links pages by opaque absolute URLs. A frontend wants
`limit` chat messages at a time. As in the SDK, a row belongs when `subtype == "chat"` and its
conversation (`conversation_id`, or `group_id` in the newer API) is the one asked for, and a
short page is filled from the `next` link.

A `Cursor` names a place among those rows: a platform page URL and an index among that page's
chat rows. Going *forward* (`next`, older rows) collects from that index on, across `next`
links, until `limit` rows are in; going *back* (`prev`, newer rows) takes the `limit` rows
before an index of one page (the platform's `prev` link when the page holds none before it).
So a page that stops in the middle of a platform page continues exactly where it stopped, in
either direction, with no row shown twice or skipped::

    pages = [(url, first_page)]                       # GET .../conversations/{addr}/messages
    chat = collect_chat(pages, addr, 10)
    while not chat.complete:                          # fewer than 10 rows and a `next` link
        pages.append((chat.fetch, get(chat.fetch)))   # links are opaque absolute URLs
        chat = collect_chat(pages, addr, 10)
    chat.rows, chat.next, chat.prev                   # rows newest first, as the platform

`encode_cursor`/`decode_cursor` turn a `Cursor` into the opaque token frontends pass back; the
connector checks that its URL is on the platform's own origin and conversation before it
fetches anything (a cursor is client input).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import msgspec

from adapters.signalwire.native import Page, Row

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


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Cursor)


def encode_cursor(cursor: Cursor) -> str:
    """The opaque token a frontend passes back (URL-safe base64 of the cursor's JSON)."""
    return base64.urlsafe_b64encode(_encoder.encode(cursor)).rstrip(b"=").decode()


def decode_cursor(token: str) -> Cursor:
    """The cursor a token names; `ValueError` for anything `encode_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = _decoder.decode(raw)
    except (binascii.Error, msgspec.DecodeError, ValueError):
        raise ValueError("not a signalwire history cursor") from None
    if cursor.start < 0 or (cursor.before is not None and cursor.before < -1):
        raise ValueError("not a signalwire history cursor")
    return cursor
