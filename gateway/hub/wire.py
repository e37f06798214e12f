"""How events are stored and published: the canonical JSON, with the hub's `seq` and the
log's `epoch` spliced in.

An event is encoded once, before its sequence number is known. With `seq` at 0 (and `epoch`
empty) the encoder omits them, so the bytes open with the tag and a comma:
`{"type":"message",...`. The engine that assigns the number (in Redis: inside the Lua script,
atomically with dedup and append) inserts `"seq":<n>,"epoch":"<epoch>",` right after that first
comma without re-encoding anything; tags hold no comma and every event has fields after its
tag. Readers take both back out of the same place with `read_seq` and `read_epoch`. Events
stored before epochs existed have no `epoch` (it reads as "").
"""

from __future__ import annotations

from gateway.model import Event, event_encoder

encode = event_encoder.encode
"""`encode(event)`: the event's JSON without `seq` (what the engines splice `seq` into)."""


def splice(payload: bytes, seq: int, epoch: str) -> bytes:
    """The stored form of an event: its JSON (from `encode`) with `seq` and `epoch` in place
    (`epoch` is made of letters and digits: nothing to escape)."""
    cut = payload.index(b",") + 1
    return b'%b"seq":%d,"epoch":"%b",%b' % (payload[:cut], seq, epoch.encode(), payload[cut:])


def encode_stored(event: Event, seq: int, epoch: str) -> bytes:
    """`splice(encode(event), seq, epoch)`: an event as the hub stores it under `seq`."""
    return splice(encode(event), seq, epoch)


def read_seq(payload: bytes) -> int:
    """The `seq` of a stored event (0 for an ephemeral one, which has none)."""
    start = payload.index(b",") + 1
    if not payload.startswith(b'"seq":', start):
        return 0
    start += 6
    return int(payload[start : payload.index(b",", start)])


_EPOCH = b'"epoch":"'


def read_epoch(payload: bytes) -> str:
    """The `epoch` of a stored event ("" for an ephemeral one, or one stored without)."""
    start = payload.index(b",") + 1
    if not payload.startswith(b'"seq":', start):
        return ""
    start = payload.index(b",", start + 6) + 1
    if not payload.startswith(_EPOCH, start):
        return ""
    start += len(_EPOCH)
    return payload[start : payload.index(b'"', start)].decode()
