"""The `visitor_widget` dialect: the Smartsupp-style visitor web widget over Socket.IO v2.

Decode in `codec.py`, encode in `commands.py` (native Structs in `native.py`), the
Engine.IO v3 / Socket.IO v2 wire in `sio.py`, the vendor session in `connector.py`, the
platform emulator in `emulator.py`.
See docs/dialects/visitor_widget.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.visitor_widget import codec, commands
from adapters.visitor_widget.connector import VisitorWidgetConnector
from gateway.adapter import Adapter, Capability, Connector, DialectSettings, NativeRequest
from gateway.model import Command

if TYPE_CHECKING:
    import aiohttp

    from gateway.demo import Wiring


class VisitorWidgetAdapter(Adapter):
    name = codec.DIALECT
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "recover", "send", "typing", "read", "end", "files"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text", "url", "image", "file"})
    typing_preview: ClassVar[bool] = True  # `chat.typing {typing: {is, text}}`

    # The module's function itself, not `Adapter.decode` calling `decode_body`: one call less
    # on ingest's path. `codec.decode` keeps the whole contract (bad UTF-8 and deep nesting
    # are `MalformedJSON`), as tests/security/test_fuzz.py checks.
    decode = staticmethod(codec.decode)

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        return commands.encode(command, session)

    def connector(self, settings: DialectSettings, http: aiohttp.ClientSession) -> Connector:
        return VisitorWidgetConnector(settings, http)

    def demo(self) -> Wiring:
        from adapters.visitor_widget.emulator import demo_wiring

        return demo_wiring()
