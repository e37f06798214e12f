"""`gateway.client` against real gateways on loopback: each event once and in order across a
socket killed mid-stream, a slow reader's eviction (4008), a replica's SIGTERM (1001) and token
expiry (4401); a send in flight across a drop answered once; typed errors."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from gateway.client import Gap, GatewayClient, StateChange, Subscription
from gateway.config import Settings
from gateway.demo import setup_demo
from gateway.errors import GatewayError
from gateway.model import Message, Text
from gateway.web.app import create_app
from tests.processes import GatewayProcess
from tests.support import GatewayClient as Gateway
from tests.support import loopback_message

SECRET = "client-test-secret-0123456789abcdef"


def ws_url(gateway: Gateway) -> str:
    return str(gateway.client.make_url("/v1/ws"))


async def ingest(gateway: Gateway, chat: str, first: int, last: int, text: str = "") -> None:
    frames = [loopback_message(chat, n, text or None) for n in range(first, last + 1)]
    status, body = await gateway.ingest("loopback", frames)
    assert status == 202, body


async def collect(subscription: Subscription, count: int, timeout: float = 20) -> list[int]:
    seqs: list[int] = []
    async with asyncio.timeout(timeout):
        while len(seqs) < count:
            seqs.append((await subscription.next()).seq)
    return seqs


async def drain(subscription: Subscription, quiet_s: float = 0.2) -> list[Any]:
    """What arrives until nothing has for `quiet_s` seconds."""
    events: list[Any] = []
    while True:
        try:
            async with asyncio.timeout(quiet_s):
                events.append(await subscription.next())
        except TimeoutError:
            return events


async def no_more(subscription: Subscription) -> None:
    """Nothing else arrives (a late duplicate would)."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await subscription.next()


@pytest.fixture
async def client_of() -> AsyncIterator[Callable[..., GatewayClient]]:
    made: list[GatewayClient] = []

    def make(url: str | list[str], **options: Any) -> GatewayClient:
        client = GatewayClient(url, backoff_s=0.1, **options)
        client.start()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def test_a_socket_killed_mid_stream_resumes_without_gap_or_duplicate(
    make_gateway: Any, client_of: Callable[..., GatewayClient], conversation: str
) -> None:
    gateway: Gateway = await make_gateway()
    conv = f"loopback:{conversation}"
    client = client_of(ws_url(gateway))
    states: list[str] = []
    client.on_state(lambda change: states.append(change.state))
    exact = await client.subscribe(conv, since=0)
    pattern = await client.subscribe("loopback:*")
    await ingest(gateway, conversation, 1, 20)
    assert await collect(exact, 20) == list(range(1, 21))
    assert await collect(pattern, 20) == list(range(1, 21))
    client.reconnect(delay_s=0.3)
    await ingest(gateway, conversation, 21, 60)  # while the client is away
    async with asyncio.timeout(10):
        await client.connected()
    await ingest(gateway, conversation, 61, 80)
    assert await collect(exact, 60) == list(range(21, 81))
    assert await collect(pattern, 60) == list(range(21, 81))  # caught up through the log
    await no_more(exact)
    assert client.last_seq(conv) == 80
    assert "resuming" in states


