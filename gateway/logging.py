"""structlog setup: JSON lines off a TTY, a console renderer on one.

Context (request_id, dialect, conversation_id, connection) is bound with `bound` and `bind`
(below) by the web layer and merged into every line; with tracing on, so are the current span's
`trace_id` and `span_id` (`gateway.tracing`). Event
names are `noun.verb` (`ingest.accepted`, `ws.closed`, `hub.reconnected`). Tracebacks are
rendered without frame locals: tokens and message bodies live there. Secrets are masked by key
always; message text and customer identifiers too unless `log_redact` is off. The standard
library's loggers (aiohttp's among them) go through the same renderer.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

import msgspec
import structlog
from structlog.tracebacks import ExceptionDictTransformer

from gateway.tracing import add_trace_ids

_encoder = msgspec.json.Encoder(enc_hook=str)


_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "gateway_log_context", default=MappingProxyType({})
)
"""The fields bound to every line of this context: one mapping, replaced (never changed in
place) by `bound` and `bind`, so a task created in a block keeps what was bound when it
started."""


class bound:
    """`with bound(**fields):` binds `fields` to every log line in the block (and the tasks it
    creates), then restores exactly what was there before, fields `bind` added in the block
    included.

    All bound fields live in one context variable holding one mapping: entering and leaving a
    block is one `set` and one `reset`, and a line merges them with one `get`. (structlog's
    own `contextvars` module keeps a variable per key and scans the whole context for them on
    every line; it is not merged here.)
    """

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields: dict[str, Any] | None = fields
        self._token: contextvars.Token[Mapping[str, Any]] | None = None

    def __enter__(self) -> None:
        assert self._fields is not None, "a `bound` block is entered once"
        self._token = _context.set({**_context.get(), **self._fields})
        self._fields = None

    def __exit__(self, *_: object) -> None:
        assert self._token is not None
        _context.reset(self._token)


def bind(**fields: Any) -> None:
    """Bind `fields` to every later line of this context, until the enclosing `bound` block
    ends (which restores what was there before it)."""
    _context.set({**_context.get(), **fields})


def _merge_context(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in _context.get().items():
        event.setdefault(key, value)  # a call's own field wins over a bound one
    return event


class Logger:
    """A module's logger, `log = get_logger(__name__)`: its methods are those of the structlog
    logger the current configuration makes, made again by each `configure`.

    `structlog.get_logger` returns a lazy proxy that looks the logger up again on every call
    (an attribute miss, a `bind`, another lookup), which costs a request about as much as one
    of its processors. Here a call is the configured logger's own method: for a level the
    configuration filters out, one that does nothing."""

    debug: Callable[..., Any]
    info: Callable[..., Any]
    warning: Callable[..., Any]
    error: Callable[..., Any]
    exception: Callable[..., Any]

    def __init__(self, name: str) -> None:
        self.name = name
        self.rebind()

    def rebind(self) -> None:
        real = structlog.get_logger(self.name).bind()
        self.debug, self.info, self.warning = real.debug, real.info, real.warning
        self.error, self.exception = real.error, real.exception

    def bind(self, **fields: Any) -> Any:
        """A structlog logger of this one's with `fields` on every line."""
        return structlog.get_logger(self.name).bind(**fields)


_loggers: list[Logger] = []


def get_logger(name: str) -> Logger:
    """The logger of module `name` (see `Logger`); meant for module level."""
    logger = Logger(name)
    _loggers.append(logger)
    return logger


def reset() -> None:
    """Back to structlog's defaults (`structlog.reset_defaults`), the module loggers with it."""
    structlog.reset_defaults()
    for logger in _loggers:
        logger.rebind()


def _render_json(_: Any, __: str, event: MutableMapping[str, Any]) -> bytes:
    """The line as JSON bytes, in one encode (a `datetime` as ISO 8601, `…Z` in UTC)."""
    return _encoder.encode(event)


def _render_json_text(logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
    """`_render_json` as text, for the standard library's `logging` handler."""
    return _render_json(logger, name, event).decode()


def _stamp_utc(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`timestamp`: now, in UTC. The JSON renderer writes it as `isoformat()` would (with `Z`
    for `+00:00`, as structlog's `TimeStamper(fmt="iso", utc=True)`), in its one encode."""
    event["timestamp"] = datetime.now(UTC)
    return event


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

    def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in keys & event.keys():
            if event[key] is not None:
                event[key] = MASK
        return event

    return redact


class _LineWriter:
    """Writes each rendered line and flushes it: one write a line, nothing held back (a line
    written before a crash is in the file). A JSON line comes as bytes and goes to the
    stream's binary buffer when it has one; a console line comes as text. Carries the
    logger's name (`structlog.get_logger(__name__)`)."""

    def __init__(self, stream: Any, name: str) -> None:
        self.name = name
        self._stream = stream
        self._binary = getattr(stream, "buffer", None)

    def msg(self, line: bytes | str) -> None:
        if isinstance(line, str):
            self._stream.write(line + "\n")
            self._stream.flush()
        elif self._binary is not None:
            self._binary.write(line + b"\n")
            self._binary.flush()
        else:  # a text stream without a buffer (io.StringIO)
            self._stream.write(line.decode() + "\n")
            self._stream.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _add_name(logger: Any, _: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("logger", getattr(logger, "name", None))
    return event


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    structlog.get_logger("gateway").critical("process.crashed", exc_info=(kind, exc, tb))


def configure(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: Any = None,
    redact: bool = True,
) -> None:
    """Configure structlog and the standard library's logging once, for the whole process.

    The gateway's own lines go straight through structlog's processors to the stream (no
    `logging` round trip: about a third of the cost);
    the standard library's loggers reach the same processors through a `logging` handler.
    """
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any
    stamp: Any = _stamp_utc
    if as_json:
        renderer, text_renderer = _render_json, _render_json_text
        exceptions: list[Any] = [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        text_renderer = renderer
        exceptions = []
        stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    common: list[Any] = [
        stamp,
        redactor(redact),
        *exceptions,
    ]
    structlog.configure(
        processors=[
            _merge_context,
            add_trace_ids,
            structlog.processors.add_log_level,
            _add_name,
            *common,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=lambda *args: _LineWriter(stream, args[0] if args else "gateway"),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                _merge_context,
                add_trace_ids,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                *common,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, text_renderer],
        )
    )
    for logger in _loggers:
        logger.rebind()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Warnings and anything that escapes to the top are lines in the same format, not bare
    # text between JSON lines.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    logging.getLogger("aiohttp.access").disabled = True  # the gateway writes its own access line
