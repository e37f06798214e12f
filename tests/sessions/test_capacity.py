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
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from adapters.loopback.emulator import Emulator
from adapters.server_events.emulator import Emulator as ServerEventsEmulator
from adapters.wonderful.emulator import Emulator as WonderfulEmulator
from gateway.config import Settings
from gateway.sessions.redis_store import RedisStore, lease_key
from gateway.web.app import create_app
from gateway.web.keys import SESSIONS
from tests.redis_server import RedisServer
from tests.support import GatewayClient, WsClient, metric, scrape

MANY = 150
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
        max_subscriptions=MANY,
        # one socket sends every start and every message: no rate limit is under test here
        ws_rate=10_000.0,
        ws_burst=10_000.0,
    )
    ws = await gateway.ws()
    try:
        answers = await start_many(ws, dialect, MANY)
        assert [a for a in answers if a["op"] != "started"] == []
        conversations = [a["conversation"] for a in answers]
        assert len(set(conversations)) == MANY
        for i, conversation in enumerate(conversations):
            await ws.send(
                "send",
                ref=f"say-{i}",
                conversation=conversation,
                content={"kind": "text", "text": f"n{i}"},
            )
        acks = await asyncio.gather(
            *(ws.reply("ack", f"say-{i}", timeout=WAIT) for i in range(MANY))
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


# -- the explicit limits (loopback platform) -----------------------------------------------


def loopback(server: TestServer, **settings: Any) -> dict[str, Any]:
    return {
        "dialects": ["loopback"],
        "dialect_settings": {
            "loopback": {"url": str(server.make_url("")), "poll_wait": "1", "backoff_s": "0.02"}
        },
        **settings,
    }


async def test_past_max_sessions_a_start_is_refused_at_once_and_nothing_starts(
    make_gateway: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> None:
    platform, server = emulator
    gateway: GatewayClient = await make_gateway(**loopback(server, max_sessions=2))
    ws = await gateway.ws()
    before = await scrape(gateway)
    answers = await start_many(ws, "loopback", 3)
    assert sorted(a["op"] for a in answers) == ["error", "started", "started"]
    (refused,) = [a for a in answers if a["op"] == "error"]
    assert refused["code"] == "CAPACITY"
    assert refused["recoverable"] is True
    assert refused["limit"] == 2
    assert len(platform.chats) == 2  # the refused start never reached the platform
    after = await scrape(gateway)
    assert metric(after, "gateway_sessions_max") == 2
    assert metric(after, "gateway_sessions_load") == 1.0
    refusals = 'gateway_sessions_refused_total{reason="capacity"}'
    assert metric(after, refusals) == metric(before, refusals) + 1
    # the dialect's pools: held sized by max_sessions, requests by the default
    limit = 'gateway_vendor_connections_limit{dialect="loopback",pool='
    assert metric(after, limit + '"held"}') == 2
    assert metric(after, limit + '"requests"}') == 100

    # a session that ends makes room again
    conversation = next(a["conversation"] for a in answers if a["op"] == "started")
    await ws.send("end", ref="end", conversation=conversation)
    assert (await ws.reply("ack", "end"))["op"] == "ack"
    async with asyncio.timeout(WAIT):
        while metric(await scrape(gateway), "gateway_sessions_load") != 0.5:
            await asyncio.sleep(0.05)
    (again,) = await start_many(ws, "loopback", 1)
    assert again["op"] == "started", again
    await ws.close()


async def test_a_start_past_its_deadline_is_answered_and_leaves_no_session(
    make_gateway: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> None:
    """A platform that does not answer the start: the start and the one waiting for its turn
    behind it both get TIMEOUT within `command_timeout_s`; once it answers again, starts work
    (nothing stayed stuck)."""
    platform, server = emulator
    platform.create_delay_s = 3600
    gateway: GatewayClient = await make_gateway(
        **loopback(server, command_timeout_s=0.5, max_starting=1)
    )
    ws = await gateway.ws()
    answers = await start_many(ws, "loopback", 2)
    assert [(a["op"], a["code"], a["recoverable"]) for a in answers] == [
        ("error", "TIMEOUT", True)
    ] * 2
    assert gateway.client.app[SESSIONS].owned == {}
    assert gateway.client.app[SESSIONS].admission.starting == 0
    platform.create_delay_s = 0
    (started,) = await start_many(ws, "loopback", 1)
    assert started["op"] == "started", started
    await ws.close()


async def test_starts_past_a_sockets_subscription_limit_open_no_vendor_session(
    make_gateway: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> None:
    """A start subscribes its caller: a socket at `max_subscriptions` is refused before the
    platform is asked, so live vendor sessions are exactly the ones clients were told of."""
    platform, server = emulator
    gateway: GatewayClient = await make_gateway(**loopback(server, max_subscriptions=3))
    ws = await gateway.ws()
    answers = await start_many(ws, "loopback", 5)
    started = [a for a in answers if a["op"] == "started"]
    refused = [a for a in answers if a["op"] == "error"]
    assert len(started) == 3
    assert {a["code"] for a in refused} == {"LIMIT_EXCEEDED"}
    assert len(refused) == 2
    assert len(platform.chats) == 3
    assert len(gateway.client.app[SESSIONS].owned) == 3
    await ws.close()


async def test_a_start_that_fails_after_the_platform_opened_it_ends_it_there(
    aiohttp_client: Callable[..., Any],
    redis_factory: Callable[[], RedisServer],
    emulator: tuple[Emulator, TestServer],
) -> None:
    """The store goes away while the platform is opening the session: the start is answered
    with the store's error, and the session it opened is ended at the platform, so no vendor
    session runs that no client was told of."""
    platform, server = emulator
    redis = redis_factory()
    settings = Settings(redis_url=redis.url, auth="none", **loopback(server))
    gateway = GatewayClient(await aiohttp_client(create_app(settings)))
    ws = await gateway.ws()
    platform.create_delay_s = 1.0
    # no `ref`: a ref is looked up in the store before anything opens
    await ws.send("start", dialect="loopback", participant={"from": "+15550100"})
    await asyncio.sleep(0.3)  # the start is at the platform, which answers after its delay
    redis.kill()
    answer = await ws.reply("started", timeout=WAIT)
    assert answer["op"] == "error", answer
    assert answer["code"] == "STORE_UNAVAILABLE"
    (chat,) = platform.chats.values()
    async with asyncio.timeout(WAIT):
        while not chat.ended:
            await asyncio.sleep(0.01)
    assert gateway.client.app[SESSIONS].owned == {}


async def test_a_create_that_finishes_after_the_deadline_is_ended_at_once(
    make_gateway: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> None:
    """The platform creates the session, but answers after the start's deadline: the client
    was told `TIMEOUT`, so the session it made is ended the moment the answer arrives (a
    refused end tried again), and counted; the platform then runs exactly the sessions
    clients were told of (none)."""
    platform, server = emulator
    platform.create_delay_s = 1.0
    platform.refuse_ends = 1  # the first end is refused: it is tried again
    gateway: GatewayClient = await make_gateway(**loopback(server, command_timeout_s=0.3))
    ws = await gateway.ws()
    (answer,) = await start_many(ws, "loopback", 1)
    assert (answer["op"], answer["code"]) == ("error", "TIMEOUT")
    assert platform.chats == {}  # still creating: the client heard first
    sessions = gateway.client.app[SESSIONS]
    assert sessions.admission.late == 1  # it holds its place while the platform works
    async with asyncio.timeout(WAIT):
        while not platform.chats or not all(c.ended for c in platform.chats.values()):
            await asyncio.sleep(0.01)
        while sessions.admission.late:
            await asyncio.sleep(0.01)
    assert len(platform.chats) == 1
    assert sessions.owned == {}
    text = await scrape(gateway)
    assert metric(text, 'gateway_sessions_abandoned_total{reason="late"}') == 1
    assert metric(text, "gateway_sessions_load") == 0
    await ws.close()


async def test_a_lease_that_lapsed_unclaimed_is_taken_again_and_one_taken_by_another_is_not(
    make_gateway: Callable[..., Any], emulator: tuple[Emulator, TestServer], redis_url: str
) -> None:
    """A keeper that ran late (a saturated replica) finds leases lapsed: one that nobody took
    is taken again and its session keeps running here (no stop and takeover of its own
    session); one another replica holds is theirs, and the session here stops."""
    _, server = emulator
    gateway: GatewayClient = await make_gateway(**loopback(server, lease_ttl_s=1.5))
    sessions = gateway.client.app[SESSIONS]
    store = sessions.store
    assert isinstance(store, RedisStore)
    ws = await gateway.ws()
    kept, lost = (a["conversation"] for a in await start_many(ws, "loopback", 2))
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await redis.delete(lease_key(kept, store.namespace))  # lapsed, nobody took it
        await redis.set(lease_key(lost, store.namespace), "another-replica", px=60_000)
        async with asyncio.timeout(WAIT):
            while lost in sessions.owned:
                await asyncio.sleep(0.05)
        assert kept in sessions.owned
        assert await redis.get(lease_key(kept, store.namespace)) == store.replica.encode()
        text = await scrape(gateway)
        assert metric(text, "gateway_session_leases_retaken_total") >= 1
        # still running: the agent's answer arrives through the session kept here
        await ws.send("send", ref="m", conversation=kept, content={"kind": "text", "text": "hi"})
        assert (await ws.reply("ack", "m"))["op"] == "ack"
        await ws.wait_for(
            lambda f: (
                f["op"] == "event"
                and f["event"]["conversation_id"] == kept
                and f["event"]["type"] == "message"
                and f["event"]["content"].get("text") == "echo: hi"
            ),
            timeout=WAIT,
        )
    finally:
        await redis.aclose()
        await ws.close()
