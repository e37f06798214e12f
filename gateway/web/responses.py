"""JSON responses and the JSON error body every failure becomes."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gateway.errors import GatewayError

_encoder = msgspec.json.Encoder()

# aiohttp's own HTTP errors (routing, method, size) as the gateway's codes.
_HTTP_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def json_response(data: Any, status: int = 200) -> web.Response:
    """`data` (anything msgspec encodes, or ready JSON bytes) as an `application/json` reply."""
    body = data if isinstance(data, bytes) else _encoder.encode(data)
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(error: GatewayError) -> web.Response:
    return json_response({"error": error.body()}, status=error.status)


def http_error_response(exc: web.HTTPException) -> web.Response:
    """An aiohttp HTTP error (404 of the router, 405, 413 …) with the gateway's error body."""
    code = _HTTP_CODES.get(exc.status, "HTTP_ERROR")
    body = {"error": {"code": code, "message": exc.reason}}
    response = json_response(body, status=exc.status)
    if exc.status == 405 and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response
