"""The `signalwire` dialect: SignalWire Call Fabric chat (`client.chat`), issue 6.

Modules: `native` (the platform's frames), `codec` (pure decode/encode), `history` (pure
chat-page collection as the SDK's getMessages does), `connector` (one live conversation over
REST + the JSON-RPC WebSocket), `emulator` (the platform, in-process). Wire and mapping:
`docs/dialects/signalwire.md`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.signalwire import codec
from gateway.adapter import Adapter, Capability, Connector, DialectSettings, NativeRequest
from gateway.model import Command

if TYPE_CHECKING:
    import aiohttp

    from gateway.demo import Wiring


class SignalWireAdapter(Adapter):
    """Decodes webhook bodies (live events, history pages, rows); encodes join/send/history.

    SignalWire chat carries text only and has no typing, receipts, end or forward: those
    commands answer `UNSUPPORTED`.
    """

    name = codec.DIALECT
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "recover", "send", "history"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text"})

    # The module's function itself, not a method calling it: one call less on ingest's path.
    # It keeps `Adapter.decode`'s whole contract (bad UTF-8 and deep nesting are
    # `MalformedJSON`), see `codec.decode`.
    decode = staticmethod(codec.decode)

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        return codec.encode(command, session)

    def connector(self, settings: DialectSettings, http: aiohttp.ClientSession) -> Connector:
        from adapters.signalwire.connector import SignalWireConnector

        return SignalWireConnector(settings, http)

    def demo(self) -> Wiring:
        from adapters.signalwire.emulator import demo_wiring

        return demo_wiring()
