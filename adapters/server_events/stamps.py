"""Fast native timestamp → canonical `at`, with exactly the results of `gateway.codec.to_at`.

`to_at` builds a `datetime` and formats it for every frame, which costs more than the rest of
the hot path together. Epoch numbers (the common case here) are split the way
`datetime.fromtimestamp` splits them (round half even to the microsecond) and the formatted
second is cached, so a stream of frames in the same seconds formats each second once. ISO
strings, negative epochs and anything odd go to `to_at` itself. A candidate for
`gateway.codec` once another dialect wants it.
"""

from __future__ import annotations

import math
import time

from gateway.codec import to_at

_MS_THRESHOLD = 1e11  # DIALECTS.md: a numeric epoch above this is milliseconds
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the last second datetime can hold
_EXACT_SECONDS = 2**33  # below this, float ms land on the same millisecond as integer ones
_CACHE_SIZE = 4096
_seconds: dict[int, str] = {}
_text_seconds: dict[str, str] = {}  # the same, keyed by the ten digits of the second
_MS_LEAD = frozenset("1234567")  # 13 digits from 1e12 (2001) up to 8e12 (2223): exact
_MILLIS = [f"{ms:03d}Z" for ms in range(1000)]
_MILLIS_TEXT = {f"{ms:03d}": f"{ms:03d}Z" for ms in range(1000)}


def fast_at(value: str | int | float | None, default: str | None) -> str | None:
    """`value` as the canonical timestamp; `default` when it is `None` or empty.

    Raises `ValueError` for a string that is neither a number nor ISO 8601, for NaN and
    infinities, and for times `datetime` cannot represent.
    """
    if type(value) is str and len(value) == 13:
        # The documented form, a string of epoch ms: split the text itself, no arithmetic.
        # `_text_seconds` only holds ten-digit seconds already checked, `_MILLIS_TEXT` "000"…
        prefix = _text_seconds.get(value[:10])
        millis_text = _MILLIS_TEXT.get(value[10:])
        if millis_text is not None:
            if prefix is not None:
                return prefix + millis_text
            head = value[:10]
            if head[0] in _MS_LEAD and head.isdigit() and head.isascii():
                _text_seconds[head] = prefix = _prefix(int(head))
                return prefix + millis_text
    # Whole epoch numbers are split exactly, without floats.
    if type(value) is int:
        whole = value
    elif type(value) is str and value.isdigit() and value.isascii():
        whole = int(value)
    elif value is None or value == "":
        return default
    else:
        return _fractional(value)
    if whole > _MS_THRESHOLD:
        second, millis = divmod(whole, 1000)
    else:
        second, millis = whole, 0
    if not 0 <= second <= _EXACT_SECONDS:
        return _fractional(value)
    prefix = _seconds.get(second)
    if prefix is None:
        prefix = _prefix(second)
    return prefix + _MILLIS[millis]


def _prefix(second: int) -> str:
    prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
    if len(_seconds) >= _CACHE_SIZE:
        _seconds.clear()
        _text_seconds.clear()
    _seconds[second] = prefix
    return prefix


def _fractional(value: str | float) -> str:
    """Floats and every other string: `datetime.fromtimestamp`'s arithmetic, replayed."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return to_at(value)
    else:
        number = value
    if isinstance(number, bool) or not math.isfinite(number):
        raise ValueError(f"not a timestamp: {value!r}")
    seconds = number / 1000 if abs(number) > _MS_THRESHOLD else number
    if seconds < 0 or seconds > _MAX_SECONDS:
        return to_at(value)  # rare: let the reference handle (or refuse) it
    frac, whole = math.modf(seconds)
    micros = round(frac * 1e6)  # round() is half-even, as datetime.fromtimestamp
    if micros >= 1_000_000:
        whole += 1
        micros -= 1_000_000
    second = int(whole)
    if second > _MAX_SECONDS:
        return to_at(value)
    return (_seconds.get(second) or _prefix(second)) + _MILLIS[micros // 1000]
