"""The `visitor_widget` dialect: the Smartsupp-style visitor web widget over Socket.IO v2.

Native Structs in `native.py`, decode (the shared pipeline's spec) in `decode.py`, encode in
`encode.py`, the platform's errors in `errors.py`, the Engine.IO v3 / Socket.IO v2 wire in
`sio.py`, the vendor session in `connector.py`, the platform emulator in `emulator.py`.
See docs/dialects/visitor_widget.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.visitor_widget import encode
from adapters.visitor_widget.connector import VisitorWidgetConnector
from adapters.visitor_widget.decode import SPEC
from adapters.visitor_widget.native import DIALECT
from gateway.adapter import Adapter, Capability, Connector, DialectSettings, NativeRequest
from gateway.model import Command

if TYPE_CHECKING:
    from gateway.demo import Wiring
    from gateway.vendor_http import VendorHttp


class VisitorWidgetAdapter(Adapter):
    name = DIALECT
    spec = SPEC
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "recover", "send", "typing", "read", "end", "files"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text", "url", "image", "file"})
    typing_preview: ClassVar[bool] = True  # `chat.typing {typing: {is, text}}`

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        return encode.encode(command, session)

    def connector(self, settings: DialectSettings, http: VendorHttp) -> Connector:
        return VisitorWidgetConnector(settings, http)

    def demo(self) -> Wiring:
        from adapters.visitor_widget.emulator import demo_wiring

        return demo_wiring()
