"""Prometheus metrics (served at `/metrics`). Names are `gateway_<noun>_<unit>`.

Counters are updated where things happen, never per delivered frame on the fan-out hot path:
deliveries are counted per fan-out batch. Values that live elsewhere (hub reconnects, queue
depths) are read at scrape time from providers the app registers (`add_provider`).

Beside the gateway's own, the registry carries prometheus_client's standard collectors:
`process_*` (resident memory, open fds, CPU seconds, start time), `python_gc_*` and
`python_info`; and `gateway_build_info{version,python}` is 1 for the running build.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from typing import NamedTuple

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway import __version__

disable_created_metrics()  # type: ignore[no-untyped-call]  # the _created series double every counter for no use here
REGISTRY = CollectorRegistry(auto_describe=True)
# The same collector objects prometheus_client registers in its default registry: they read the
# process (/proc where there is one) and the interpreter at scrape time.
for _standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_standard)

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

INGEST_FRAMES = Counter(
    "gateway_ingest_frames_total",
    "Native frames ingested, by dialect and outcome (accepted|duplicate|ignored|rejected).",
    ["dialect", "outcome"],
    registry=REGISTRY,
)
CONNECTOR_FRAMES_REJECTED = Counter(
    "gateway_connector_frames_rejected_total",
    "Native frames a connector received that did not decode: each became an `error` event, "
    "the good frames of its batch were published.",
    ["dialect"],
    registry=REGISTRY,
)
INGEST_REQUESTS = Counter(
    "gateway_ingest_requests_total",
    "Ingest requests, by dialect and HTTP status.",
    ["dialect", "status"],
    registry=REGISTRY,
)
DECODE_SECONDS = Histogram(
    "gateway_decode_seconds",
    "Time to decode one ingest body.",
    ["dialect"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
PUBLISH_SECONDS = Histogram(
    "gateway_hub_publish_seconds",
    "Time to publish one batch to the hub (one round trip).",
    buckets=_LATENCY,
    registry=REGISTRY,
)
WS_CONNECTIONS = Gauge(
    "gateway_ws_connections", "Open unified WebSocket connections.", registry=REGISTRY
)
WS_SUBSCRIPTIONS = Gauge(
    "gateway_ws_subscriptions", "Active subscriptions over all sockets.", registry=REGISTRY
)
WS_EVICTIONS = Counter(
    "gateway_ws_evictions_total",
    "Sockets closed because their send queue overflowed.",
    registry=REGISTRY,
)
WS_COMMANDS = Counter(
    "gateway_ws_frames_total",
    "Client frames received on the unified WebSocket, by op and outcome.",
    ["op", "outcome"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests, by route and status.",
    ["route", "status"],
    registry=REGISTRY,
)


VENDOR_REQUEST_SECONDS = Histogram(
    "gateway_vendor_request_seconds",
    "Requests to the vendor platforms, by dialect and method.",
    ["dialect", "method"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
VENDOR_REQUEST_ERRORS = Counter(
    "gateway_vendor_request_errors_total",
    "Vendor requests that failed, by dialect and kind (HTTP status class or exception).",
    ["dialect", "kind"],
    registry=REGISTRY,
)


BUILD_INFO = Gauge(
    "gateway_build_info",
    "Always 1: the gateway's version and the Python it runs on, as labels.",
    ["version", "python"],
    registry=REGISTRY,
)
BUILD_INFO.labels(__version__, platform.python_version()).set(1)


class Sample(NamedTuple):
    """One value a provider reports at scrape time."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()
    kind: str = "gauge"  # or "counter"
    help: str = ""


_providers: list[Callable[[], list[Sample]]] = []


def add_provider(read: Callable[[], list[Sample]]) -> None:
    """Have `read()` scraped as `gateway_<name>` metrics while the app runs."""
    _providers.append(read)


def remove_provider(read: Callable[[], list[Sample]]) -> None:
    if read in _providers:
        _providers.remove(read)


class _Provided(Collector):
    """Values read at scrape time from the running apps (hub, sessions, queues), summed over
    apps (tests run several in one process)."""

    def collect(self) -> Iterator[Metric]:
        totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        meta: dict[str, Sample] = {}
        for read in _providers:
            for sample in read():
                key = (sample.name, sample.labels)
                totals[key] = totals.get(key, 0.0) + sample.value
                meta.setdefault(sample.name, sample)
        for name, sample in sorted(meta.items()):
            label_names = [k for k, _ in sample.labels]
            family: GaugeMetricFamily | CounterMetricFamily
            if sample.kind == "counter":
                family = CounterMetricFamily(
                    f"gateway_{name}", sample.help or name, labels=label_names
                )
            else:
                family = GaugeMetricFamily(
                    f"gateway_{name}", sample.help or name, labels=label_names
                )
            for (n, labels), value in sorted(totals.items()):
                if n == name:
                    family.add_metric([v for _, v in labels], value)
            yield family


REGISTRY.register(_Provided())
