"""A fast `gateway.codec.to_at` for integral epoch timestamps (the GMS `utcTime` hot path).

`to_at` goes through `datetime` and `strftime` (~2-3 µs); an integral epoch (seconds, or
milliseconds above 1e11) is formatted here with integer arithmetic and a cache of the
`YYYY-MM-DDTHH:MM:` part per minute (~0.3 µs), to the same string. Anything else (floats with
a fraction, strings, None, out-of-range values) goes to `to_at`.
Candidate for hoisting into `gateway.codec`: every dialect with epoch times can use it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.codec import to_at

_MS_THRESHOLD = 100_000_000_000  # DIALECTS.md: a numeric epoch above 1e11 is milliseconds
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_SECONDS = tuple(f"{i:02d}" for i in range(60))
_MILLIS = tuple(f".{i:03d}Z" for i in range(1000))
_minutes: dict[int, str] = {}


def _minute(minute: int) -> str:
    text = _minutes.get(minute)
    if text is None:
        if len(_minutes) > 4096:  # bounded: a long-running process sees new minutes forever
            _minutes.clear()
        moment = datetime.fromtimestamp(minute * 60, UTC)
        text = _minutes[minute] = moment.strftime("%Y-%m-%dT%H:%M:")
    return text


def fast_at(value: str | float | None) -> str:
    """Same result as `to_at(value)`; raises `ValueError`/`OverflowError`/`OSError` like it."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        return to_at(value)
    ms = value if value > _MS_THRESHOLD else value * 1000
    if ms < 0 or ms > _MAX_MS:
        return to_at(value)
    seconds, milli = divmod(ms, 1000)
    minute, second = divmod(seconds, 60)
    return _minute(minute) + _SECONDS[second] + _MILLIS[milli]
