"""The `genesys` dialect: Genesys Widgets chat over GMS Chat API v2 (form POSTs, JSON replies).

Modules: `native` (the wire Structs, `DIALECT`), `decode` (the pipeline spec: entries and
envelopes → events), `encode` (commands → GMS requests), `errors` (vendor codes), `connector`
(one GMS chat session: request, refresh loop, send, disconnect), `cometd` (the same session on
GMS's CometD notifications: one held connect instead of a poll every 2 s) and `emulator` (a GMS
service on aiohttp, REST and CometD, for tests and the demo). See `docs/dialects/genesys.md`.

`GATEWAY_GENESYS_TRANSPORT`: `cometd` (the default: GMS pushes, so thousands of chats per
replica cost one held connection each and answers arrive at once) or `polling` (a GMS whose
chat service lacks `enable_notification_mode`; every chat refreshes every `poll_interval_s`).

No read receipts (GMS has none) and no forward: `read` and `forward` answer `UNSUPPORTED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.genesys import encode
from adapters.genesys.cometd import CometdConnector
from adapters.genesys.connector import GenesysConnector
from adapters.genesys.decode import SPEC
from adapters.genesys.native import DIALECT
from gateway.adapter import Adapter, Capability, Connector, DialectSettings, NativeRequest
from gateway.errors import RequestError
from gateway.model import Command

if TYPE_CHECKING:
    from gateway.demo import Wiring
    from gateway.vendor_http import VendorHttp


class GenesysAdapter(Adapter):
    name = DIALECT
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "send", "typing", "end"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text", "url"})
    typing_preview: ClassVar[bool] = True
    spec = SPEC

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        return encode.encode(command, session)

    def connector(self, settings: DialectSettings, http: VendorHttp) -> Connector:
        transport = settings.options.get("transport") or "cometd"
        if transport == "cometd":
            return CometdConnector(settings, http)
        if transport == "polling":
            return GenesysConnector(settings, http)
        raise RequestError(
            f"GATEWAY_GENESYS_TRANSPORT = {transport!r}: must be 'cometd' or 'polling'"
        )

    def demo(self) -> Wiring:
        from adapters.genesys.emulator import demo_wiring

        return demo_wiring()