async def test_events_trimmed_from_the_log_are_a_gap_not_a_wait(
    make_gateway: Any, client_of: Callable[..., GatewayClient], conversation: str
) -> None:
    gateway: Gateway = await make_gateway(retention_maxlen=50)
    conv = f"loopback:{conversation}"
    client = client_of(ws_url(gateway))
    gaps: list[Gap] = []
    client.on_gap(gaps.append)
    await ingest(gateway, conversation, 1, 120)  # the log keeps about the last 50
    events = await client.subscribe(conv, since=0)
    first = (await events.next()).seq
    assert first > 1
    assert await collect(events, 120 - first) == list(range(first + 1, 121))
    assert gaps == [Gap(conv, 0, first)]
    # A pattern (no exact subscription) resuming past a trimmed stretch goes on as well.
    other = f"{conversation}-p"
    pattern = await client.subscribe("loopback:*")
    await ingest(gateway, other, 1, 5)
    assert await collect(pattern, 5) == [1, 2, 3, 4, 5]
    client.reconnect(delay_s=0.5)
    await ingest(gateway, other, 6, 200)  # while away
    async with asyncio.timeout(10):
        await client.connected()
    await ingest(gateway, other, 201, 205)
    seqs = await collect(pattern, 1)
    assert seqs[0] > 6
    assert await collect(pattern, 205 - seqs[0]) == list(range(seqs[0] + 1, 206))
    assert gaps[-1] == Gap(f"loopback:{other}", 5, seqs[0])


@pytest.mark.parametrize("hub_url", ["memory"], indirect=True)
async def test_a_slow_reader_evicted_with_4008_resumes(
    make_gateway: Any, client_of: Callable[..., GatewayClient], conversation: str
) -> None:
    gateway: Gateway = await make_gateway(ws_send_queue=32)
    client = client_of(ws_url(gateway))
    codes: list[int | None] = []
    client.on_state(lambda change: codes.append(change.code))
    events = await client.subscribe(f"loopback:{conversation}", since=0)
    # Stop reading this socket: the kernel's buffers fill, then the gateway's queue.
    transport = client._ws._conn.transport  # type: ignore[union-attr]
    transport.pause_reading()
    sent = 0
    while 4008 not in codes:
        assert sent < 8000, "the paused reader was never evicted"
        await ingest(gateway, conversation, sent + 1, sent + 20, text="x" * 8000)
        sent += 20
        if await _evictions(gateway):
            transport.resume_reading()  # let it read what was sent, then the close
        await asyncio.sleep(0.005)
    assert await collect(events, sent, timeout=60) == list(range(1, sent + 1))


