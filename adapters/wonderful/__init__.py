"""The `wonderful` dialect: Wonderful AI-agent chat (`sdk.chat`), seed 000_cc53bfd60d4363ad.

The connector speaks the platform's chat WebSocket
(`wss://<host>/api/v1/agents/{agentId}/chat?commType=chat`, public integration notes "Connecting
to Wonderful Agent Chat via WebSocket"): `start`, `init`, `message`, `transcript`, `turn_ended`,
`communication_ended`. What that wire has no frame for (recover and history, image and document
messages, end, forward) goes to REST paths that are NOT public: ours, configurable
(`encode.SESSIONS_PATH`). Webhook bodies decode in both forms: those raw frames, and the SDK's
`SessionEvent` objects as a backend relays them.

Modules: `native.py` (the Structs: frames, envelopes, the seed's objects), `decode.py` (the
spec for the shared decode pipeline: frames → canonical events), `encode.py` (commands →
socket frames and REST requests), `errors.py` (the platform's refusals as gateway errors),
`connector.py` (one live session), `emulator.py` (the platform, in-process, for tests and the
demo mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.wonderful import encode
from adapters.wonderful.connector import WonderfulConnector
from adapters.wonderful.decode import SPEC
from adapters.wonderful.native import DIALECT
from gateway.adapter import Adapter, Capability, Connector, DialectSettings, NativeRequest
from gateway.model import Command

if TYPE_CHECKING:
    from gateway.demo import Wiring
    from gateway.vendor_http import VendorHttp


class WonderfulAdapter(Adapter):
    name = DIALECT
    spec = SPEC
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "recover", "send", "end", "forward"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text", "image", "file"})

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        return encode.encode(command, session)

    def connector(self, settings: DialectSettings, http: VendorHttp) -> Connector:
        return WonderfulConnector(settings, http)

    def demo(self) -> Wiring:
        from adapters.wonderful.emulator import demo_wiring

        return demo_wiring()
