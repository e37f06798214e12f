"""The platform's refusals as gateway errors.

SignalWire publishes no error catalogue. Two shapes reach us:

- REST: a status and `{"errors": [{"code", "message"}]}` (the shape of its other REST APIs).
  401/403 → `VendorError` `VENDOR_UNAUTHORIZED` (not recoverable: the same token is refused
  again), 404 → `SessionNotFound`, 400/422 → `RequestError`, anything else → `VendorError`.
- JSON-RPC: the error of a `signalwire.connect`. The SDK (`@signalwire/js` v4,
  `core/constants.ts`) names -32002 authentication failed, -32003 requester validation failed
  and -32602 invalid params; on any of them after it sent a saved `authorization_state` it
  drops that state and connects afresh (`ClientSessionManager.handleAuthenticationError`).

The platform's own code is kept in `vendor_code`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec

from adapters.signalwire.native import RpcError
from gateway.errors import GatewayError, RequestError, SessionNotFound, VendorError

UNAUTHORIZED = "VENDOR_UNAUTHORIZED"
UNREACHABLE = "VENDOR_UNREACHABLE"

AUTHENTICATION_FAILED = -32002
REQUESTER_VALIDATION_FAILED = -32003
INVALID_PARAMS = -32602
STALE_STATE_CODES = frozenset({AUTHENTICATION_FAILED, REQUESTER_VALIDATION_FAILED, INVALID_PARAMS})
"""Connect errors that, after a reconnect with saved state, mean: drop it and connect afresh."""


def rest_refusal(status: int, raw: bytes) -> GatewayError:
    """A REST error answer as a gateway error."""
    vendor_code: Any = status
    message = f"signalwire answered {status}"
    with contextlib.suppress(msgspec.DecodeError, TypeError, KeyError, IndexError, AttributeError):
        first = msgspec.json.decode(raw)["errors"][0]
        vendor_code = first.get("code", status)
        message = f"signalwire answered {status}: {first.get('message', '')}"
    if status in (401, 403):  # the same token is refused again: not worth a retry
        return VendorError(message, code=UNAUTHORIZED, vendor_code=vendor_code, recoverable=False)
    if status == 404:
        return SessionNotFound(message, vendor_code=vendor_code)
    if status in (400, 422):
        return RequestError(message, vendor_code=vendor_code)
    return VendorError(message, vendor_code=vendor_code)


def connect_refusal(error: RpcError) -> VendorError:
    """A refused `signalwire.connect` as a gateway error (authentication failures are not
    recoverable: the same token is refused again)."""
    unauthorized = error.code == AUTHENTICATION_FAILED
    return VendorError(
        f"signalwire.connect refused: {error.message}",
        code=UNAUTHORIZED if unauthorized else "VENDOR_ERROR",
        vendor_code=error.code,
        recoverable=not unauthorized,
    )
