"""A Sentinel-managed primary failing over while traffic flows (real sentinels, item 1 of #26).

A primary, its replica and three `redis-server --sentinel` on loopback; the gateway takes the
`redis+sentinel://…/<master>/<db>` URL. A failover (ordered with `SENTINEL FAILOVER`, or the
primary killed) must lose no acknowledged event, deliver none twice, leave no subscriber deaf,
and make the gateway unready (503) only while there is no primary to write to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.hub.redis import stream_keys
from gateway.web.app import HUB
from tests.failover import (
    delivered_once_in_order,
    gateway_on,
    round_trip,
    send,
    sessions_survive_a_failover,
    start_refused,
)
from tests.redis_topology import SentinelSet
from tests.support import loopback_message

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    topology = SentinelSet()
    try:
        yield topology
    finally:
        topology.close()


async def _on_primary(sentinels: SentinelSet, conv: str) -> int:
    """How many events the current primary's log of `conv` holds (read from it directly)."""
    client = aioredis.Redis(port=sentinels.primary_port())
    try:
        return int(await client.xlen(stream_keys(conv)[2]))
    finally:
        await client.aclose()


async def test_ordered_failover_with_wait_loses_nothing(
    aiohttp_client: Callable[..., Any], sentinels: SentinelSet, conversation: str
) -> None:
    """`SENTINEL FAILOVER` mid-stream, with every batch confirmed by a replica (`WAIT`)."""
    gateway = await gateway_on(aiohttp_client, sentinels.url, redis_min_replicas_ack=1)
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    firehose = await gateway.ws()
    await firehose.subscribe("loopback:*")
    sending = asyncio.create_task(send(gateway, conversation, range(1, 61)))
    await ws.wait_events(15, conv)
    old = sentinels.primary_port()
    await asyncio.to_thread(sentinels.failover)
    assert sentinels.primary_port() != old
    async with asyncio.timeout(30):
        acknowledged, _ = await sending
    assert acknowledged == list(range(1, 61))
    await delivered_once_in_order(ws, conv, 60)
    await delivered_once_in_order(firehose, conv, 60)
    assert await _on_primary(sentinels, conv) == 60  # the writes went to the new primary
    assert (await gateway.get("/readyz"))[0] == 200
    # The new primary's publishes reach this replica's link: a fresh event arrives live.
    await send(gateway, conversation, range(61, 62))
    await ws.wait_events(61, conv)
    assert gateway.client.app[HUB].reconnects >= 1  # the link moved, and re-read the cursors
    await ws.close()
    await firehose.close()


async def test_primary_killed_unready_until_promoted_then_resumes(
    aiohttp_client: Callable[..., Any], sentinels: SentinelSet, conversation: str
) -> None:
    """The primary dies (SIGKILL): /readyz and ingest answer 503 until the sentinels promote
    the replica; then writes land there and subscribers resume by themselves."""
    gateway = await gateway_on(aiohttp_client, sentinels.url)
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    sending = asyncio.create_task(send(gateway, conversation, range(1, 41)))
    await ws.wait_events(10, conv)
    old = sentinels.primary_port()
    dead = sentinels.primary if old == sentinels.primary.port else sentinels.replica
    dead.kill()
    async with asyncio.timeout(10):
        while (await gateway.get("/readyz"))[0] != 503:
            await asyncio.sleep(0.05)
    async with asyncio.timeout(30):
        acknowledged, refused = await sending
    assert refused > 0 and acknowledged == list(range(1, 41))
    assert sentinels.primary_port() != old
    # Asynchronous replication may lose what the dead primary had not passed on; every event
    # acknowledged after the promotion is in the new primary's log, and the subscriber saw
    # each stored event once, in order.
    events = await ws.wait_events(await _on_primary(sentinels, conv), conv, timeout=20)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    assert events[-1]["id"] == f"{conv}/m40"
    assert (await gateway.get("/readyz"))[0] == 200
    dead.start()  # back as a replica of the new primary (the sentinels reconfigure it)
    await ws.close()


async def test_sessions_survive_a_failover_without_running_twice(
    aiohttp_server: Callable[..., Any], sentinels: SentinelSet, tmp_path: Path
) -> None:
    """Two replicas share a vendor session's lease through the primary; a failover moves the
    lease keys with the data: the owner keeps it (or one other takes it), the platform gets
    each command once and every event is stored once."""
    await sessions_survive_a_failover(
        aiohttp_server,
        sentinels.url,
        tmp_path,
        lambda conversation, namespace: sentinels.failover(),
    )


async def test_wait_without_enough_replicas_answers_503_and_shows_nothing(
    aiohttp_client: Callable[..., Any], redis_url: str, conversation: str
) -> None:
    """`redis_min_replicas_ack` on a Redis with no replica: every batch is stored but never
    confirmed, so the sender gets 503 (safe to retry: the retry is a duplicate) and no
    subscriber is shown an event a failover could lose."""
    gateway = await gateway_on(
        aiohttp_client, redis_url, redis_min_replicas_ack=1, redis_ack_timeout_s=0.1
    )
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    for _ in range(2):
        status, body = await gateway.ingest("loopback", loopback_message(conversation, 1))
        assert status == 503 and body["error"]["code"] == "STORE_UNAVAILABLE", body
        assert "0 of 1 replicas confirmed" in body["error"]["message"]
    _, log = await gateway.get(f"/v1/conversations/{conv}/events")
    assert [e["id"] for e in log["events"]] == [f"{conv}/m1"]  # stored once
    await asyncio.sleep(0.3)
    assert ws.events(conv) == []
    assert (await gateway.get("/readyz"))[0] == 200
    await ws.close()


async def test_master_and_sentinel_auth(
    aiohttp_client: Callable[..., Any], conversation: str
) -> None:
    """`user:pass@` authenticates to the data nodes, `?sentinel_password=` to the sentinels;
    a wrong one stops the start with the reason, without the password."""
    topology = await asyncio.to_thread(SentinelSet, "data-secret", "sentinel-secret")
    try:
        assert (
            ":data-secret@" in topology.url and "sentinel_password=sentinel-secret" in topology.url
        )
        await round_trip(aiohttp_client, topology.url, conversation)
        for wrong in (
            topology.url.replace("data-secret", "nope"),
            topology.url.replace("sentinel-secret", "nope"),
        ):
            await start_refused(wrong, "nope", "secret")
    finally:
        await asyncio.to_thread(topology.close)


async def test_tls_to_the_data_nodes(aiohttp_client: Callable[..., Any], conversation: str) -> None:
    """`rediss+sentinel://…?ssl_ca_certs=` speaks TLS to TLS-only data nodes (trusting that
    CA); the plain form cannot reach them and says so at start."""
    topology = await asyncio.to_thread(SentinelSet, tls=True)
    try:
        await round_trip(aiohttp_client, topology.url, conversation)
        plain = topology.url.replace("rediss+sentinel", "redis+sentinel").split("?")[0]
        await start_refused(plain)
    finally:
        await asyncio.to_thread(topology.close)
