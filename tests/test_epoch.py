"""A conversation log that the store lost is told to subscribers, never a silent gap (#23 item 3).

Each log has an epoch (a random id made with its first event). Events, `subscribed` and
`history` carry it; when the log restarts (Redis came back empty, or the memory engine's
process restarted), an attached subscriber gets `subscribed {recovered: false, epoch, seq: 0}`
and then the new log, and a client resuming with the old epoch is told the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.config import Settings
from gateway.web.app import create_app
from tests.redis_server import RedisServer
from tests.support import GatewayClient, WsClient, loopback_message


async def _ingest(gateway: GatewayClient, conversation: str, *numbers: int) -> None:
    for n in numbers:
        status, body = await gateway.ingest("loopback", loopback_message(conversation, n))
        assert status == 202, body


async def _ready(gateway: GatewayClient) -> None:
    async with asyncio.timeout(15):
        while (await gateway.get("/readyz"))[0] != 200:
            await asyncio.sleep(0.05)


async def _subscribe(ws: WsClient, conversation: str, **fields: Any) -> dict[str, Any]:
    ref = f"s{len(ws.frames)}"
    await ws.send("subscribe", ref=ref, conversation=conversation, **fields)
    frame = await ws.reply("subscribed", ref)
    assert frame["op"] == "subscribed", frame
    return frame


async def test_events_subscribed_and_history_carry_the_logs_epoch(
    gateway: GatewayClient, conversation: str
) -> None:
    conv = f"loopback:{conversation}"
    await _ingest(gateway, conversation, 1, 2)
    ws = await gateway.ws()
    subscribed = await _subscribe(ws, conv, since=0)
    epoch = subscribed["epoch"]
    assert isinstance(epoch, str) and epoch and subscribed["recovered"] is True
    events = await ws.wait_events(2, conv)
    assert {e["epoch"] for e in events} == {epoch}
    await ws.send("history", ref="h", conversation=conv)
    history = await ws.reply("history", "h")
    assert history["epoch"] == epoch
    _, log = await gateway.get(f"/v1/conversations/{conv}/events")
    assert log["epoch"] == epoch
    await ws.close()


async def test_a_resume_with_a_stale_epoch_or_past_the_head_is_not_recovered(
    gateway: GatewayClient, conversation: str
) -> None:
    conv = f"loopback:{conversation}"
    await _ingest(gateway, conversation, 1, 2, 3)
    ws = await gateway.ws()
    resumed = await _subscribe(ws, conv, since=1, epoch="not-this-one")
    assert resumed["recovered"] is False and resumed["seq"] == 0
    assert [e["seq"] for e in await ws.wait_events(3, conv)] == [1, 2, 3]
    ahead = await gateway.ws()
    past = await _subscribe(ahead, conv, since=50)  # a log that restarted, to an old client
    assert past["recovered"] is False and past["seq"] == 0
    assert [e["seq"] for e in await ahead.wait_events(3, conv)] == [1, 2, 3]
    fine = await gateway.ws()
    same = await _subscribe(fine, conv, since=2, epoch=resumed["epoch"])
    assert same["recovered"] is True and same["seq"] == 2
    assert [e["seq"] for e in await fine.wait_events(1, conv)] == [3]
    for socket in (ws, ahead, fine):
        await socket.close()


async def test_a_resume_into_a_trimmed_log_is_not_recovered(
    make_gateway: Callable[..., Any], conversation: str
) -> None:
    gateway = await make_gateway(retention_maxlen=5)
    conv = f"loopback:{conversation}"
    await _ingest(gateway, conversation, *range(1, 301))
    ws = await gateway.ws()
    frame = await _subscribe(ws, conv, since=2)
    assert frame["recovered"] is False  # events 3… were trimmed away: said, not hidden
    await ws.close()


async def test_a_log_redis_lost_restarts_its_subscribers_plainly(
    aiohttp_client: Callable[..., Any], redis_factory: Callable[[], RedisServer], conversation: str
) -> None:
    server = redis_factory()
    gateway = GatewayClient(
        await aiohttp_client(
            create_app(Settings(redis_url=server.url, dialects=["loopback"], auth="none"))
        )
    )
    conv = f"loopback:{conversation}"
    ws = await gateway.ws()
    first = await _subscribe(ws, conv)
    await _ingest(gateway, conversation, 1, 2, 3, 4)
    old = await ws.wait_events(4, conv)
    epoch = old[0]["epoch"]
    server.lose_data()
    await _ready(gateway)
    await _ingest(gateway, conversation, 5, 6)
    # The attached socket is told, then gets the new log: nothing silently dropped.
    told = await ws.wait_for(
        lambda f: f["op"] == "subscribed" and f is not first and f["conversation"] == conv
    )
    # (Without `epoch` if the socket learnt of it before the new log's first event.)
    assert told["recovered"] is False and told.get("epoch") != epoch and told["seq"] == 0
    new = (await ws.wait_events(6, conv))[4:]
    renewed = new[0]["epoch"]
    assert renewed != epoch and told.get("epoch", renewed) == renewed
    assert [(e["seq"], e["id"].rsplit("/", 1)[1], e["epoch"]) for e in new] == [
        (1, "m5", renewed),
        (2, "m6", renewed),
    ]
    # A client resuming where it left off, with the old epoch, is told too.
    resuming = await gateway.ws()
    frame = await _subscribe(resuming, conv, since=4, epoch=epoch)
    assert frame["recovered"] is False and frame["epoch"] == renewed
    assert [e["id"].rsplit("/", 1)[1] for e in await resuming.wait_events(2, conv)] == ["m5", "m6"]
    await ws.close()
    await resuming.close()
