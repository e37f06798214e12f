"""How events are stored and published: the canonical JSON, with the hub's `seq` spliced in.

An event is encoded once, before its sequence number is known. With `seq` at 0 the encoder omits
it, so the bytes open with the tag and a comma: `{"type":"message",...`. The engine that assigns
the number (in Redis: inside the Lua script, atomically with dedup and append) inserts
`"seq":<n>,` right after that first comma without re-encoding anything; tags hold no comma and
every event has fields after its tag. Readers take the number back out of the same place with
`read_seq`.
"""

from __future__ import annotations

from gateway.model import Event, event_encoder

encode = event_encoder.encode
"""`encode(event)`: the event's JSON without `seq` (what the engines splice `seq` into)."""


def splice(payload: bytes, seq: int) -> bytes:
    """The stored form of an event: its JSON (from `encode`) with `seq` in place."""
    cut = payload.index(b",") + 1
    return b'%b"seq":%d,%b' % (payload[:cut], seq, payload[cut:])


def encode_stored(event: Event, seq: int) -> bytes:
    """`splice(encode(event), seq)`: an event as the hub stores it under `seq`."""
    return splice(encode(event), seq)


def read_seq(payload: bytes) -> int:
    """The `seq` of a stored event (0 for an ephemeral one, which has none)."""
    start = payload.index(b",") + 1
    if not payload.startswith(b'"seq":', start):
        return 0
    start += 6
    return int(payload[start : payload.index(b",", start)])
