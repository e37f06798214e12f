"""Chat-history paging the way the SDK's `chat.getMessages` does it. Pure: no I/O.

The platform pages every row of a conversation (chat text, call logs, other conversations'
rows on shared pages); a frontend wants `page_size` chat messages. `collect_chat` folds the
REST pages fetched so far into one chat page::

    pages = [first_page]                       # GET .../conversations/{addr}/messages
    page = collect_chat(pages, addr, 10)
    while not page.complete:                   # fewer than 10 chat rows and a `next` link
        pages.append(fetch(page.next))         # links are opaque absolute URLs
        page = collect_chat(pages, addr, 10)
    page.rows, page.has_next, page.has_prev    # → the gateway's history answer
    # the next chat page: collect_chat([fetch(page.next)], addr, 10, carry=page.carry)

As in the SDK, a row belongs when `subtype == "chat"` and its conversation (`conversation_id`,
or `group_id` in the newer API) is the address; rows past `page_size` on the last page read
are kept in `carry` and lead the next page, and `has_next` is true while either a `next` link
or a carry remains.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from adapters.signalwire.native import Page, Row


class ChatPage(msgspec.Struct, kw_only=True):
    """One page of chat rows, and where to go from it."""

    rows: list[Row]
    has_next: bool
    has_prev: bool
    next: str | None = None
    """The `links.next` URL of the last platform page read (fetch it to continue)."""
    prev: str | None = None
    carry: list[Row] = []
    """Chat rows read past `page_size`: pass them back as `carry` for the next page."""
    complete: bool = True
    """False while the page is short and a `next` link could fill it."""


def collect_chat(
    pages: Sequence[Page], conversation: str, page_size: int, carry: Sequence[Row] = ()
) -> ChatPage:
    """Collect up to `page_size` chat rows of `conversation` from `pages` (in the order read),
    after the rows `carry`-ied over from the previous chat page."""
    rows = list(carry[:page_size])
    extra = list(carry[page_size:])
    for page in pages:
        for row in page.data:
            if row.subtype != "chat" or row.conversation != conversation:
                continue
            (rows if len(rows) < page_size else extra).append(row)
    last = pages[-1] if pages else None
    next_url = last.links.next if last else None
    return ChatPage(
        rows=rows,
        has_next=bool(next_url) or bool(extra),
        has_prev=bool(last and last.links.prev),
        next=next_url,
        prev=last.links.prev if last else None,
        carry=extra,
        complete=len(rows) >= page_size or not next_url,
    )
