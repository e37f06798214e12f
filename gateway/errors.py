"""The gateway's errors, each with a stable machine-readable `code`.

    GatewayError                   code            HTTP
    ├── RequestError               INVALID_REQUEST 400   a command or query that breaks the contract
    │   ├── MalformedJSON          MALFORMED_JSON  400   a body or frame that is not JSON
    │   ├── PayloadTooLarge        PAYLOAD_TOO_LARGE 413
    │   └── UnsupportedMediaType   UNSUPPORTED_MEDIA_TYPE 415  a body sent as a form or text
    ├── NotFound                   NOT_FOUND       404
    │   ├── UnknownDialect         UNKNOWN_DIALECT 404
    │   └── SessionNotFound        SESSION_NOT_FOUND 404
    ├── Unsupported                UNSUPPORTED     422   the dialect cannot carry that command
    ├── AdapterError               ADAPTER_ERROR   502   a dialect failed to do its part
    │   ├── DecodeError            INVALID_FRAME   422   a known native frame that breaks its schema
    │   └── VendorError            VENDOR_ERROR    502   the platform refused or failed a request
    ├── StoreUnavailable           STORE_UNAVAILABLE 503 the hub's store cannot be reached
    ├── AtCapacity                 CAPACITY        503   this replica owns all the sessions it may
    └── DeadlineExceeded           TIMEOUT         504   a command did not finish in its time

The HTTP and WebSocket layers turn any of them into `{"code", "message", ...details}`;
backend exceptions are mapped to these at the boundary (`raise StoreUnavailable(...) from exc`).
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """Base of every error the gateway reports to a client.

    `details` are extra machine-readable fields of the error body (e.g. `index`, `path`).
    `recoverable` tells a client whether retrying the same thing later may succeed.
    """

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    recoverable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        recoverable: bool | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        if recoverable is not None:
            self.recoverable = recoverable  # type: ignore[misc]
        self.details = {k: v for k, v in details.items() if v is not None}

    def body(self) -> dict[str, Any]:
        """The JSON error body: `code`, `message` and the details."""
        return {"code": self.code, "message": self.message, **self.details}


class RequestError(GatewayError):
    code = "INVALID_REQUEST"
    status = 400


class MalformedJSON(RequestError):
    code = "MALFORMED_JSON"


class PayloadTooLarge(RequestError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class UnsupportedMediaType(RequestError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class NotFound(GatewayError):
    code = "NOT_FOUND"
    status = 404


class UnknownDialect(NotFound):
    code = "UNKNOWN_DIALECT"


class SessionNotFound(NotFound):
    code = "SESSION_NOT_FOUND"


class Unsupported(GatewayError):
    code = "UNSUPPORTED"
    status = 422


class AdapterError(GatewayError):
    code = "ADAPTER_ERROR"
    status = 502


class DecodeError(AdapterError):
    """A known native frame that breaks its schema; `index` is the frame's place in the batch,
    `path` the JSON path inside that frame (e.g. `$.data.text`)."""

    code = "INVALID_FRAME"
    status = 422


class VendorError(AdapterError):
    """The platform refused or failed a request. `code` is the canonical code; the platform's
    own code, when it gives one, is in `vendor_code`."""

    code = "VENDOR_ERROR"
    status = 502
    recoverable = True


class StoreUnavailable(GatewayError):
    code = "STORE_UNAVAILABLE"
    status = 503
    recoverable = True


class AtCapacity(GatewayError):
    """This replica already owns `max_sessions` vendor sessions: retry (through the load
    balancer another replica may have room); nothing was started."""

    code = "CAPACITY"
    status = 503
    recoverable = True


class DeadlineExceeded(GatewayError):
    """A command did not finish within its deadline (`command_timeout_s`); a start that
    passed it left no vendor session behind. Retrying (with the same `ref`) is safe."""

    code = "TIMEOUT"
    status = 504
    recoverable = True
