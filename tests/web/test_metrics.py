"""`/metrics`: the gateway's own metrics, the standard process and Python collectors, the build,
OpenMetrics when asked; and the Grafana dashboard in deploy/ names only metrics that exist."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from tests.support import GatewayClient

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "gateway.json"
_SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "info": ("_info",),
}


async def _scrape(gateway: GatewayClient, accept: str | None = None) -> tuple[str, str]:
    headers = {"Accept": accept} if accept else {}
    async with gateway.client.get("/metrics", headers=headers) as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


def _series_names(text: str) -> set[str]:
    """Every series name a scrape exposes, samples or not (a labelled family with no child yet
    still has its HELP and TYPE)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SERIES_SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


async def test_standard_collectors_and_build_info(gateway: GatewayClient) -> None:
    content_type, text = await _scrape(gateway)
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    build = (
        "gateway_build_info",
        (("python", platform.python_version()), ("version", __version__)),
    )
    assert samples[build] == 1
    assert samples[("process_resident_memory_bytes", ())] > 1_000_000
    assert samples[("process_open_fds", ())] >= 3
    assert samples[("process_cpu_seconds_total", ())] > 0
    assert any(name == "python_gc_collections_total" for name, _ in samples)
    assert any(name == "python_info" for name, _ in samples)


async def test_openmetrics_when_the_scraper_asks(gateway: GatewayClient) -> None:
    content_type, text = await _scrape(
        gateway, "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    )
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    assert "# TYPE gateway_ingest_frames counter" in text  # OpenMetrics names the family
    assert 'gateway_build_info{python="' in text


async def test_every_metric_the_dashboard_charts_exists(gateway: GatewayClient) -> None:
    _, text = await _scrape(gateway)
    exposed = _series_names(text)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    named = {
        name
        for expr in exprs
        for name in re.findall(r"\b((?:gateway|process|python)_[a-z0-9_]+)\b", expr)
    }
    assert len(exprs) > 25 and len(named) > 20
    assert named - exposed == set()
    # Each panel queries by the replica variable the dashboard defines.
    assert all('instance=~"$instance"' in e for e in exprs if "label_values" not in e)
