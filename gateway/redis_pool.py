"""A Redis connection pool of at most `max_connections`, a caller past them waiting (the
hub's and the session store's, on a single server), and a Cluster client that waits likewise.

redis-py's `BlockingConnectionPool` gives that contract, but pays for it on every command:
a condition, a timer armed and cancelled, and its observability bookkeeping, about a tenth
of what a webhook costs the gateway. Here the bound is a semaphore taken before the plain
pool's `get_connection` and given back after its `release`: free when a connection is there,
a wait of at most `timeout` seconds when none is (then `ConnectionError`, as redis-py's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError


async def _take(slots: asyncio.Semaphore, wait_s: float) -> None:
    """One of `slots`, waiting at most `wait_s` seconds (then `ConnectionError`)."""
    if slots.locked():
        try:
            async with asyncio.timeout(wait_s):
                await slots.acquire()
        except TimeoutError:
            raise RedisConnectionError("No connection available.") from None
    else:
        await slots.acquire()


class BoundedPool(aioredis.ConnectionPool):
    """`redis.asyncio.ConnectionPool` that waits for a connection instead of refusing."""

    def __init__(self, *, max_connections: int, timeout: float, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        await _take(self._slots, self.timeout)
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: aioredis.connection.AbstractConnection) -> None:
        try:
            await super().release(connection)
        finally:
            self._slots.release()


SPARE = 4
"""Connections to a node beyond the turns: the client's own topology reads use the same pool."""


class BoundedCluster(RedisCluster):
    """`RedisCluster` whose commands and pipelines wait for a turn (at most `max_connections`
    at once, so at most that many connections to any node) instead of being refused when a
    node's connections are all in use (redis-py's cluster nodes refuse: `MaxConnectionsError`)."""

    def __init__(self, *, max_connections: int, timeout: float, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections + SPARE, **kwargs)
        self.timeout = timeout
        self._turns = asyncio.Semaphore(max_connections)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        await _take(self._turns, self.timeout)
        try:
            yield
        finally:
            self._turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused as redis-py does
        return _BoundedPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py's


class _BoundedPipeline(ClusterPipeline):
    """A pipeline of a `BoundedCluster`: sent in one turn."""

    async def execute(self, *args: Any, **kwargs: Any) -> list[Any]:
        cluster = self.cluster_client
        assert isinstance(cluster, BoundedCluster)
        async with cluster.turn():
            return await super().execute(*args, **kwargs)
