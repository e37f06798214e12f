"""Two `gateway serve` processes sharing one Redis behave as one gateway."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import aiohttp
import msgspec
import pytest

from tests.processes import GatewayProcess
from tests.support import WsClient, loopback_message


@pytest.fixture
def replicas(redis_url: str, tmp_path) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:  # type: ignore[no-untyped-def]
    namespace = f"t{uuid.uuid4().hex[:10]}"
    a = GatewayProcess(redis_url, log_path=tmp_path / "a.log", namespace=namespace).start()
    b = GatewayProcess(redis_url, log_path=tmp_path / "b.log", namespace=namespace).start()
    yield a, b
    a.kill()
    b.kill()


async def test_event_ingested_at_one_reaches_a_subscriber_of_the_other(
    replicas: tuple[GatewayProcess, GatewayProcess], conversation: str
) -> None:
    a, b = replicas
    conv = f"loopback:{conversation}"
    async with aiohttp.ClientSession() as http:
        ws = WsClient(await http.ws_connect(f"{b.url}/v1/ws"))
        await ws.subscribe(conv)
        pattern = WsClient(await http.ws_connect(f"{b.url}/v1/ws"))
        await pattern.subscribe("loopback:*")
        for start in range(0, 50, 10):
            body = msgspec.json.encode(
                [loopback_message(conversation, n) for n in range(start + 1, start + 11)]
            )
            async with http.post(f"{a.url}/v1/dialects/loopback/events", data=body) as response:
                assert response.status == 202
        events = await ws.wait_events(50, conv)
        assert [e["seq"] for e in events] == list(range(1, 51))
        assert [e["seq"] for e in await pattern.wait_events(50, conv)] == list(range(1, 51))
        # B resumes from A's log as well.
        late = WsClient(await http.ws_connect(f"{b.url}/v1/ws"))
        await late.subscribe(conv, since=45)
        assert [e["seq"] for e in await late.wait_events(5, conv)] == [46, 47, 48, 49, 50]
        for client in (ws, pattern, late):
            await client.close()
