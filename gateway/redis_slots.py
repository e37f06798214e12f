"""Redis Cluster's hash slots, for names that must land in a given slot.

A key's slot is CRC16 of its hash tag (the part in `{…}`) modulo 16384. Keys a script touches,
and the shard channels it `SPUBLISH`es on, must all hash to the slot of the script's keys: a
channel that follows a conversation's slot without carrying the conversation (its firehose,
`gateway.hub.redis_fanout`) carries `tag(slot)` instead, a short string of that slot.
"""

from __future__ import annotations

import binascii
import functools

from redis.crc import key_slot

SLOTS = 16384


def slot(name: str | bytes) -> int:
    """The hash slot of a key or shard channel."""
    return int(key_slot(name.encode() if isinstance(name, str) else name))


def tag(of: int) -> str:
    """The shortest decimal string whose slot is `of` (as a hash tag: `{<tag>}`)."""
    return _tags()[of]


@functools.cache
def _tags() -> tuple[str, ...]:
    """Every slot's tag: the numbers from 0 up, each kept for the first slot it hashes to
    (about 110 000 CRCs, 0.1 s, once per process and only on a cluster)."""
    tags: list[str | None] = [None] * SLOTS
    missing, number = SLOTS, 0
    while missing:
        text = str(number)
        index = binascii.crc_hqx(text.encode(), 0) % SLOTS
        if tags[index] is None:
            tags[index] = text
            missing -= 1
        number += 1
    return tuple(t for t in tags if t is not None)
