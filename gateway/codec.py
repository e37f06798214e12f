"""Helpers every dialect's builders share: ids, timestamps, JSON errors. Pure functions."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Final

import msgspec

from gateway.errors import MalformedJSON
from gateway.model import now_at

MS_THRESHOLD: Final = 100_000_000_000
"""DIALECTS.md: an epoch above this is milliseconds, else seconds."""
_MS_THRESHOLD_FLOAT: Final = 1e11  # the same, for floats (a float-to-float comparison is cheaper)
_raw_decoder: Final = msgspec.json.Decoder()


def conversation_id(dialect: str, native_id: str) -> str:
    """The canonical conversation id: `"<dialect>:<native conversation id>"`."""
    return f"{dialect}:{native_id}"


def event_id(conversation: str, native_id: object) -> str:
    """The canonical event id for an event the platform identifies: `"<conversation>/<id>"`."""
    return f"{conversation}/{native_id}"


def derived_id(conversation: str, *parts: object) -> str:
    """A deterministic event id for an event the platform does not identify.

    Built from what makes the event itself (its name, time, sender, text…), so the same frame
    posted twice gets the same id and is deduplicated, while two different frames do not.
    """
    return joined_id(conversation, "\x1f".join([p if type(p) is str else str(p) for p in parts]))


def joined_id(conversation: str, key: str) -> str:
    """`derived_id(conversation, *parts)` for parts already joined: `key` is
    `"\x1f".join(map(str, parts))`. A decoder that knows its parts writes them as one f-string,
    which costs half the varargs, conversions and join."""
    hasher = _BLAKE.copy()  # cheaper than building a hasher of this digest size each time
    hasher.update(key.encode())
    return f"{conversation}/~{hasher.hexdigest()}"  # one string built, not two concatenations


_BLAKE: Final = hashlib.blake2b(digest_size=10)


def to_at(value: object, default: str | None = None) -> str:
    """A native timestamp as the canonical one (UTC, milliseconds, `Z`).

    Accepts ISO 8601 strings (naive means UTC), epoch seconds or milliseconds as numbers, and
    strings of epoch seconds or milliseconds; a number above 1e11 is milliseconds. `None` or
    an empty string gives `default` (the current time when that is `None`).
    Raises `ValueError` for anything else, and for times outside years 1970-9999.

    This is on every dialect's decode path, so the common forms skip `datetime`: epochs are
    split with integer arithmetic and each formatted second is cached; a string already in
    canonical form is checked and returned as it is, and one of whole seconds in a zone `Z`,
    `±HH:MM` or none is its head's cached second less its offset. Results equal `datetime`'s
    (`fromtimestamp` rounds half-even to the microsecond, then milliseconds are truncated).
    """
    kind = type(value)
    if kind is str:  # the most common form first
        text: str = value  # type: ignore[assignment]
        # Canonical already (`YYYY-MM-DDTHH:MM:SS.mmmZ`)? The second is checked once.
        if len(text) == 24 and text[19] == "." and text[20:] in _CANONICAL_TAILS:
            second = _head_seconds.get(text[:19])
            if second is None:
                second = _head_second(text[:19])
            if second >= 0:
                return text
        if text.isdigit() and text.isascii():
            number = int(text)
            return _epoch_ms(number if number > MS_THRESHOLD else number * 1000, text)
        if not text:
            return default if default is not None else now_at()
        if text[10:11] == "T":
            # Whole seconds in another zone (`Z`, `+01:00`, none): the head's cached second.
            # A fraction with a zone is left to `fromisoformat`: parsed here, it cost as much.
            offset = _ZONES.get(text[19:])
            if offset is not None:
                second = _head_seconds.get(text[:19])
                if second is None:
                    second = _head_second(text[:19])
                if second >= 0:
                    return _epoch_ms((second - offset) * 1000, text)
        elif ":" not in text:  # not ISO: maybe `"1708192187.67"`
            try:
                return _epoch_float(float(text))
            except ValueError:
                pass
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {text!r}") from None
        # Exact integer milliseconds since the epoch (datetimes subtract exactly; a naive one
        # is UTC, so it subtracts the naive epoch), then the cached seconds: `isoformat`
        # truncates microseconds to milliseconds the same way.
        delta = moment - (_NAIVE_EPOCH if moment.tzinfo is None else _EPOCH)
        since = delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
        return _epoch_ms(since, text)
    if kind is float:
        return _epoch_float(value)  # type: ignore[arg-type]
    if kind is int:
        whole: int = value  # type: ignore[assignment]
        ms = whole if whole > MS_THRESHOLD else whole * 1000
        if 0 <= ms <= _MAX_MS:
            second = ms // 1000
            return (_seconds.get(second) or _prefix(second)) + _MILLIS[ms % 1000]
        raise ValueError(f"timestamp out of range: {whole!r}")
    if value is None:
        return default if default is not None else now_at()
    raise ValueError(f"not a timestamp: {value!r}")  # bool, or any other type


# `YYYY-MM-DDTHH:MM:SS`, digits where digits belong (`date.fromisoformat` alone would take a
# week date, `2024-W10-2`, for a day); whether the day exists is `date`'s to say.
_HEAD: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
_MAX_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_MAX_SECOND: Final = _MAX_MS // 1000
_MAX_MS_FLOAT: Final = float(_MAX_MS)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
_MILLIS: Final = tuple(f"{ms:03d}Z" for ms in range(1000))
_CANONICAL_TAILS: Final = frozenset(_MILLIS)
"""What follows the second's `.` in a canonical time: three digits and `Z`."""
_seconds: Final[dict[int, str]] = {}

