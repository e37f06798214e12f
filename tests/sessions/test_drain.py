"""SIGTERM during steady traffic: sockets told to go away, nothing acknowledged is lost, the
process exits within its drain time, and another replica holds the sessions at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import redis.asyncio as aioredis

from adapters.loopback.emulator import Emulator
from gateway.sessions.redis_store import lease_key
from tests.processes import GatewayProcess
from tests.support import WsClient, loopback_message

LEASE_TTL = 5.0  # long: a takeover faster than this can only come from the handover


async def test_sigterm_drains_and_hands_over(
    aiohttp_server: Callable[..., Any], redis_url: str, tmp_path: Path
) -> None:
    platform = Emulator()
    server = await aiohttp_server(platform.app)
    env = {
        "GATEWAY_LOOPBACK_URL": str(server.make_url("")),
        "GATEWAY_LOOPBACK_POLL_WAIT": "1",
        "GATEWAY_LEASE_TTL_S": str(LEASE_TTL),
        "GATEWAY_SHUTDOWN_TIMEOUT_S": "5",
    }
    namespace = f"t{uuid.uuid4().hex[:10]}"
    a = GatewayProcess(redis_url, env, tmp_path / "a.log", namespace).start()
    b = GatewayProcess(redis_url, env, tmp_path / "b.log", namespace).start()
    store = aioredis.Redis.from_url(redis_url)
    chat = f"drain-{uuid.uuid4().hex[:8]}"
    acknowledged: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            on_a = WsClient(await http.ws_connect(f"{a.url}/v1/ws"))
            await on_a.wait_for(lambda f: f["op"] == "welcome")
            await on_a.send(
                "start",
                ref="s",
                dialect="loopback",
                participant={"from": f"u-{uuid.uuid4().hex[:8]}"},
            )
            conversation = (await on_a.reply("started", "s"))["conversation"]
            lease = lease_key(conversation, namespace)
            owner_a = await store.get(lease)
            assert owner_a is not None

            stop = asyncio.Event()

            async def traffic() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    body = msgspec.json.encode(loopback_message(chat, n))
                    try:
                        async with http.post(
                            f"{a.url}/v1/dialects/loopback/events", data=body
                        ) as response:
                            if response.status == 202:
                                acknowledged.append(f"loopback:{chat}/m{n}")
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.01)  # A is gone: the sender would retry at B

            sender = asyncio.create_task(traffic())
            await asyncio.sleep(0.5)
            assert a.process is not None
            sent_at = time.monotonic()
            a.process.terminate()
            await until(lambda: on_a.ws.closed, 10)
            assert on_a.ws.close_code == 1001
            taken = None
            while time.monotonic() - sent_at < LEASE_TTL:
                owner = await store.get(lease)
                if owner is not None and owner != owner_a:
                    taken = time.monotonic() - sent_at
                    break
                await asyncio.sleep(0.02)
            assert taken is not None, "no replica took the session over before the lease lapsed"
            code = await asyncio.to_thread(a.process.wait, 10)
            exited = time.monotonic() - sent_at
            stop.set()
            await sender
            assert code == 0
            assert exited < 5 + 3
            assert len(acknowledged) > 5

            async with http.get(
                f"{b.url}/v1/conversations/loopback:{chat}/events", params={"limit": "1000"}
            ) as response:
                log = await response.json()
            stored = [e["id"] for e in log["events"]]
            assert set(acknowledged) <= set(stored)

            # The session lives on at B: commands work and reach the platform.
            on_b = WsClient(await http.ws_connect(f"{b.url}/v1/ws"))
            await on_b.wait_for(lambda f: f["op"] == "welcome")
            await on_b.send(
                "send",
                ref="m",
                conversation=conversation,
                content={"kind": "text", "text": "after the drain"},
            )
            assert (await on_b.reply("ack", "m"))["op"] == "ack"
            native = conversation.split(":", 1)[1]
            assert [r["text"] for r in platform.received(native)] == ["after the drain"]
            await on_b.close()
    finally:
        await store.aclose()
        a.kill()
        b.kill()


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)
