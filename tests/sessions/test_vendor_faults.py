"""A platform that answers garbage, slowly, or not at all: the connector backs off, reports
`link` events, recovers, loses nothing, and leaks no tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.loopback.emulator import Emulator
from tests.sessions.test_sessions import start, wait_texts
from tests.support import GatewayClient


def gateway_tasks() -> int:
    """Running tasks of the gateway's own code (not the emulator's or the test's)."""
    return sum(
        "/gateway/" in getattr(t.get_coro(), "cr_code", t.get_coro()).co_filename  # type: ignore[union-attr]
        for t in asyncio.all_tasks()
    )


@pytest.fixture
async def touchy_gateway(
    make_gateway: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> GatewayClient:
    _, server = emulator
    return await make_gateway(
        dialect_settings={
            "loopback": {  # type: ignore[no-any-return]
                "url": str(server.make_url("")),
                "poll_wait": "0.2",
                "timeout_s": "0.3",
                "backoff_s": "0.02",
                "backoff_max_s": "0.1",
            }
        }
    )


@pytest.mark.parametrize("fault", ["garbage", "slow", "silent", "error"])
async def test_platform_faults(
    touchy_gateway: GatewayClient, emulator: tuple[Emulator, TestServer], fault: str
) -> None:
    platform, _ = emulator
    ws = await touchy_gateway.ws()
    conversation = await start(ws)
    native = conversation.split(":", 1)[1]
    tasks_before = gateway_tasks()
    platform.misbehave(fault, fault, fault, slow_s=0.8)
    # Speak once the link is down, so no poll already under way carries it before the trouble.
    await ws.wait_for(
        lambda f: (
            f["op"] == "event" and f["event"]["type"] == "link" and f["event"]["state"] == "down"
        ),
        timeout=10,
    )
    platform.agent_says(native, "said during the trouble")
    restored = await ws.wait_for(
        lambda f: (
            f["op"] == "event"
            and f["event"]["type"] == "link"
            and f["event"]["state"] == "restored"
        ),
        timeout=10,
    )
    links = [e["state"] for e in ws.events(conversation) if e["type"] == "link"]
    assert links[0] == "down" and links.count("retrying") == 3 and links[-1] == "restored"
    assert restored["event"]["missed"] >= 1
    assert ("agent", "said during the trouble") in await wait_texts(ws, conversation, 1)
    await ws.send(
        "send",
        ref="after",
        conversation=conversation,
        content={"kind": "text", "text": "all good?"},
    )
    assert (await ws.reply("ack", "after"))["op"] == "ack"
    assert ("agent", "echo: all good?") in await wait_texts(ws, conversation, 3)
    ids = [e["id"] for e in ws.events(conversation)]
    assert len(ids) == len(set(ids))
    await asyncio.sleep(0.1)
    assert gateway_tasks() <= tasks_before  # no task left behind by the retries
    await ws.close()