"""`YYYY-MM-DDTHH:MM:SS.` of the epoch seconds `to_at` has formatted, all in its range."""

_head_seconds: Final[dict[str, int]] = {}
"""`YYYY-MM-DDTHH:MM:SS` heads `to_at` has read: the epoch second of each, or -1 for a head
that is no real time from 1970 on (bounded: see `_head_second`)."""
_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()
_ZONES: Final[dict[str, int]] = {
    "": 0,  # naive: UTC
    "Z": 0,
    **{
        f"{sign}{h:02d}:{m:02d}": (1 if sign == "+" else -1) * (h * 3600 + m * 60)
        for sign in "+-"
        for h in range(24)
        for m in range(60)
    },
}
"""What may follow the whole seconds of an ISO time `to_at` reads itself, as the offset in
seconds east of UTC; any other tail (a fraction, `+0100`, `+01`) is `fromisoformat`'s."""


def _head_second(head: str) -> int:
    """The epoch second of `head` if it is `YYYY-MM-DDTHH:MM:SS` of a real time from 1970 on,
    else -1 (cached: a stream revisits its seconds; bounded, as a long-running process sees new
    ones forever)."""
    second = -1
    try:
        if _HEAD.fullmatch(head) is not None:
            days = date.fromisoformat(head[:10]).toordinal() - _EPOCH_DAY
            if days >= 0:
                h, m, s = int(head[11:13]), int(head[14:16]), int(head[17:19])
                second = days * 86_400 + h * 3600 + m * 60 + s
    except ValueError:  # no such day
        pass
    if len(_head_seconds) > 4096:
        _head_seconds.clear()
    _head_seconds[head] = second
    return second


def _prefix(second: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.` of an epoch second (cached: a stream revisits its seconds)."""
    prefix = _seconds.get(second)
    if prefix is None:
        if len(_seconds) > 4096:  # bounded: a long-running process sees new seconds forever
            _seconds.clear()
        t = time.gmtime(second)
        prefix = _seconds[second] = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        )
    return prefix


def _epoch_ms(ms: int, original: object) -> str:
    if not 0 <= ms <= _MAX_MS:
        raise ValueError(f"timestamp out of range: {original!r}")
    second = ms // 1000
    # `ms % 1000`: one operation on a big int, where `ms - second * 1000` is two.
    return (_seconds.get(second) or _prefix(second)) + _MILLIS[ms % 1000]


def _epoch_float(value: float) -> str:
    # Float bounds: comparing a float with an int costs CPython a conversion each time.
    if not 0.0 <= value <= _MAX_MS_FLOAT:  # NaN fails every comparison: refused here too
        raise ValueError(f"not a timestamp: {value!r}")
    seconds = value / 1000 if value > _MS_THRESHOLD_FLOAT else value
    whole = int(seconds)  # not negative: int() is floor
    micros = round((seconds - whole) * 1e6)  # half-even, as datetime.fromtimestamp
    if micros >= 1_000_000:  # rounded up into the next second (the only way past the bound)
        whole, micros = whole + 1, micros - 1_000_000
        if whole > _MAX_SECOND:
            raise ValueError(f"timestamp out of range: {value!r}")
    return (_seconds.get(whole) or _prefix(whole)) + _MILLIS[micros // 1000]


def loads(body: bytes | str) -> Any:
    """Parse JSON into plain Python objects, or raise `MalformedJSON` saying where it breaks."""
    try:
        return _raw_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedJSON(f"body is not valid JSON: {exc}") from None
    except (RecursionError, UnicodeDecodeError) as exc:
        raise unparsable(exc) from None


def unparsable(exc: RecursionError | UnicodeDecodeError) -> MalformedJSON:
    """The `MalformedJSON` for what msgspec's decoders raise besides `DecodeError`: recursion
    past their depth (typed decoders recurse on nesting, like the parser) and bad UTF-8 inside
    a string."""
    if isinstance(exc, RecursionError):
        return MalformedJSON("body is nested too deeply")
    return MalformedJSON(f"body is not valid UTF-8 ({exc.reason} inside a string)")


def path_of(exc: msgspec.ValidationError) -> str:
    """The JSON path msgspec names in a validation error (`$` when it names none)."""
    _, sep, tail = str(exc).rpartition(" - at `")
    return tail.rstrip("`") if sep else "$"


def tag_reader(key: str) -> Callable[[msgspec.Raw], Any]:
    """A reader of the value at `key` of a JSON object (`None` when absent), every other key
    skipped unread: how a dialect tells a frame's event name without decoding the frame.
    The reader raises `msgspec.ValidationError` for a value that is no object."""
    fields = [("tag", Any, None)]
    tag = msgspec.defstruct("Tag", fields, rename={"tag": key}, frozen=True, gc=False)
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(tag)
    return lambda raw: decoder.decode(raw).tag
