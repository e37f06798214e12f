"""A pub/sub link that stays open but hears nothing (Centrifugo's issue #1189) is remade.

A loopback proxy in front of a real Redis forwards everything, until told to silence: from
then on the subscriber connections it carries at that moment get no byte from Redis, while the
other connections (the hub's writes and heartbeats) and any new one work on. A link left like that on a demoted
primary or behind a half-dead middlebox looks exactly so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from gateway.hub.redis import RedisHub
from tests.hub.events import Collect, message
from tests.redis_server import free_port

pytestmark = pytest.mark.slow


class SilencingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._subscribers: list[asyncio.Event] = []  # set: that connection went deaf
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        subscriber = False
        deaf = asyncio.Event()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
            nonlocal subscriber
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if not down and not subscriber and b"SUBSCRIBE" in data.upper():
                        subscriber = True
                        self._subscribers.append(deaf)
                    if down and deaf.is_set():
                        continue  # deaf: the bytes are dropped, the connection stays open
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (pump(reader, up_writer, False), pump(up_reader, writer, True)):
            self._tasks.add(asyncio.create_task(task))

    def silence(self) -> None:
        """Make every subscriber connection open now deaf, for good."""
        for deaf in self._subscribers:
            deaf.set()

    async def close(self) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[SilencingProxy]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    silencing = SilencingProxy(port)
    await silencing.start()
    yield silencing
    await silencing.close()


async def test_a_deaf_link_is_remade_and_its_subscribers_catch_up(
    proxy: SilencingProxy, conversation: str
) -> None:
    hub = RedisHub(f"redis://127.0.0.1:{proxy.port}/0", namespace="deaf")
    await hub.start()
    try:
        sink = Collect()
        subscription = await hub.subscribe(conversation, sink)
        subscription.start()
        await hub.publish([message(conversation, 1)])
        assert await sink.until(1, conversation) == [1]
        proxy.silence()  # the link hears nothing from now on, and does not break
        await hub.publish([message(conversation, 2), message(conversation, 3)])
        await asyncio.sleep(0.5)
        assert sink.seqs(conversation) == [1] and hub.reconnects == 0  # deaf, for now
        async with asyncio.timeout(10):
            while sink.seqs(conversation) != [1, 2, 3]:
                await asyncio.sleep(0.05)
        assert hub.reconnects >= 1
        subscription.close()
    finally:
        await hub.close()
