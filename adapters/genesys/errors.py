"""Genesys error codes (the widget API's catalogue, which GMS error bodies reuse) → ours.

    1   unknown command              UNSUPPORTED
    2   mandatory parameter missing  INVALID_REQUEST
    3   bad parameter value          INVALID_REQUEST
    50  unknown session              SESSION_NOT_FOUND
    51  command stopped by decorator VENDOR_ERROR
    52  execution error              VENDOR_ERROR (recoverable)
    100 chat server unavailable      VENDOR_ERROR (recoverable)
    101 login failed                 VENDOR_ERROR
    150-199 transport                VENDOR_ERROR (recoverable)
    other (200-249 widget, …)        VENDOR_ERROR

`error_code` gives the canonical code of an `error` event; `command_error` the exception a
refused command raises (the native code kept as `vendor_code`). Pure.
"""

from __future__ import annotations

from gateway.errors import (
    GatewayError,
    RequestError,
    SessionNotFound,
    Unsupported,
    VendorError,
)

_CODES: dict[int, tuple[str, bool]] = {
    1: ("UNSUPPORTED", False),
    2: ("INVALID_REQUEST", False),
    3: ("INVALID_REQUEST", False),
    50: ("SESSION_NOT_FOUND", False),
    51: ("VENDOR_ERROR", False),
    52: ("VENDOR_ERROR", True),
    100: ("VENDOR_ERROR", True),
    101: ("VENDOR_ERROR", False),
}


def _number(vendor_code: int | str) -> int | None:
    try:
        return int(vendor_code)
    except ValueError:
        return None


def error_code(vendor_code: int | str) -> tuple[str, bool]:
    """The canonical error code and whether retrying may help, for a genesys error code."""
    # An int (the usual form) is taken as it is: `int()` only parses the string form.
    number = vendor_code if type(vendor_code) is int else _number(vendor_code)
    if number is None:
        return "VENDOR_ERROR", False
    known = _CODES.get(number)
    if known is not None:
        return known
    return "VENDOR_ERROR", 150 <= number < 200


def command_error(vendor_code: int | str, text: str | None) -> GatewayError:
    """The `GatewayError` for a command GMS refused with `vendor_code`."""
    code, _ = error_code(vendor_code)
    message = f"genesys refused the request: {text or 'error ' + str(vendor_code)}"
    if code == "SESSION_NOT_FOUND":
        return SessionNotFound(message, vendor_code=vendor_code)
    if code == "UNSUPPORTED":
        return Unsupported(message, vendor_code=vendor_code)
    if code == "INVALID_REQUEST":
        return RequestError(message, vendor_code=vendor_code)
    return VendorError(message, vendor_code=vendor_code)
