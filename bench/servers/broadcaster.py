"""Starlette + encode/broadcaster 0.3.1 on Redis pub/sub, served by uvicorn (stock asyncio loop).

`WS /ws?channel=C` subscribes the socket through `Broadcast.subscribe(C)` and forwards every
message as a text frame, as broadcaster's own chat example does. Publishers PUBLISH to Redis.

broadcaster 0.3.1 with redis-py 8 delivers nothing as it ships: `RedisBackend.subscribe` sets
its `_ready` event *before* awaiting `pubsub.subscribe`, so the listener task starts
`pubsub.listen()` while redis-py still has no channel; `listen()` returns at once, the listener
clears `_ready` and waits forever. `FixedRedisBackend` below subscribes first and wakes the
listener after (the workaround the issue asks for). `Broadcast.subscribe` has a second race:
two sockets subscribing to a new channel at once both find it empty, and the second one's
`self._subscribers[channel] = {queue}` drops the first; `FixedBroadcast` serialises that step
with a lock (one Redis SUBSCRIBE per channel, as before). Nothing else is changed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from broadcaster import Broadcast
from broadcaster._backends.redis import RedisBackend
from broadcaster._base import Event, Subscriber
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.common import HOST, raise_fd_limit


class FixedRedisBackend(RedisBackend):
    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)  # channel known to redis-py first …
        self._ready.set()  # … then wake the listener, whose listen() now stays


class FixedBroadcast(Broadcast):
    def __init__(self, url: str) -> None:
        super().__init__(backend=FixedRedisBackend(url))
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscriber]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        async with self._lock:
            if not self._subscribers.get(channel):
                self._subscribers[channel] = {queue}
                await self._backend.subscribe(channel)
            else:
                self._subscribers[channel].add(queue)
        try:
            yield Subscriber(queue)
        finally:
            self._subscribers[channel].remove(queue)
            if not self._subscribers.get(channel):
                del self._subscribers[channel]
                await self._backend.unsubscribe(channel)
            await queue.put(None)


def build(redis_url: str) -> Starlette:
    broadcast = FixedBroadcast(redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await broadcast.connect()
        try:
            yield
        finally:
            await broadcast.disconnect()

    async def ws_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        channel = websocket.query_params["channel"]
        try:
            async with broadcast.subscribe(channel=channel) as subscriber:
                await websocket.send_text('{"op":"subscribed"}')
                async for event in subscriber:  # type: ignore[union-attr]
                    await websocket.send_text(event.message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    return Starlette(routes=[WebSocketRoute("/ws", ws_endpoint)], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    args = parser.parse_args()
    raise_fd_limit()
    uvicorn.run(
        build(args.redis), host=HOST, port=args.port, loop="asyncio", ws="websockets",
        log_level="warning", access_log=False, ws_ping_interval=None, backlog=4096,
    )  # fmt: skip


if __name__ == "__main__":
    main()
