"""Typed keys of the aiohttp application's state (one per shared resource)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.adapter import Registry
from gateway.config import Settings
from gateway.hub import Hub
from gateway.vendor_http import VendorPools
from gateway.web.auth import Authenticator, Grant
from gateway.web.limits import ClientLimits
from gateway.web.signatures import SigningKeys

if TYPE_CHECKING:
    from gateway.sessions import Sessions
    from gateway.web.ws import Connection

SETTINGS = web.AppKey("settings", Settings)
AUTH = web.AppKey("auth", Authenticator)
CLIENT_LIMITS = web.AppKey("client_limits", ClientLimits)
WEBHOOK_KEYS = web.AppKey("webhook_keys", dict[str, SigningKeys])
"""Per dialect with webhook secrets, its active keys (`GATEWAY_<DIALECT>_WEBHOOK_SECRETS`)."""
DECODE_OPTIONS = web.AppKey("decode_options", dict[str, dict[str, str]])
"""Per dialect, the settings its decoding reads (`Adapter.decode_options`), as configured."""
GRANT = web.RequestKey("grant", Grant)
"""The request's `Grant`, set by the middleware on routes that need a token."""
LOGGED = web.RequestKey("logged", bool)
"""Set by a handler whose own line (with the access line's fields) stands for the request's
access line: the middleware then writes none (one info line per request)."""
REGISTRY = web.AppKey("registry", Registry)
HUB = web.AppKey("hub", Hub)
VENDOR_HTTP = web.AppKey("vendor_http", VendorPools)
"""Every dialect's connection pools (`gateway.vendor_http`)."""
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")
CONNECTIONS: web.AppKey[set[Connection]] = web.AppKey("connections")