async def _evictions(gateway: Gateway) -> float:
    async with gateway.client.get("/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("gateway_ws_evictions_total "):
                return float(line.split()[1])
    return 0.0


async def test_a_replica_leaving_moves_the_client_to_another(
    redis_url: str, client_of: Callable[..., GatewayClient], conversation: str, tmp_path: Any
) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    a = GatewayProcess(redis_url, log_path=tmp_path / "a.log", namespace=namespace).start()
    b = GatewayProcess(redis_url, log_path=tmp_path / "b.log", namespace=namespace).start()
    try:
        conv = f"loopback:{conversation}"
        client = client_of([f"{a.url}/v1/ws", f"{b.url}/v1/ws"])
        codes: list[int | None] = []
        client.on_state(lambda change: codes.append(change.code))
        events = await client.subscribe(conv, since=0)
        http = client._session
        assert http is not None

        async def post(first: int, last: int) -> None:
            frames = [loopback_message(conversation, n) for n in range(first, last + 1)]
            async with http.post(f"{b.url}/v1/dialects/loopback/events", json=frames) as r:
                assert r.status == 202

        await post(1, 30)
        assert await collect(events, 30) == list(range(1, 31))
        leaving = asyncio.create_task(asyncio.to_thread(a.terminate))
        await post(31, 60)
        assert await leaving == 0
        await post(61, 90)
        assert await collect(events, 60) == list(range(31, 91))
        await no_more(events)
        assert 1001 in codes
    finally:
        a.kill()
        b.kill()


def _token(ttl_s: float) -> str:
    claims = {"sub": "client-test", "exp": int(time.time() + ttl_s), "read": ["*"]}
    return jwt.encode({**claims, "commands": ["*"], "ingest": ["*"]}, SECRET, algorithm="HS256")


@pytest.mark.parametrize("hub_url", ["memory"], indirect=True)
async def test_token_expiry_gets_a_fresh_token_and_resumes(
    make_gateway: Any, client_of: Callable[..., GatewayClient], conversation: str
) -> None:
    gateway: Gateway = await make_gateway(auth="jwt", jwt_secret=SECRET)
    reasons: list[str] = []

    async def get_token(reason: str) -> str:
        reasons.append(reason)
        return _token(2 if len(reasons) == 1 else 600)  # the first expires at once

    client = client_of(ws_url(gateway), get_token=get_token)
    changes: list[StateChange] = []
    client.on_state(changes.append)
    events = await client.subscribe(f"loopback:{conversation}", since=0)
    headers = {"Authorization": f"Bearer {_token(600)}"}
    body = [loopback_message(conversation, n) for n in range(1, 11)]
    async with gateway.client.post("/v1/dialects/loopback/events", json=body, headers=headers):
        pass
    assert await collect(events, 10) == list(range(1, 11))
    async with asyncio.timeout(10):
        while not any(c.code == 4401 for c in changes):
            await asyncio.sleep(0.05)
    body = [loopback_message(conversation, n) for n in range(11, 21)]
    async with gateway.client.post("/v1/dialects/loopback/events", json=body, headers=headers):
        pass
    assert await collect(events, 10) == list(range(11, 21))
    assert reasons == ["connect", "expired"]


@pytest.fixture
async def demo(aiohttp_client: Callable[..., Any]) -> Gateway:
    """A gateway whose loopback platform is its in-process emulator (an agent that echoes)."""
    app = create_app(Settings(dialects=["loopback"], auth="none", ws_max_frame_bytes=4096))
    setup_demo(app, pace=0.1)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return Gateway(client)


def _texts(events: list[Any], text: str) -> int:
    return sum(
        isinstance(e, Message) and isinstance(e.content, Text) and e.content.text == text
        for e in events
    )


async def test_a_send_in_flight_across_a_drop_is_answered_once_and_sent_once(
    demo: Gateway, client_of: Callable[..., GatewayClient]
) -> None:
    client = client_of(ws_url(demo))
    started = await client.start_conversation("loopback", {"from": "ana", "name": "Ana"})
    conversation = started.conversation
    subscription = await client.subscribe(conversation, since=0)
    seen: list[Any] = []
    for round_ in range(3):
        text = f"in flight {round_}"
        sending = asyncio.create_task(client.send(conversation, Text(text=text)))
        await asyncio.sleep(0)  # the frame may or may not have left when the socket drops
        client.reconnect(delay_s=0.1 * round_)
        ack = await sending
        assert ack.conversation == conversation
        async with asyncio.timeout(10):
            while _texts(seen, f"echo: {text}") == 0:
                seen.append(await subscription.next())
        await asyncio.sleep(0.3)
        seen.extend(await drain(subscription))
        assert _texts(seen, text) == 1, f"{text} reached the platform more than once"
        assert _texts(seen, f"echo: {text}") == 1
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))


async def test_unknown_ops_and_bad_commands_raise_typed_errors(
    demo: Gateway, client_of: Callable[..., GatewayClient]
) -> None:
    client = client_of(ws_url(demo))
    with pytest.raises(GatewayError) as unknown:
        await client.call("teleport", conversation="loopback:x")
    assert unknown.value.code == "INVALID_REQUEST" and not unknown.value.recoverable
    with pytest.raises(GatewayError) as missing:
        await client.send("loopback:nobody", Text(text="hi"))
    assert missing.value.code == "SESSION_NOT_FOUND"
    with pytest.raises(GatewayError) as bad:
        await client.send("loopback:x", {"kind": "text"})
    assert bad.value.code == "INVALID_REQUEST"
    assert bad.value.details["path"] == "$.content"
    with pytest.raises(GatewayError) as large:
        await client.send("loopback:x", Text(text="y" * 5000))
    assert large.value.code == "FRAME_TOO_LARGE"  # refused before it was sent
    assert client.state == "connected"
