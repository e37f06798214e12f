"""A Redis Cluster losing a shard's primary, or moving a slot, while traffic flows (item 2 of #26).

Three primaries with a replica each, on loopback; the gateway takes the
`redis+cluster://host:port,host:port` URL. A failover inside the cluster (ordered with
`CLUSTER FAILOVER` on the replica, or the primary killed) and a slot migration must lose no
event acknowledged with `WAIT`, deliver none twice, leave no subscriber deaf (each resumes by
itself from its cursor) and move leases without running a vendor session twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.hub.redis import stream_keys
from gateway.redis_slots import slot
from gateway.sessions.redis_store import lease_key
from gateway.web.app import HUB
from tests.failover import (
    delivered_once_in_order,
    gateway_on,
    round_trip,
    send,
    sessions_survive_a_failover,
    start_refused,
)
from tests.redis_topology import ClusterSet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSet]:
    topology = ClusterSet()
    try:
        yield topology
    finally:
        topology.close()


def _slot_of(conv: str) -> int:
    return slot(stream_keys(conv)[0])


async def test_ordered_failover_with_wait_loses_nothing(
    aiohttp_client: Callable[..., Any], cluster: ClusterSet, conversation: str
) -> None:
    """`CLUSTER FAILOVER` of the conversation's shard mid-stream, every batch confirmed by a
    replica (`WAIT`): all acknowledged, each delivered once in order, to the conversation's
    subscriber and to a pattern's (the firehose of the slot moves with it)."""
    # A batch WAIT gave up on is stored unpublished, and its retry is a duplicate: the pattern,
    # live-only, would never see it (the conversation's subscriber repairs the gap). So a long
    # WAIT here, on a machine shared with other work.
    gateway = await gateway_on(
        aiohttp_client, cluster.url, redis_min_replicas_ack=1, redis_ack_timeout_s=5
    )
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    firehose = await gateway.ws()
    await firehose.subscribe("loopback:*")
    sending = asyncio.create_task(send(gateway, conversation, range(1, 61)))
    await ws.wait_events(15, conv)
    old = cluster.owner(_slot_of(conv))
    new = await asyncio.to_thread(cluster.failover, _slot_of(conv))
    assert new != old
    async with asyncio.timeout(30):
        acknowledged, _ = await sending
    assert acknowledged == list(range(1, 61))
    await delivered_once_in_order(ws, conv, 60)
    await delivered_once_in_order(firehose, conv, 60)
    assert gateway.client.app[HUB].reconnects >= 1  # the shard link moved, cursors re-read
    assert (await gateway.get("/readyz"))[0] == 200
    await ws.close()
    await firehose.close()


async def test_shard_primary_killed_with_wait_loses_no_acknowledged_event(
    aiohttp_client: Callable[..., Any], cluster: ClusterSet, conversation: str
) -> None:
    """The shard's primary dies (SIGKILL) mid-stream: ingest answers 503 until its replica
    takes over (and, with `WAIT` 1, until the dead node is back as the new primary's replica);
    every acknowledged event is then delivered once, in order, the subscriber resuming by
    itself."""
    gateway = await gateway_on(
        aiohttp_client, cluster.url, redis_min_replicas_ack=1, redis_ack_timeout_s=0.3
    )
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    sending = asyncio.create_task(send(gateway, conversation, range(1, 41)))
    await ws.wait_events(10, conv)
    dead = cluster.node(cluster.owner(_slot_of(conv)))
    dead.kill()
    async with asyncio.timeout(10):
        while (await gateway.get("/readyz"))[0] != 503:
            await asyncio.sleep(0.05)
    await asyncio.to_thread(cluster.wait_promoted, _slot_of(conv), dead.port)
    dead.start()  # back, as a replica of the new primary: WAIT can be met again
    async with asyncio.timeout(60):
        acknowledged, refused = await sending
    assert refused > 0 and acknowledged == list(range(1, 41))
    await delivered_once_in_order(ws, conv, 40)
    assert (await gateway.get("/readyz"))[0] == 200
    await ws.close()


async def test_slot_migration_mid_stream(
    aiohttp_client: Callable[..., Any], cluster: ClusterSet, conversation: str
) -> None:
    """The conversation's slot moves to another primary (its keys MIGRATEd) mid-stream: the old
    node drops the shard subscription (`sunsubscribe`), the link is made again on the new
    owner, and the subscriber gets every event once, in order."""
    gateway = await gateway_on(aiohttp_client, cluster.url)
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    sending = asyncio.create_task(send(gateway, conversation, range(1, 41)))
    await ws.wait_events(10, conv)
    here = cluster.owner(_slot_of(conv))
    there = next(port for port in cluster.primaries() if port != here)
    await asyncio.to_thread(cluster.migrate, _slot_of(conv), there)
    async with asyncio.timeout(30):
        acknowledged, _ = await sending
    assert acknowledged == list(range(1, 41))
    await delivered_once_in_order(ws, conv, 40)
    await send(gateway, conversation, range(41, 42))  # and live on the new owner
    await ws.wait_events(41, conv)
    await ws.close()


async def test_sessions_survive_a_shard_failover_without_running_twice(
    aiohttp_server: Callable[..., Any], cluster: ClusterSet, tmp_path: Path
) -> None:
    """Two replicas share a vendor session's lease; the shard holding the lease (and the
    record) fails over: the owner keeps it (or the other takes it), the platform gets each
    command once and every event is stored once."""
    await sessions_survive_a_failover(
        aiohttp_server,
        cluster.url,
        tmp_path,
        lambda conversation, namespace: cluster.failover(slot(lease_key(conversation, namespace))),
    )


async def test_node_auth_in_the_url(aiohttp_client: Callable[..., Any], conversation: str) -> None:
    """`redis+cluster://:pass@host:port,host:port` authenticates to every node (those the
    gateway learns from the slot map too); a wrong password stops the start with the reason,
    without the password."""
    topology = await asyncio.to_thread(ClusterSet, password="node-secret")
    try:
        assert topology.url.startswith("redis+cluster://:node-secret@127.0.0.1:")
        await round_trip(aiohttp_client, topology.url, conversation)
        await start_refused(topology.url.replace("node-secret", "nope"), "nope", "secret")
    finally:
        await asyncio.to_thread(topology.close)


async def test_tls_to_every_node(aiohttp_client: Callable[..., Any], conversation: str) -> None:
    """`rediss+cluster://…?ssl_ca_certs=` speaks TLS to TLS-only nodes (trusting that CA), the
    shard links included; the plain form cannot reach them and says so at start."""
    topology = await asyncio.to_thread(ClusterSet, tls=True)
    try:
        await round_trip(aiohttp_client, topology.url, conversation)
        await start_refused(topology.url.replace("rediss+", "redis+").split("?")[0])
    finally:
        await asyncio.to_thread(topology.close)
