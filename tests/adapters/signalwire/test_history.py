"""`collect_chat`: chat pages as the SDK's getMessages builds them, from platform pages."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.signalwire.history import collect_chat
from adapters.signalwire.native import Links, Page, Row

ADDR = "addr-1"


def _row(n: int, subtype: str = "chat", conversation: str = ADDR, newer: bool = False) -> Row:
    where: dict[str, Any] = (
        {"group_id": conversation} if newer else {"conversation_id": conversation}
    )
    return Row(id=f"m{n}", ts=float(n), subtype=subtype, text=f"t{n}", **where)


def _page(rows: list[Row], next_: str | None = None, prev: str | None = None) -> Page:
    return Page(data=rows, links=Links(next=next_, prev=prev))


@pytest.mark.parametrize(
    ("pages", "size", "ids", "has_next", "has_prev", "complete", "carry"),
    [
        # one page, enough chat rows: logs and other conversations are skipped
        (
            [_page([_row(1), _row(2, "log"), _row(3, conversation="x"), _row(4)], next_="n")],
            2,
            ["m1", "m4"],
            True,
            False,
            True,
            [],
        ),
        # short page with a next link: not complete, the caller fetches `next`
        ([_page([_row(1), _row(2, "log")], next_="n")], 2, ["m1"], True, False, False, []),
        # two pages fill it; the rest of the second page is carried
        (
            [
                _page([_row(1), _row(2, "log")], next_="n"),
                _page([_row(3), _row(4), _row(5)], prev="p"),
            ],
            2,
            ["m1", "m3"],
            True,
            True,
            True,
            ["m4", "m5"],
        ),
        # the last page: no next, no carry
        ([_page([_row(1, newer=True), _row(2)], prev="p")], 5, ["m1", "m2"], False, True, True, []),
        ([], 3, [], False, False, True, []),
    ],
)
def test_collect_chat(
    pages: list[Page],
    size: int,
    ids: list[str],
    has_next: bool,
    has_prev: bool,
    complete: bool,
    carry: list[str],
) -> None:
    page = collect_chat(pages, ADDR, size)
    assert [r.id for r in page.rows] == ids
    assert (page.has_next, page.has_prev, page.complete) == (has_next, has_prev, complete)
    assert [r.id for r in page.carry] == carry


def test_carry_leads_the_next_page() -> None:
    first = collect_chat([_page([_row(1), _row(2), _row(3)], next_="n")], ADDR, 2)
    assert [r.id for r in first.carry] == ["m3"]
    assert first.next == "n"
    second = collect_chat([_page([_row(4), _row(5)])], ADDR, 2, carry=first.carry)
    assert [r.id for r in second.rows] == ["m3", "m4"]
    assert [r.id for r in second.carry] == ["m5"]
    assert second.has_next
