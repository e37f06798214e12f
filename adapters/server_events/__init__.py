"""The `server_events` dialect: a Bright Pattern-style Mobile/Web chat API.

REST plus a GET long poll (`chats/{chatId}/events`). The wire as we implement it, the mapping
and our own inventions are in `docs/dialects/server_events.md`. Modules: `native` (the
platform's frames), `decode` (the spec for `gateway.decoding`) and `encode` (pure), `errors`
(the platform's error codes),
`connector` (one vendor session's I/O), `emulator` (the platform, in-process, for tests and
the demo mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.server_events import encode
from adapters.server_events.decode import SPEC
from adapters.server_events.native import DIALECT
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


class ServerEventsAdapter(Adapter):
    name = DIALECT
    spec = SPEC
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"ingest", "start", "recover", "send", "typing", "read", "end", "history", "files"}
    )
    content_kinds: ClassVar[frozenset[str]] = frozenset(
        {"text", "url", "image", "file", "location"}
    )

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        return encode.encode(command, session)

    def connector(self, settings: DialectSettings, http: VendorHttp) -> Connector:
        from adapters.server_events.connector import ServerEventsConnector

        return ServerEventsConnector(settings, http)

    def demo(self) -> Wiring:
        from adapters.server_events.emulator import demo_wiring

        return demo_wiring()
