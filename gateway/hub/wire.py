"""How events are stored and published: the canonical JSON, with the hub's `seq` spliced in.

An event is encoded once, before its sequence number is known. With `seq` at 0 the encoder omits
it, so the bytes open with the tag: `{"type":"message",...`. The engine that assigns the
number (in Redis: inside the Lua script, atomically with dedup and append) joins
`head + b'"seq":' + str(seq) + b',' + tail` without re-encoding anything. Readers take the
number back out of the same place with `read_seq`.
"""

from __future__ import annotations

from gateway.model import Event, event_encoder


def encode_parts(event: Event) -> tuple[bytes, bytes]:
    """The event's JSON (without `seq`) split where `seq` goes: right after the type tag."""
    payload = event_encoder.encode(event)
    cut = payload.index(b",") + 1  # tags hold no comma; every event has fields after its tag
    return payload[:cut], payload[cut:]


def join(head: bytes, seq: int, tail: bytes) -> bytes:
    """The stored form of an event: its JSON with `seq` in place."""
    return b'%b"seq":%d,%b' % (head, seq, tail)


def read_seq(payload: bytes) -> int:
    """The `seq` of a stored event (0 for an ephemeral one, which has none)."""
    start = payload.index(b",") + 1
    if not payload.startswith(b'"seq":', start):
        return 0
    start += 6
    return int(payload[start : payload.index(b",", start)])
