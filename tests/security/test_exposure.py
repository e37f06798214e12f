"""What an unauthenticated caller can make the gateway keep or tell (issue #23 items 4, 7)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from gateway.adapter import Registry
from tests.support import GatewayClient

INSTALLED = {adapter.name for adapter in Registry.load()} | {"loopback"}


def _series(text: str, metric: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line.startswith(metric + "{")}


async def test_unknown_dialect_names_do_not_grow_metrics_nor_learn_the_loaded_ones(
    make_secure: Any,
) -> None:
    gateway: GatewayClient = await make_secure()
    for n in range(60):
        async with gateway.client.post(f"/v1/dialects/probe{n}/events", data=b"{}") as r:
            assert r.status == 404
            body = await r.json()
    assert body["error"]["code"] == "UNKNOWN_DIALECT"
    assert "loopback" not in body["error"]["message"]
    async with gateway.client.get("/metrics") as r:
        text = await r.text()
    for metric in ("gateway_ingest_requests_total", "gateway_ingest_frames_total"):
        labels = _series(text, metric)
        assert not any("probe" in label for label in labels), labels
        dialects = set(re.findall(r'dialect="([^"]*)"', " ".join(labels)))
        assert dialects <= INSTALLED | {"unknown"}, dialects


async def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(
    make_secure: Any,
) -> None:
    """A client without credentials that trickles a body does not hold a request open."""
    gateway: GatewayClient = await make_secure()

    async def trickle() -> Any:
        yield b"{"
        await asyncio.sleep(5)
        yield b"}"

    started = time.monotonic()
    async with gateway.client.post(
        "/v1/dialects/loopback/events",
        data=trickle(),
        headers={"Content-Type": "application/json"},
    ) as r:
        assert r.status == 401
    assert time.monotonic() - started < 3


async def test_a_body_sent_as_a_form_or_text_is_refused(gateway: GatewayClient) -> None:
    """What a web page may post cross-site without a preflight never becomes an event."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        for path in ("/v1/dialects/loopback/events", "/v1/conversations"):
            async with gateway.client.post(
                path, data=b'{"kind": "message"}', headers={"Content-Type": content_type}
            ) as r:
                assert r.status == 415, (path, content_type, await r.text())
                assert (await r.json())["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
