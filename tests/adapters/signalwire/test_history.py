"""`collect_chat`: chat pages as the SDK's getMessages builds them, with cursors that continue
exactly where a page stopped, in both directions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.signalwire.native import (
    ChatPage,
    Cursor,
    Links,
    Page,
    Row,
    collect_chat,
    decode_cursor,
    encode_cursor,
)

ADDR = "addr-1"


def _row(n: int, subtype: str = "chat", conversation: str = ADDR, newer: bool = False) -> Row:
    where: dict[str, Any] = (
        {"group_id": conversation} if newer else {"conversation_id": conversation}
    )
    return Row(id=f"m{n}", ts=float(n), subtype=subtype, text=f"t{n}", **where)


def _page(rows: list[Row], next_: str | None = None, prev: str | None = None) -> Page:
    return Page(data=rows, links=Links(next=next_, prev=prev))


def test_one_page_skips_logs_and_other_conversations() -> None:
    page = _page([_row(1), _row(2, "log"), _row(3, conversation="x"), _row(4)], next_="n")
    chat = collect_chat([("u", page)], ADDR, 2)
    assert [r.id for r in chat.rows] == ["m1", "m4"]
    assert chat.complete
    assert chat.next == Cursor(url="n")  # the page is used up: the next one starts at 0
    assert chat.prev is None and not chat.has_prev


def test_a_short_page_asks_for_the_next_link() -> None:
    chat = collect_chat([("u", _page([_row(1), _row(2, "log")], next_="n"))], ADDR, 2)
    assert not chat.complete
    assert chat.fetch == "n"
    assert [r.id for r in chat.rows] == ["m1"]


def test_two_pages_fill_it_and_next_continues_mid_page() -> None:
    pages = [
        ("u1", _page([_row(1), _row(2, "log")], next_="u2")),
        ("u2", _page([_row(3), _row(4), _row(5)], prev="u1")),
    ]
    chat = collect_chat(pages, ADDR, 2)
    assert [r.id for r in chat.rows] == ["m1", "m3"]
    assert chat.complete and chat.has_next
    assert chat.next == Cursor(url="u2", start=1)
    following = collect_chat([pages[1]], ADDR, 2, chat.next)
    assert [r.id for r in following.rows] == ["m4", "m5"]
    assert following.next is None  # the last page, used up
    assert following.prev == Cursor(url="u2", before=1)
    back = collect_chat([pages[1]], ADDR, 2, following.prev)
    assert [r.id for r in back.rows] == ["m3"]  # only this page's rows before index 1
    assert back.prev == Cursor(url="u1", before=-1)  # then the platform's prev link
    assert back.next == Cursor(url="u2", start=1)


def test_the_last_page() -> None:
    chat = collect_chat([("u", _page([_row(1, newer=True), _row(2)], prev="p"))], ADDR, 5)
    assert [r.id for r in chat.rows] == ["m1", "m2"]
    assert chat.complete and not chat.has_next
    assert chat.prev == Cursor(url="p", before=-1)


def test_no_pages() -> None:
    assert collect_chat([], ADDR, 3) == ChatPage(rows=[])


def test_back_from_the_end_of_a_page_takes_its_last_rows() -> None:
    page = _page([_row(n) for n in range(1, 6)], next_="older", prev="newer")
    chat = collect_chat([("u", page)], ADDR, 2, Cursor(url="u", before=-1))
    assert [r.id for r in chat.rows] == ["m4", "m5"]
    assert chat.next == Cursor(url="older")
    assert chat.prev == Cursor(url="u", before=3)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=6),
    logs=st.integers(min_value=0, max_value=3),
    limit=st.integers(min_value=1, max_value=7),
)
def test_paging_forward_then_back_visits_every_row_once(
    sizes: list[int], logs: int, limit: int
) -> None:
    """Any platform paging, any limit: following `next` to the end reads every chat row once,
    in order, and following `prev` from there reads them all again, in reverse page order."""
    pages: dict[str, Page] = {}
    n = 0
    expected: list[str] = []
    for i, size in enumerate(sizes):
        rows = []
        for _ in range(size):
            n += 1
            rows.append(_row(n))
            expected.append(f"m{n}")
        rows += [_row(1000 + i * 10 + k, "log") for k in range(logs)]
        pages[f"p{i}"] = _page(
            rows,
            next_=f"p{i + 1}" if i + 1 < len(sizes) else None,
            prev=f"p{i - 1}" if i else None,
        )

    def read(cursor: Cursor | None) -> ChatPage:
        url = cursor.url if cursor else "p0"
        read_pages = [(url, pages[url])]
        chat = collect_chat(read_pages, ADDR, limit, cursor)
        while not chat.complete:
            assert chat.fetch is not None
            read_pages.append((chat.fetch, pages[chat.fetch]))
            chat = collect_chat(read_pages, ADDR, limit, cursor)
        return chat

    forward: list[list[str]] = []
    chat = read(None)
    forward.append([r.id for r in chat.rows])
    while chat.next is not None:
        chat = read(chat.next)
        forward.append([r.id for r in chat.rows])
    assert [i for page in forward for i in page] == expected
    backward: list[str] = []
    while chat.prev is not None:
        chat = read(chat.prev)
        backward = [r.id for r in chat.rows] + backward
    assert backward + forward[-1] == expected


def test_cursor_tokens_round_trip_and_refuse_others() -> None:
    for cursor in (
        Cursor(url="https://x/y?c=1"),
        Cursor(url="u", start=3),
        Cursor(url="u", before=-1),
    ):
        assert decode_cursor(encode_cursor(cursor)) == cursor
    for bad in ("", "%%%", "bm9wZQ", encode_cursor(Cursor(url="u", start=-1))):
        with pytest.raises(ValueError, match="not a signalwire history cursor"):
            decode_cursor(bad)
