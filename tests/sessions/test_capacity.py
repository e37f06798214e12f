"""Many vendor sessions on one replica: more than one shared client connector ever held.

Issue 24: one `aiohttp.ClientSession` with the default connector (100 connections) carried
every connector's traffic, so the 101st WebSocket session waited for a slot that no session
gives back, and long polls queued behind each other. These tests start more sessions than that
on a WebSocket dialect (wonderful) and on the long-poll dialect (server_events, short holds),
against their real emulators, and prove that every one starts and every agent reply arrives.
They count outcomes, never time them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from adapters.server_events.emulator import Emulator as ServerEventsEmulator
from adapters.wonderful.emulator import Emulator as WonderfulEmulator
from tests.support import GatewayClient, WsClient

SESSIONS = 150
"""More than the 100 connections the one shared client connector held."""
WAIT = 60.0
"""Generous: a loaded CI machine runs this; the outcome is what is asserted."""


@pytest.fixture
def hub_url(redis_url: str) -> str:
    """The Redis engine alone (as replicas run): the memory engine adds nothing here."""
    return redis_url


async def _wonderful(aiohttp_server: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    server = await aiohttp_server(WonderfulEmulator(api_keys=("test-key",)).app)
    return str(server.make_url("")), {
        "api_key": "test-key",
        "agent_id": "agent-uuid",
        "backoff_s": "0",
        "timeout_s": "20",
    }


async def _server_events(aiohttp_server: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    platform = ServerEventsEmulator(app_id="test-app", poll_hold=1.0, agent_delay=0)
    server = await aiohttp_server(platform.app)
    return str(server.make_url("")), {"app_id": "test-app", "backoff_s": "0.05"}


PLATFORMS = {"wonderful": _wonderful, "server_events": _server_events}


async def start_many(ws: WsClient, dialect: str, count: int) -> list[dict[str, Any]]:
    """Send `count` starts at once; every answer (started or error), by ref."""
    tag = uuid.uuid4().hex[:8]
    refs = [f"{tag}-{i}" for i in range(count)]
    for ref in refs:
        participant = {"from": f"cap-{ref}@example.com", "from_type": "email"}
        await ws.send("start", ref=ref, dialect=dialect, participant=participant)
    return list(await asyncio.gather(*(ws.reply("started", ref, timeout=WAIT) for ref in refs)))


@pytest.mark.parametrize("dialect", sorted(PLATFORMS))
async def test_more_sessions_than_one_connector_held_all_start_and_get_replies(
    dialect: str, make_gateway: Callable[..., Any], aiohttp_server: Callable[..., Any]
) -> None:
    url, options = await PLATFORMS[dialect](aiohttp_server)
    gateway: GatewayClient = await make_gateway(
        dialects=[dialect],
        dialect_settings={dialect: {"url": url, **options}},
        max_subscriptions=SESSIONS,
        # one socket sends every start and every message: no rate limit is under test here
        ws_rate=10_000.0,
        ws_burst=10_000.0,
    )
    ws = await gateway.ws()
    try:
        answers = await start_many(ws, dialect, SESSIONS)
        assert [a for a in answers if a["op"] != "started"] == []
        conversations = [a["conversation"] for a in answers]
        assert len(set(conversations)) == SESSIONS
        for i, conversation in enumerate(conversations):
            await ws.send(
                "send",
                ref=f"say-{i}",
                conversation=conversation,
                content={"kind": "text", "text": f"n{i}"},
            )
        acks = await asyncio.gather(
            *(ws.reply("ack", f"say-{i}", timeout=WAIT) for i in range(SESSIONS))
        )
        assert [a for a in acks if a["op"] != "ack"] == []
        for i, conversation in enumerate(conversations):
            await ws.wait_for(
                lambda f, c=conversation, i=i: (
                    f["op"] == "event"
                    and f["event"]["conversation_id"] == c
                    and f["event"]["type"] == "message"
                    and f["event"]["content"].get("text") == f"echo: n{i}"
                ),
                timeout=WAIT,
            )
    finally:
        await ws.close()
