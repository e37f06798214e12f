"""What the failover tests of every replicated topology share (`tests/test_sentinel.py`,
`tests/test_cluster.py`): a gateway on a URL, a sender that retries until acknowledged, and
the check that a vendor session survives a failover without running twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.loopback.emulator import Emulator
from gateway.config import Settings
from gateway.errors import StoreUnavailable
from gateway.hub import create_hub
from gateway.web.app import create_app
from tests.processes import GatewayProcess
from tests.support import GatewayClient, WsClient


async def gateway_on(
    aiohttp_client: Callable[..., Any], url: str, **settings: Any
) -> GatewayClient:
    app = create_app(Settings(redis_url=url, dialects=["loopback"], auth="none", **settings))
    return GatewayClient(await aiohttp_client(app))


async def send(gateway: GatewayClient, conversation: str, numbers: range) -> tuple[list[int], int]:
    """Send each message until a 2xx (a webhook sender's retry); the acknowledged ones and how
    many answers were 503."""
    acknowledged: list[int] = []
    refused = 0
    for n in numbers:
        refused += await gateway.ingest_until_accepted(conversation, n)
        acknowledged.append(n)
        await asyncio.sleep(0.01)
    return acknowledged, refused


async def delivered_once_in_order(ws: WsClient, conv: str, count: int) -> None:
    await ws.wait_events(count, conv, timeout=20)
    await asyncio.sleep(0.2)
    assert [e["seq"] for e in ws.events(conv)] == list(range(1, count + 1))
    assert [e["id"] for e in ws.events(conv)] == [f"{conv}/m{n}" for n in range(1, count + 1)]


async def round_trip(aiohttp_client: Callable[..., Any], url: str, conversation: str) -> None:
    """A gateway on `url` stores three events, delivers them and is ready."""
    gateway = await gateway_on(aiohttp_client, url)
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    await ws.subscribe(conv)
    await send(gateway, conversation, range(1, 4))
    await delivered_once_in_order(ws, conv, 3)
    assert (await gateway.get("/readyz"))[0] == 200
    await ws.close()


async def start_refused(url: str, *hidden: str) -> None:
    """A hub on `url` does not start (`StoreUnavailable`), and its reason shows none of
    `hidden` (passwords)."""
    hub = create_hub(url)
    with pytest.raises(StoreUnavailable) as refused:
        await hub.start()
    assert not any(secret in str(refused.value) for secret in hidden)
    await hub.close()


def text_of(frame: dict[str, Any]) -> str | None:
    """The text of an event frame's message, if it is one."""
    content = frame.get("event", {}).get("content")
    return content.get("text") if isinstance(content, dict) else None


async def sessions_survive_a_failover(
    aiohttp_server: Callable[..., Any],
    url: str,
    tmp_path: Path,
    failover: Callable[[str, str], object],
) -> None:
    """Two replicas share a vendor session's lease; `failover(conversation, namespace)` fails
    the store over under it: the owner keeps the lease (or the other takes it), the platform
    gets each command once and every event is stored once."""
    platform = Emulator()
    server = await aiohttp_server(platform.app)
    env = {
        "GATEWAY_LOOPBACK_URL": str(server.make_url("")),
        "GATEWAY_LOOPBACK_POLL_WAIT": "1",
        "GATEWAY_LOOPBACK_BACKOFF_BASE": "0.05",
        "GATEWAY_LEASE_TTL_S": "1",
    }
    namespace = f"t{uuid.uuid4().hex[:10]}"
    replicas = [
        GatewayProcess(url, env, tmp_path / f"{name}.log", namespace).start() for name in ("a", "b")
    ]
    try:
        async with aiohttp.ClientSession() as http:
            ws = WsClient(await http.ws_connect(f"{replicas[0].url}/v1/ws"))
            await ws.wait_for(lambda f: f["op"] == "welcome")
            await ws.send("start", ref="s", dialect="loopback", participant={"from": "u-1"})
            conversation = (await ws.reply("started", "s"))["conversation"]
            native = conversation.split(":", 1)[1]
            platform.agent_says(native, "before")
            await ws.wait_for(lambda f: text_of(f) == "before")
            await asyncio.to_thread(failover, conversation, namespace)
            platform.agent_says(native, "during")
            for n in range(3):  # a client retries a command the failover refused
                await ws.send(
                    "send",
                    ref=f"m{n}",
                    conversation=conversation,
                    content={"kind": "text", "text": "after"},
                )
                reply = await ws.wait_for(lambda f, n=n: f.get("ref") == f"m{n}", timeout=15)
                if reply["op"] == "ack":
                    break
                await asyncio.sleep(1)
            assert reply["op"] == "ack", reply
            await ws.wait_for(lambda f: text_of(f) == "echo: after", 15)
            texts = [e["content"]["text"] for e in ws.events(conversation) if "content" in e]
            assert texts.count("during") == 1 and texts.count("echo: after") == 1
            received = [r["text"] for r in platform.received(native) if r["type"] == "message"]
            assert received == ["after"]  # sent once, by whichever replica owned the session
            ids = [e["id"] for e in ws.events(conversation)]
            assert len(ids) == len(set(ids))
            await ws.close()
    finally:
        for replica in replicas:
            replica.kill()
