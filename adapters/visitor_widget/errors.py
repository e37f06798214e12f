"""The platform's errors as the gateway's: an error ack of an emit, or a `server.error` frame.

Both have the vendor's `Events.ServerError` shape `{message, code?, type?, event?}`
(smartsupp-sdk-websocket `src/events.ts`; the SDK turns either into its `SocketError`), e.g. the
one documented answer `{"message": "Connection not initialized", "type": "auth_error",
"event": "chat.message", "code": 403}` (`test/support/server.ts`). The platform publishes no
catalogue of codes: they read as HTTP statuses, and `type` names the kind.

    404, or type `not_found`                      → SessionNotFound   (SESSION_NOT_FOUND)
    400 / 422, or type `bad_request` / `validation_error`
                                                  → RequestError      (INVALID_REQUEST)
    anything else (401/403 `auth_error`, 5xx, …)  → VendorError       (VENDOR_ERROR, recoverable)

Every one keeps the vendor's `code`, `type` and `event` as the details `vendor_code`,
`vendor_type` and `event`.
"""

from __future__ import annotations

from typing import Any

from adapters.visitor_widget.native import ServerErrorData
from gateway.errors import GatewayError, RequestError, SessionNotFound, VendorError


def error_of(err: ServerErrorData) -> GatewayError:
    """The gateway error an error ack or `server.error` stands for (see the module doc)."""
    return error_class(err)(err.message, **details(err))


def error_class(err: ServerErrorData) -> type[GatewayError]:
    """The class `error_of` makes (an `error` event needs its `code` and `recoverable` only)."""
    code = str(err.code)
    status = int(code) if code.isdigit() else None
    if status == 404 or err.type == "not_found":
        return SessionNotFound
    if status in (400, 422) or err.type in ("bad_request", "validation_error"):
        return RequestError
    return VendorError


def details(err: ServerErrorData) -> dict[str, Any]:
    """The vendor's `code`, `type` and `event` as error details (absent ones left out)."""
    found = {"vendor_code": err.code, "vendor_type": err.type, "event": err.event}
    return {k: v for k, v in found.items() if v is not None}
