"""The `genesys` dialect: Genesys Widgets chat over GMS Chat API v2 (form POSTs, JSON replies).

Modules: `native` (the wire Structs), `decode` (bodies → events), `entries` (one entry → its
canonical event), `encode` (commands → GMS requests), `errors` (vendor codes),
`connector` (one GMS chat session: request, refresh loop, send, disconnect) and `emulator`
(a GMS service on aiohttp for tests and the demo). See `docs/dialects/genesys.md`.

No read receipts (GMS has none) and no forward: `read` and `forward` answer `UNSUPPORTED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.genesys import decode, encode
from adapters.genesys.connector import GenesysConnector
from adapters.genesys.entries import DIALECT
from gateway.adapter import Adapter, Capability, Connector, DialectSettings, NativeRequest
from gateway.model import Command

if TYPE_CHECKING:
    import aiohttp

    from gateway.demo import Wiring


class GenesysAdapter(Adapter):
    name = DIALECT
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "send", "typing", "end"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text", "url"})
    typing_preview: ClassVar[bool] = True

    # The module's function itself, not `Adapter.decode` calling it: one call less on
    # ingest's path. It keeps `decode`'s whole contract itself (bad UTF-8 and deep nesting
    # are `MalformedJSON`, by its exact path).
    decode = staticmethod(decode.decode)

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        return encode.encode(command, session)

    def connector(self, settings: DialectSettings, http: aiohttp.ClientSession) -> Connector:
        return GenesysConnector(settings, http)

    def demo(self) -> Wiring:
        from adapters.genesys.emulator import demo_wiring

        return demo_wiring()
