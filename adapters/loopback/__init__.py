"""The `loopback` dialect: a test-only dialect of our own, with a connector and an emulator.

Frames are described in `native.py`, the platform's API in `emulator.py`. It exists so the
gateway's own layers (ingest, hub, sessions, replicas) are tested end to end without a vendor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from adapters.loopback.connector import LoopbackConnector
from adapters.loopback.decode import SPEC
from adapters.loopback.native import DIALECT
from gateway.adapter import Adapter, Capability, Connector, DialectSettings

if TYPE_CHECKING:
    from gateway.demo import Wiring
    from gateway.vendor_http import VendorHttp


class LoopbackAdapter(Adapter):
    name = DIALECT
    spec = SPEC
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "recover", "send", "typing", "end"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset({"text"})
    test_only = True

    def connector(self, settings: DialectSettings, http: VendorHttp) -> Connector:
        return LoopbackConnector(settings, http)

    def demo(self) -> Wiring:
        from adapters.loopback.emulator import demo_wiring

        return demo_wiring()
