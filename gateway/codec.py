"""Helpers every dialect codec shares: ids, timestamps and error mapping. Pure functions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from gateway.errors import DecodeError, MalformedJSON
from gateway.model import format_at

T = TypeVar("T")

_MS_THRESHOLD = 1e11  # DIALECTS.md: a numeric epoch above this is milliseconds
_raw_decoder = msgspec.json.Decoder()


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
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=10).hexdigest()
    return f"{conversation}/~{digest}"


def to_at(value: str | float | None, default: str | None = None) -> str:
    """A native timestamp as the canonical one (UTC, milliseconds, `Z`).

    Accepts ISO 8601 strings (naive means UTC), epoch seconds or milliseconds as numbers, and
    strings of epoch seconds or milliseconds; a number above 1e11 is milliseconds. `None` or
    an empty string gives `default` (the current time when that is `None`).
    Raises `ValueError` for anything else.
    """
    if value is None or value == "":
        return default if default is not None else format_at(datetime.now(UTC))
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return format_at(datetime.fromisoformat(value))
    if isinstance(value, bool) or value != value:  # bool is an int; NaN is not a time
        raise ValueError(f"not a timestamp: {value!r}")
    seconds = value / 1000 if abs(value) > _MS_THRESHOLD else value
    return format_at(datetime.fromtimestamp(seconds, UTC))


def loads(body: bytes | str) -> Any:
    """Parse JSON into plain Python objects, or raise `MalformedJSON` saying where it breaks."""
    try:
        return _raw_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedJSON(f"body is not valid JSON: {exc}") from None


def path_of(exc: msgspec.ValidationError) -> str:
    """The JSON path msgspec names in a validation error (`$` when it names none)."""
    _, sep, tail = str(exc).rpartition(" - at `")
    return tail.rstrip("`") if sep else "$"


def invalid(exc: msgspec.ValidationError, index: int, prefix: str = "") -> DecodeError:
    """A `DecodeError` for frame `index` from msgspec's error, its path under `prefix`
    (e.g. `"$.data"` when the frame was converted from a nested object)."""
    message, sep, _ = str(exc).rpartition(" - at `")
    path = path_of(exc)
    if prefix:
        path = prefix + path[1:]
    return DecodeError(
        f"frame {index}: {message if sep else exc} at {path}", index=index, path=path
    )


def convert_each(
    frames: Iterable[Any], convert: Callable[[Any, int], T | None]
) -> tuple[list[T], int]:
    """Apply `convert(frame, index)` to every frame; `None` means an unknown (ignored) frame.

    Returns the converted frames and the ignored count. `msgspec.ValidationError` raised by
    `convert` becomes a `DecodeError` naming the frame index and path, so a batch fails whole.
    """
    out: list[T] = []
    ignored = 0
    for index, frame in enumerate(frames):
        try:
            item = convert(frame, index)
        except msgspec.ValidationError as exc:
            raise invalid(exc, index) from None
        if item is None:
            ignored += 1
        else:
            out.append(item)
    return out, ignored
