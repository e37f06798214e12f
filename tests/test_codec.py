"""The codec helpers every dialect shares: timestamps, ids, error paths."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import msgspec
import pytest

from gateway.codec import derived_id, joined_id, loads, tag_reader, to_at
from gateway.errors import MalformedJSON
from gateway.model import format_at


def reference(value: float | str) -> str:
    """`to_at` the slow way: through `datetime` (the definition the fast paths must match)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return format_at(datetime.fromisoformat(value))
    seconds = value / 1000 if value > 1e11 else value
    return format_at(datetime.fromtimestamp(seconds, UTC))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1700000000, "2023-11-14T22:13:20.000Z"),
        (1700000000123, "2023-11-14T22:13:20.123Z"),
        (1700000000.5, "2023-11-14T22:13:20.500Z"),
        ("1700000000123", "2023-11-14T22:13:20.123Z"),
        ("1700000000", "2023-11-14T22:13:20.000Z"),
        ("1700000000.25", "2023-11-14T22:13:20.250Z"),
        ("2024-01-02T03:04:05.678Z", "2024-01-02T03:04:05.678Z"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000Z"),
        ("2024-01-02T03:04:05.123456+02:00", "2024-01-02T01:04:05.123Z"),
        ("2024-01-02 03:04:05", "2024-01-02T03:04:05.000Z"),
        (0, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_timestamp_forms(value: float | str, expected: str) -> None:
    assert to_at(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "2024-02-30T03:04:05.678Z",
        "2024-01-02T24:00:00.000Z",
        "1969-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00+00:00",
        -5,
        float("nan"),
        float("inf"),
        True,
        10**20,
        [1],
    ],
)
def test_not_timestamps(value: object) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        to_at(value)  # type: ignore[arg-type]


def test_missing_timestamps_take_the_default() -> None:
    assert to_at(None, "2020-01-01T00:00:00.000Z") == "2020-01-01T00:00:00.000Z"
    assert to_at("", "2020-01-01T00:00:00.000Z") == "2020-01-01T00:00:00.000Z"
    assert to_at(None).endswith("Z")


def test_fast_paths_match_datetime() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        pick = rng.random()
        value: float | str
        if pick < 0.25:
            value = rng.randint(0, 4_102_444_800)
        elif pick < 0.5:
            value = rng.randint(10**11 + 1, 4_102_444_800_000)
        elif pick < 0.75:
            value = rng.uniform(0, 4_102_444_800)
        else:
            value = str(rng.randint(0, 4_102_444_800_000))
        assert to_at(value) == reference(value), value


def test_iso_strings_match_datetime() -> None:
    """ISO forms (offsets, naive, microseconds, a space for the `T`) against `datetime`."""
    rng = random.Random(11)
    for _ in range(20_000):
        moment = datetime.fromtimestamp(rng.uniform(86_400, 253_402_214_400), UTC)
        offset = rng.choice(["Z", "+00:00", "+02:00", "-05:30", "+14:00", "-12:00", ""])
        text = moment.replace(tzinfo=None).isoformat(
            sep=rng.choice("T "), timespec=rng.choice(["seconds", "milliseconds", "microseconds"])
        )
        if rng.random() < 0.2 and "." in text:  # 1-6 fraction digits, not only 3 or 6
            text = text[: text.index(".") + rng.randint(2, 7)]
        value = text + offset
        assert to_at(value) == reference(value), value
    # Spellings `fromisoformat` takes besides the fast ones, and heads the fast way refuses.
    for value in (
        "2024-03-05T10:15:31+0200",
        "2024-03-05T10:15:31+02",
        "2024-03-05T10:15:31-00:00",
        "2024-03-05T10:15:31,123Z",
        "2024-03-05T10:15:31.1234567Z",
        "1969-12-31T23:00:00-02:00",  # a head before 1970, in range once shifted
        "2024-02-29T23:59:59.999-00:01",
        "2024-W10-2T10:15:31.120Z",  # a week date: not canonical, though `-` sits where it would
        "2024-03-05T10:15:31.5",  # naive, one fraction digit
    ):
        assert to_at(value) == reference(value), value
    for bad in (
        "2023-02-29T10:00:00+01:00",
        "2024-03-05T24:00:00+01:00",
        "2024-03-05T10:15:31+24:00",
    ):
        with pytest.raises(ValueError, match="not a timestamp"):
            to_at(bad)
    for out_of_range in (
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:30:00+01:00",
        "9999-12-31T23:00:00-02:00",
    ):
        with pytest.raises(ValueError, match="out of range"):
            to_at(out_of_range)


@pytest.mark.parametrize(
    "parts",
    [("connected", "2024-01-01T00:00:00.000Z"), ("ended",), ("down", "net", True, None, 2.5)],
)
def test_joined_id_is_derived_id_of_the_joined_parts(parts: tuple[object, ...]) -> None:
    joined = "\x1f".join(map(str, parts))
    assert joined_id("c:1", joined) == derived_id("c:1", *parts)


def test_derived_ids_are_deterministic() -> None:
    assert derived_id("x:1", "typing", 5) == derived_id("x:1", "typing", 5)
    assert derived_id("x:1", "typing", 5) != derived_id("x:1", "typing", 6)
    assert derived_id("x:1", "a").startswith("x:1/~")


def test_loads_says_what_is_malformed() -> None:
    with pytest.raises(MalformedJSON):
        loads(b"{")
    with pytest.raises(MalformedJSON, match="nested too deeply"):
        loads(b"[" * 100_000)


def test_tag_reader_reads_one_key_of_an_object() -> None:
    event_of = tag_reader("event")
    assert (
        event_of(msgspec.Raw(b'{"data": {"event": "x"}, "event": "chat.closed"}')) == "chat.closed"
    )
    assert event_of(msgspec.Raw(b'{"data": 1}')) is None
    assert event_of(msgspec.Raw(b'{"event": ["not", "a", "name"]}')) == ["not", "a", "name"]
    with pytest.raises(msgspec.ValidationError):
        event_of(msgspec.Raw(b"[1]"))
