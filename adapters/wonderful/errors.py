"""The platform's refusals as gateway errors: REST error bodies and refused socket handshakes.

`MISSING_PARTICIPANT`, `INVALID_REQUEST` and `SESSION_ENDED` keep their code; `SESSION_NOT_FOUND`
(or any 404) is `SessionNotFound`; other 4xx are `INVALID_REQUEST`; 401, 403, 429 and 5xx are
`VENDOR_ERROR`. The platform's own code is kept as `vendor_code`.
"""

from __future__ import annotations

import aiohttp
import msgspec

from adapters.wonderful.native import ErrorBody
from gateway.errors import GatewayError, RequestError, SessionNotFound, VendorError

_REQUEST_CODES = frozenset({"INVALID_REQUEST", "MISSING_PARTICIPANT", "SESSION_ENDED"})


def platform_error(status: int, body: bytes) -> GatewayError:
    """The gateway error for a refusal of the platform (`{"error": {"code", "message"}}`)."""
    try:
        detail = msgspec.json.decode(body, type=ErrorBody).error
        code, message = detail.code, detail.message or detail.code
    except msgspec.DecodeError:
        code, message = None, f"HTTP {status}"
    if code == "SESSION_NOT_FOUND" or status == 404:
        return SessionNotFound(message, vendor_code=code)
    if code in _REQUEST_CODES:
        return RequestError(message, code=code, vendor_code=code)
    if 400 <= status < 500 and status not in (401, 403, 429):
        return RequestError(message, vendor_code=code, http_status=status)
    return VendorError(message, vendor_code=code, http_status=status)


def handshake_error(exc: aiohttp.WSServerHandshakeError) -> GatewayError:
    """The gateway error for a refused socket handshake."""
    if exc.status == 404:
        return SessionNotFound("no such session", vendor_code="SESSION_NOT_FOUND")
    return VendorError(f"socket refused: HTTP {exc.status}", http_status=exc.status)
