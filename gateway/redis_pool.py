"""A Redis connection pool of at most `max_connections`, a caller past them waiting (the
hub's and the session store's, on a single server).

redis-py's `BlockingConnectionPool` gives that contract, but pays for it on every command:
a condition, a timer armed and cancelled, and its observability bookkeeping, about a tenth
of what a webhook costs the gateway. Here the bound is a semaphore taken before the plain
pool's `get_connection` and given back after its `release`: free when a connection is there,
a wait of at most `timeout` seconds when none is (then `ConnectionError`, as redis-py's).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError


class BoundedPool(aioredis.ConnectionPool):
    """`redis.asyncio.ConnectionPool` that waits for a connection instead of refusing."""

    def __init__(self, *, max_connections: int, timeout: float, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise RedisConnectionError("No connection available.") from None
        else:
            await self._slots.acquire()
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
