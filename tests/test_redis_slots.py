"""Cluster hash slots: the tag that lands a name in a given slot, and the firehose's framing."""

from __future__ import annotations

from redis.crc import key_slot

from gateway.hub.redis_fanout import firehose_message, read_firehose
from gateway.redis_slots import SLOTS, slot, tag


def test_every_slot_has_a_tag_that_lands_in_it() -> None:
    # redis-py's own CRC16 (as the cluster client routes), not ours.
    assert all(key_slot(f"gw:fh:{{{tag(s)}}}".encode()) == s for s in range(SLOTS))
    assert max(len(tag(s)) for s in range(SLOTS)) <= 6


def test_a_conversations_keys_channel_and_firehose_share_its_slot() -> None:
    conversation = "genesys:ab:c/é"
    keys = [f"gw:{{{conversation}}}:seq", f"gw:{{{conversation}}}:log", f"gw:ev:{{{conversation}}}"]
    assert len({slot(k) for k in keys}) == 1
    assert slot(f"gw:fh:{{{tag(slot(keys[0]))}}}") == slot(keys[0])


def test_a_firehose_message_names_its_conversation() -> None:
    payload = b'{"type":"message","id":"1:2","text":"12:34"}'
    for conversation in ("genesys:a:b", "x", "loopback:é ü", "12:34"):
        message = firehose_message(conversation, payload)
        assert read_firehose(message) == (conversation, payload)
