"""The `wonderful` dialect: Wonderful AI-agent chat (`sdk.chat`), seed 000_cc53bfd60d4363ad.

The platform's wire is not public. What the gateway speaks is OUR OWN definition of it, built on
the SDK's documented objects:

- REST under `https://api.wonderful.ai` (`GATEWAY_WONDERFUL_URL`), `Authorization: Bearer <key>`
  (`GATEWAY_WONDERFUL_API_KEY` or `GATEWAY_WONDERFUL_TOKEN`):
  `POST /api/v1/chat/sessions` (start) → `ChatSession`; `GET /api/v1/chat/sessions/{id}` (recover)
  → `ChatSession` with its messages; `POST …/{id}/messages` (send) → `{eventId, timestamp}`;
  `POST …/{id}/end`; `POST …/{id}/forward` `{destination}`. Errors are
  `{"error": {"code", "message"}}` with the seed's codes (`INVALID_REQUEST`,
  `MISSING_PARTICIPANT`, `SESSION_NOT_FOUND`).
- A WebSocket `GET …/{id}/ws` carrying one session event per text frame,
  `{"type": "message"|"connected"|"disconnected"|"reconnecting"|"reconnected"|"ended"|"error",
  "data": …}` as the seed's `SessionEvent` types say (`frames.py`, kept apart so it can follow
  the real wire later). `PII_MASKING_ENABLED` arrives as an `error` event.

- `Idempotency-Key: <key>` on every POST (our own convention): a POST repeating the key of
  one the platform already carried out gets its first answer and is not carried out again.

Modules: `native.py` (the seed's objects), `frames.py` (our frame layer), `decode.py` and
`encode.py` (the pure codec: frames → canonical events, commands → requests), `connector.py`
(one live session: REST + WebSocket, the SDK's reconnect policy), `refusals.py` (the platform's
errors as gateway errors), `emulator.py` and `idempotency.py` (the platform, in-process, for
tests and the demo mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp

from adapters.wonderful import decode, encode
from adapters.wonderful.connector import WonderfulConnector
from gateway.adapter import Adapter, Capability, Connector, DialectSettings, NativeRequest
from gateway.model import Command

if TYPE_CHECKING:
    from gateway.demo import Wiring


class WonderfulAdapter(Adapter):
    name = decode.DIALECT
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "recover", "send", "end", "forward"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text", "image", "file"})

    # The module's function itself, not `Adapter.decode` calling `decode_body`: one call less
    # on ingest's path. `decode.decode` keeps the whole contract (bad UTF-8 and deep nesting
    # are `MalformedJSON`), as tests/security/test_fuzz.py checks.
    decode = staticmethod(decode.decode)

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        return encode.encode(command, session)

    def connector(self, settings: DialectSettings, http: aiohttp.ClientSession) -> Connector:
        return WonderfulConnector(settings, http)

    def demo(self) -> Wiring:
        from adapters.wonderful.emulator import demo_wiring

        return demo_wiring()
