"""OpenTelemetry tracing: off by default, turned on by the standard OTEL_* environment; a
command's trace runs from the caller through the replica it reached, across Redis to the
replica owning the session, to the vendor request; a webhook's spans reach an OTLP collector
and its log lines carry the trace id."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.loopback.emulator import Emulator
from gateway import tracing
from gateway.config import ConfigError, Settings
from gateway.web.app import create_app
from tests.processes import GatewayProcess
from tests.support import GatewayClient, WsClient, loopback_message

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)
    provider.shutdown()


def _by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


def _one(finished: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (found,) = _by_name(finished, name)
    return found


def _parent_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and parent.context is not None
    return child.parent.span_id == parent.context.span_id


async def test_a_command_is_traced_across_two_replicas(
    spans: InMemorySpanExporter,
    aiohttp_client: Callable[..., Any],
    aiohttp_server: Callable[..., Any],
    redis_url: str,
) -> None:
    platform = await aiohttp_server(Emulator().app)
    namespace = f"t{uuid.uuid4().hex[:10]}"

    async def replica() -> GatewayClient:
        settings = Settings(
            redis_url=redis_url,
            redis_namespace=namespace,
            dialects=["loopback"],
            auth="none",
            dialect_settings={"loopback": {"url": str(platform.make_url("")), "poll_wait": "1"}},
        )
        return GatewayClient(await aiohttp_client(create_app(settings)))

    a, b = await replica(), await replica()
    async with a.client.post(
        "/v1/conversations", json={"dialect": "loopback", "participant": {"from": "u1"}}
    ) as response:
        assert response.status == 201
        conversation = (await response.json())["conversation"]
    spans.clear()

    # B does not own the session: it forwards the command to A over Redis.
    async with b.client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": {"kind": "text", "text": "hello"}},
        headers={"traceparent": CALLER},
    ) as response:
        assert response.status == 200, await response.text()

    finished = spans.get_finished_spans()
    command = _one(finished, "command send")
    forward = _one(finished, "command.forward")
    serve = _one(finished, "command.serve")
    vendor = [s for s in finished if s.name.startswith("vendor ") and s.parent is not None]
    vendor = [s for s in vendor if _parent_of(s, serve)]
    assert vendor, [s.name for s in finished]
    # One trace, the caller's, from B's entry to A's vendor request.
    for span in (command, forward, serve, *vendor):
        assert span.context is not None
        assert format(span.context.trace_id, "032x") == TRACE_ID, span.name
    assert command.parent is not None and command.parent.span_id == 0x00F067AA0BA902B7
    assert command.parent.is_remote and command.kind is SpanKind.SERVER
    assert _parent_of(forward, command) and forward.kind is SpanKind.CLIENT
    # The hop to A went through Redis, not through this process's context.
    assert _parent_of(serve, forward) and serve.parent is not None and serve.parent.is_remote
    assert serve.kind is SpanKind.SERVER
    assert dict(serve.attributes or {})["gateway.conversation_id"] == conversation
    request = vendor[0]
    assert request.kind is SpanKind.CLIENT
    attributes = dict(request.attributes or {})
    assert attributes["gateway.dialect"] == "loopback" and attributes["http.request.method"]
    assert attributes["http.response.status_code"] < 400
    assert "url.full" not in attributes  # a query may hold credentials: never recorded

    # The same on the WebSocket: the command frame's traceparent.
    spans.clear()
    ws = WsClient(await b.client.ws_connect("/v1/ws"))
    await ws.wait_for(lambda f: f["op"] == "welcome")
    await ws.send("typing", ref="t", conversation=conversation, active=True, traceparent=CALLER)
    assert (await ws.reply("ack", "t"))["op"] == "ack"
    await ws.close()
    finished = spans.get_finished_spans()
    serve = _one(finished, "command.serve")
    assert format(serve.context.trace_id, "032x") == TRACE_ID  # type: ignore[union-attr]
    assert _parent_of(serve, _one(finished, "command.forward"))


async def test_a_webhook_has_decode_and_publish_children(
    spans: InMemorySpanExporter, gateway: GatewayClient, conversation: str
) -> None:
    async with gateway.client.post(
        "/v1/dialects/loopback/events",
        json=loopback_message(conversation, 1),
        headers={"traceparent": CALLER},
    ) as response:
        assert response.status == 202
    async with gateway.client.post("/v1/dialects/loopback/events", data=b"{nope") as response:
        assert response.status == 400
    finished = spans.get_finished_spans()
    accepted, rejected = _by_name(finished, "ingest")
    assert format(accepted.context.trace_id, "032x") == TRACE_ID  # type: ignore[union-attr]
    assert _parent_of(_by_name(finished, "decode")[0], accepted)
    assert _parent_of(_one(finished, "hub.publish"), accepted)
    assert dict(accepted.attributes or {})["gateway.dialect"] == "loopback"
    # A caller's mistake is named on its span but is not the gateway's error.
    assert rejected.parent is None  # no traceparent: a trace of its own
    assert dict(rejected.attributes or {})["error.type"] == "MALFORMED_JSON"
    assert rejected.status.is_unset


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "gw"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_off_unless_the_environment_turns_it_on(environ: dict[str, str], on: bool) -> None:
    assert tracing.wanted(environ) is on


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' is not supported",
        ),
    ],
)
def test_what_cannot_be_given_is_a_configuration_error(
    environ: dict[str, str], message: str
) -> None:
    try:
        with pytest.raises(ConfigError, match=message):
            tracing.configure(environ)
    finally:
        tracing.install(None)


def test_tracing_asked_for_without_the_sdk_stops_the_start() -> None:
    # An environment without the [otel] extra: the opentelemetry packages cannot be imported.
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from gateway.cli import main\n"
        "sys.exit(main(['serve', '--port', '1']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gateway: configuration error: OTEL_*: tracing is turned on but the OpenTelemetry SDK "
        "is not installed (install the [otel] extra: pip install 'chat-dialect-gateway[otel]')"
    ]


@pytest.fixture
async def collector(aiohttp_server: Callable[..., Any]) -> tuple[list[Any], str]:
    """An OTLP/HTTP collector: the spans every export request carried."""
    received: list[Any] = []

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                received.extend((resource, span) for span in scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    server = await aiohttp_server(app)
    return received, str(server.make_url(""))


async def test_spans_reach_an_otlp_collector_and_logs_carry_the_trace_id(
    collector: tuple[list[Any], str], redis_url: str, tmp_path: Path, conversation: str
) -> None:
    received, endpoint = collector
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    log = tmp_path / "gateway.log"
    replica = GatewayProcess(redis_url, env, log, f"t{uuid.uuid4().hex[:10]}")
    await asyncio.to_thread(replica.start)
    try:
        body = json.dumps(loopback_message(conversation, 1)).encode()
        status = await asyncio.to_thread(_post, f"{replica.url}/v1/dialects/loopback/events", body)
        assert status == 202
        async with asyncio.timeout(10):
            while {s.name for _, s in received} < {"ingest", "decode", "hub.publish"}:
                await asyncio.sleep(0.05)
    finally:
        replica.kill()
    resource, ingest = next((r, s) for r, s in received if s.name == "ingest")
    assert resource["service.name"] == "chat-dialect-gateway"
    assert ingest.trace_id.hex() == TRACE_ID
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    (accepted,) = [line for line in lines if line["event"] == "ingest.accepted"]
    assert accepted["trace_id"] == TRACE_ID
    assert all("trace_id" not in line for line in lines if line["event"] == "hub.started")


def _post(url: str, body: bytes) -> int:
    import urllib.request

    request = urllib.request.Request(
        url, data=body, headers={"traceparent": CALLER, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)
