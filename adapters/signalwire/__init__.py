"""The `signalwire` dialect: SignalWire Call Fabric chat (`client.chat`), issue 6.

Modules: `native` (the platform's frames), `decode` (the dialect's spec for the shared decode
pipeline, and history pages as the SDK's getMessages folds them), `encode` (commands to REST
requests), `errors` (the platform's refusals), `relay` (the JSON-RPC socket: where it is,
joining and resuming), `connector` (one live conversation over REST + the Relay socket),
`emulator` (the platform, in-process). Wire and mapping: `docs/dialects/signalwire.md`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.signalwire import encode
from adapters.signalwire.decode import SPEC
from adapters.signalwire.native import DIALECT
from gateway.adapter import (
    Adapter,
    Capability,
    Connector,
    DialectSettings,
    NativeRequest,
)
from gateway.model import Command

if TYPE_CHECKING:
    from gateway.demo import Wiring
    from gateway.vendor_http import VendorHttp


class SignalWireAdapter(Adapter):
    """Decodes webhook bodies (live events, history pages, rows); encodes join/send/history.

    SignalWire chat carries text only and has no typing, receipts, end or forward: those
    commands answer `UNSUPPORTED`.
    """

    name = DIALECT
    spec = SPEC
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "recover", "send", "history"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text"})
    decode_options: ClassVar[frozenset[str]] = frozenset({"address_id"})
    """Our own fabric address, as configured: rows from it are the user's on webhooks too."""

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        return encode.encode(command, session)

    def connector(self, settings: DialectSettings, http: VendorHttp) -> Connector:
        from adapters.signalwire.connector import SignalWireConnector

        return SignalWireConnector(settings, http)

    def demo(self) -> Wiring:
        from adapters.signalwire.emulator import demo_wiring

        return demo_wiring()
