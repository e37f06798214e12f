"""OpenTelemetry tracing, off unless the standard `OTEL_*` environment turns it on.

Tracing is on when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) or an OTLP
endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and
`OTEL_SDK_DISABLED` is not `true`. It needs the official SDK and exporter: the `[otel]` extra
(`pip install 'chat-dialect-gateway[otel]'`). Everything else is the SDK's own reading of the
standard variables: the exporter's endpoint, headers, timeout and compression, the batch
processor's limits (`OTEL_BSP_*`), the sampler (`OTEL_TRACES_SAMPLER`), the resource
(`OTEL_SERVICE_NAME`, default `chat-dialect-gateway`; `OTEL_RESOURCE_ATTRIBUTES`) and the
propagators (`OTEL_PROPAGATORS`, default W3C `traceparent` and baggage).

Spans (docs/observability.md): `ingest` (a webhook; `decode` and `hub.publish` its children),
`command <op>` (HTTP or WebSocket), `command.forward` to the owning replica and `command.serve`
there (the context crosses Redis in the forwarded envelope), and `vendor <METHOD>` for every
request a connector makes. Incoming `traceparent` headers (and a WebSocket command's
`traceparent` field) make the gateway's spans children of the caller's.

Off, every helper here is a check of one module global: no SDK is imported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

from gateway import __version__
from gateway.config import ConfigError
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()

SERVICE_NAME = "chat-dialect-gateway"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment turns tracing on (see the module's docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER")
    if exporters is not None:
        return any(e.strip() not in ("", "none") for e in exporters.lower().split(","))
    return any(environ.get(name) for name in _ENDPOINTS)


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Start the SDK as the environment asks; False when tracing stays off. `ConfigError`
    naming the variable when tracing is asked for but cannot be given. (`environ` decides on
    and which exporters; the SDK reads the rest of `os.environ` itself.)"""
    if not wanted(environ):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            "OTEL_*: tracing is turned on but the OpenTelemetry SDK is not installed "
            "(install the [otel] extra: pip install 'chat-dialect-gateway[otel]')",
            "otel",
        ) from None
    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
    names = [e.strip() for e in environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")]
    for name in names:
        if name in ("", "none"):
            continue
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    trace.set_tracer_provider(provider)
    install(provider)
    return True


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)",
            "otel",
        )
    variable = next(
        (
            v
            for v in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
            if v in environ
        ),
        None,
    )
    protocol = environ[variable].strip() if variable else "http/protobuf"
    if protocol != "http/protobuf":
        raise ConfigError(
            f"{variable}: {protocol!r} is not supported; the [otel] extra exports "
            "http/protobuf (the OTLP default)",
            "otel",
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            "OTEL_TRACES_EXPORTER: the OTLP exporter is not installed (install the [otel] "
            "extra: pip install 'chat-dialect-gateway[otel]')",
            "otel",
        ) from None
    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*


def install(provider: TracerProvider | None) -> None:
    """Trace through `provider` from now on (None: tracing off). `configure` calls it; tests
    call it with a provider of their own (the SDK's in-memory exporter)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("gateway", __version__) if provider is not None else None


def shutdown() -> None:
    """Export what is still buffered, then stop (at the end of `gateway serve`)."""
    if _provider is not None:
        _provider.shutdown()
    install(None)


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str,
    *,
    kind: Literal["internal", "server", "client"] = "internal",
    carrier: Mapping[str, str] | None = None,
    attributes: Mapping[str, str | int] | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """`with span(name):` a child of the current span (or of the trace context in `carrier`,
    a request's headers say), current for the block. `kind`: "server" for the gateway's end
    of a request another process made, "client" for its own request to another. A
    `GatewayError` of the caller's making (4xx) is an attribute, not an error status: only
    the gateway's failures are errors."""
    if _tracer is None:
        return _OFF
    return _span(_tracer, name, kind, carrier, attributes)


@contextlib.contextmanager
def _span(
    tracer: Tracer,
    name: str,
    kind: str,
    carrier: Mapping[str, str] | None,
    attributes: Mapping[str, str | int] | None,
) -> Iterator[Span]:
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind, StatusCode

    parent = propagate.extract(carrier) if carrier is not None else None
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=SpanKind[kind.upper()],
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except GatewayError as exc:
            current.set_attribute("error.type", exc.code)
            if exc.status >= 500:
                current.set_status(StatusCode.ERROR, exc.message)
            raise
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            current.record_exception(exc)
            current.set_status(StatusCode.ERROR, type(exc).__name__)
            raise


def start_client_span(name: str, attributes: Mapping[str, str | int]) -> Span | None:
    """A span for a request the gateway makes (a vendor's API), child of the current span;
    the caller ends it. None when tracing is off."""
    if _tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    return _tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def command_attributes(command: Any) -> dict[str, str | int]:
    """The attributes a command's spans carry: its op, and its conversation or dialect."""
    attributes: dict[str, str | int] = {"gateway.op": command.__struct_config__.tag}
    for field, attribute in (
        ("conversation", "gateway.conversation_id"),
        ("dialect", "gateway.dialect"),
    ):
        value = getattr(command, field, None)
        if value is not None:
            attributes[attribute] = value
    return attributes


def error_status(description: str | None = None) -> Any:
    """The span status of a failure (for spans ended by hand, like `start_client_span`'s)."""
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR, description)


def command_context(command: Any) -> dict[str, str] | None:
    """The trace context a command frame carries (its `traceparent`), as headers to extract."""
    return {"traceparent": command.traceparent} if command.traceparent else None


def carrier() -> dict[str, str]:
    """The current trace context as headers (`traceparent`, …) to hand to another process;
    empty when tracing is off or no span is current."""
    if _tracer is None:
        return {}
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current span's `trace_id` and `span_id` on every log line
    written inside it, so logs and traces join."""
    if _tracer is None:
        return event
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event
