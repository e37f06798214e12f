"""The platform's error bodies as gateway errors.

Every error response is `{"error_code": "5005", "error_message": "..."}` (the code arrives as a
string or a number). `vendor_error` maps one to the `GatewayError` a caller should see; the
platform's own code always travels as the `vendor_code` detail.

    1000 bad tenantUrl, 2000-2004 auth header, 3000 bad appId  → VendorError VENDOR_AUTH
    5005 chat session not found                                → SessionNotFound
    5006 entry not found, 5502 file not found                  → NotFound
    5501 upload too large                                      → PayloadTooLarge
    5003 invalid JSON                                          → VendorError VENDOR_REJECTED
    5509 too many poll requests                                → VendorError VENDOR_BUSY
    5511 no events (a long poll that timed out: not a failure) → VendorError NO_EVENTS
    5000, 5001, 5004, 5500, anything else                      → VendorError VENDOR_UNAVAILABLE
"""

from __future__ import annotations

from typing import Final

from gateway.errors import GatewayError, NotFound, PayloadTooLarge, SessionNotFound, VendorError

SESSION_NOT_FOUND: Final = "5005"
TOO_MANY_POLLS: Final = "5509"
NO_EVENTS: Final = "5511"

AUTH_CODES: Final = frozenset({"1000", "2000", "2001", "2002", "2003", "2004", "3000"})
_BY_CODE: Final[dict[str, str]] = {
    "5003": "VENDOR_REJECTED",
    TOO_MANY_POLLS: "VENDOR_BUSY",
    NO_EVENTS: "NO_EVENTS",
} | dict.fromkeys(AUTH_CODES, "VENDOR_AUTH")


def vendor_error(vendor_code: str, message: str, http_status: int | None = None) -> GatewayError:
    """The gateway error for the platform's `error_code` (and its message)."""
    text = f"server_events platform error {vendor_code}: {message or 'no message'}"
    if vendor_code == SESSION_NOT_FOUND:
        return SessionNotFound(text, vendor_code=vendor_code, http_status=http_status)
    if vendor_code in ("5006", "5502"):
        return NotFound(text, vendor_code=vendor_code, http_status=http_status)
    if vendor_code == "5501":
        return PayloadTooLarge(text, vendor_code=vendor_code, http_status=http_status)
    code = _BY_CODE.get(vendor_code, "VENDOR_UNAVAILABLE")
    return VendorError(text, code=code, vendor_code=vendor_code, http_status=http_status)


def vendor_code(exc: BaseException) -> str | None:
    """The platform's code carried by a gateway error, if any."""
    if isinstance(exc, GatewayError):
        code = exc.details.get("vendor_code")
        return code if isinstance(code, str) else None
    return None
