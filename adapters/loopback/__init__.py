"""The `loopback` dialect: a test-only dialect of our own (see `native.py` for its frames)."""

from __future__ import annotations

from typing import ClassVar

from adapters.loopback import codec
from gateway.adapter import Adapter, Capability, Decoded


class LoopbackAdapter(Adapter):
    name = codec.DIALECT
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"ingest"})
    test_only = True

    def decode(self, body: bytes, *, conversation: str | None = None) -> Decoded:
        return codec.decode(body, conversation)
