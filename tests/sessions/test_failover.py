"""Two `gateway serve` replicas, one Redis: commands are forwarded to the owner, and when the
owner dies another replica takes its sessions over without losing or repeating an event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.loopback.emulator import Emulator
from tests.processes import GatewayProcess
from tests.support import WsClient


@pytest.fixture(params=["redis", "sentinel"])
def replicas(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], list[GatewayProcess]]]:
    """Start two replicas on one Redis, or on a Sentinel-managed primary."""
    redis_url = str(request.getfixturevalue(f"{request.param}_url"))
    started: list[GatewayProcess] = []

    def start(platform_url: str) -> list[GatewayProcess]:
        env = {
            "GATEWAY_LOOPBACK_URL": platform_url,
            "GATEWAY_LOOPBACK_POLL_WAIT": "1",
            "GATEWAY_LOOPBACK_BACKOFF_BASE": "0.05",
            "GATEWAY_LEASE_TTL_S": "1",
        }
        namespace = f"t{uuid.uuid4().hex[:10]}"
        for name in ("a", "b"):
            log = tmp_path / f"{name}.log"
            started.append(GatewayProcess(redis_url, env, log, namespace).start())
        return started

    yield start
    for replica in started:
        replica.kill()


def messages(ws: WsClient, conversation: str) -> list[tuple[int, str, str]]:
    return [
        (e["seq"], e["sender"]["role"], e["content"]["text"])
        for e in ws.events(conversation)
        if e["type"] == "message"
    ]


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_owner_killed_mid_conversation(
    aiohttp_server: Callable[..., Any], replicas: Callable[[str], list[GatewayProcess]]
) -> None:
    platform = Emulator()
    server = await aiohttp_server(platform.app)
    a, b = replicas(str(server.make_url("")))
    async with aiohttp.ClientSession() as http:
        on_a = WsClient(await http.ws_connect(f"{a.url}/v1/ws"))
        await on_a.wait_for(lambda f: f["op"] == "welcome")
        await on_a.send(
            "start", ref="s", dialect="loopback", participant={"from": f"u-{uuid.uuid4().hex[:8]}"}
        )
        conversation = (await on_a.reply("started", "s"))["conversation"]
        native = conversation.split(":", 1)[1]
        await on_a.send(
            "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "hello"}
        )
        assert (await on_a.reply("ack", "m1"))["op"] == "ack"
        await until(
            lambda: ("agent", "echo: hello") in [m[1:] for m in messages(on_a, conversation)]
        )

        # A command reaching the replica that does not own the session is forwarded to A.
        on_b = WsClient(await http.ws_connect(f"{b.url}/v1/ws"))
        await on_b.wait_for(lambda f: f["op"] == "welcome")
        await on_b.send("typing", ref="t", conversation=conversation, active=True)
        assert (await on_b.reply("ack", "t"))["op"] == "ack"
        await on_b.close()

        last_seq = on_a.events(conversation)[-1]["seq"]
        a.kill()  # SIGKILL: no handover, the lease has to lapse
        platform.agent_says(native, "are you still there?")  # while nobody owns the session

        resumed = WsClient(await http.ws_connect(f"{b.url}/v1/ws"))
        await resumed.wait_for(lambda f: f["op"] == "welcome")
        await resumed.subscribe(conversation, since=last_seq)
        await until(
            lambda: any(m[2] == "are you still there?" for m in messages(resumed, conversation))
        )
        platform.agent_says(native, "hello again")
        await resumed.send(
            "send",
            ref="m2",
            conversation=conversation,
            content={"kind": "text", "text": "after failover"},
        )
        assert (await resumed.reply("ack", "m2", timeout=10))["op"] == "ack"
        await until(
            lambda: (
                ("agent", "echo: after failover")
                in [m[1:] for m in messages(resumed, conversation)]
            )
        )

        seqs = [e["seq"] for e in resumed.events(conversation)]
        assert seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs)))  # no gap, no repeat
        texts = [m[2] for m in messages(resumed, conversation)]
        assert texts == [
            "are you still there?",
            "hello again",
            "after failover",
            "echo: after failover",
        ] or texts == [
            "are you still there?",
            "after failover",
            "hello again",
            "echo: after failover",
        ]
        received = [r["text"] for r in platform.received(native) if r["type"] == "message"]
        assert received == ["hello", "after failover"]
        ids = [e["id"] for e in resumed.events(conversation)]
        assert len(ids) == len(set(ids))
        await resumed.close()
        await on_a.close()
