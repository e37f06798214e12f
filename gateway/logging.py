"""structlog setup: JSON lines off a TTY, a console renderer on one.

Context (request_id, dialect, conversation_id, connection) is bound with
`structlog.contextvars.bound_contextvars` by the web layer and merged into every line. Event
names are `noun.verb` (`ingest.accepted`, `ws.closed`, `hub.reconnected`). Tracebacks are
rendered without frame locals: tokens and message bodies live there. Secrets are masked by key
always; message text and customer identifiers too unless `log_redact` is off. The standard
library's loggers (aiohttp's among them) go through the same renderer.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import msgspec
import structlog
from structlog.tracebacks import ExceptionDictTransformer

_encoder = msgspec.json.Encoder(enc_hook=str)


def _serialize(obj: Any, **_: Any) -> str:
    return _encoder.encode(obj).decode()


SECRET_KEYS = frozenset(
    {
        "token",
        "secret",
        "password",
        "authorization",
        "apikey",
        "api_key",
        "secure_key",
        "securekey",
        "jwt",
        "key",
        "cookie",
    }
)
"""Log keys whose values are never written, whatever the settings."""
CUSTOMER_KEYS = frozenset(
    {
        "text",
        "preview",
        "message_text",
        "body",
        "from",
        "from_",
        "email",
        "phone",
        "name",
        "nickname",
        "first_name",
        "last_name",
        "participant",
    }
)
"""Log keys that hold what customers wrote or who they are: masked unless redaction is off."""
MASK = "***"


def redactor(redact_customer_data: bool) -> Any:
    """A structlog processor masking secrets always, and customer data when asked to."""
    keys = SECRET_KEYS | CUSTOMER_KEYS if redact_customer_data else SECRET_KEYS

    def redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        for key in keys & event.keys():
            if event[key] is not None:
                event[key] = MASK
        return event

    return redact


def configure(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: Any = None,
    redact: bool = True,
) -> None:
    """Configure structlog and the standard library's logging once, for the whole process."""
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redactor(redact),
    ]
    renderer: Any
    if as_json:
        shared.append(
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        )
        renderer = structlog.processors.JSONRenderer(serializer=_serialize)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[
            *shared[:1],
            structlog.stdlib.filter_by_level,
            *shared[1:],
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True  # the gateway writes its own access line
