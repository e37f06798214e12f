"""Signed webhooks, rate limits and fixed limits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from gateway.web.signatures import sign
from tests.security.conftest import token
from tests.support import GatewayClient, WsClient, loopback_message


async def post(gateway: GatewayClient, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with gateway.client.post(
        "/v1/dialects/loopback/events", data=body, headers=headers
    ) as response:
        return response.status, await response.json()


async def test_signed_webhooks(make_secure: Any, conversation: str) -> None:
    gateway: GatewayClient = await make_secure(
        dialect_settings={"loopback": {"webhook_secrets": "old-key, new-key"}}
    )
    body = msgspec.json.encode(loopback_message(conversation, 1))
    now = int(time.time())
    cases = [
        ({}, 401, "SIGNATURE_MISSING"),
        (
            {"X-Gateway-Timestamp": str(now), "X-Gateway-Signature": "v1=00"},
            401,
            "SIGNATURE_INVALID",
        ),
        (
            {"X-Gateway-Timestamp": "yesterday", "X-Gateway-Signature": sign("new-key", now, body)},
            401,
            "SIGNATURE_INVALID",
        ),
        (
            {
                "X-Gateway-Timestamp": str(now - 3600),
                "X-Gateway-Signature": sign("new-key", now - 3600, body),
            },
            401,
            "SIGNATURE_EXPIRED",
        ),
        (
            {
                "X-Gateway-Timestamp": str(now),
                "X-Gateway-Signature": sign("new-key", now, body + b" "),
            },
            401,
            "SIGNATURE_INVALID",
        ),
        (
            {"X-Gateway-Timestamp": str(now), "X-Gateway-Signature": sign("retired", now, body)},
            401,
            "SIGNATURE_INVALID",
        ),
    ]
    for headers, status, code in cases:
        got_status, got = await post(gateway, body, headers)
        assert (got_status, got["error"]["code"]) == (status, code), headers
    for key in ("old-key", "new-key"):  # both keys of a rotation pass
        headers = {"X-Gateway-Timestamp": str(now), "X-Gateway-Signature": sign(key, now, body)}
        assert (await post(gateway, body, headers))[0] == 202
    both = f"{sign('retired', now, body)}, {sign('new-key', now, body)}"
    assert (
        await post(gateway, body, {"X-Gateway-Timestamp": str(now), "X-Gateway-Signature": both})
    )[0] == 202


async def test_a_flooding_client_is_limited_and_others_are_not(make_secure: Any) -> None:
    gateway: GatewayClient = await make_secure(
        ws_rate=20, ws_burst=10, client_rate=1000, client_burst=1000
    )
    flooder = WsClient(await gateway.client.ws_connect("/v1/ws", params={"token": token("f")}))
    calm = WsClient(await gateway.client.ws_connect("/v1/ws", params={"token": token("c")}))
    for client in (flooder, calm):
        await client.wait_for(lambda f: f["op"] == "welcome")
    await asyncio.gather(*(flooder.send("ping", ref=f"f{n}") for n in range(60)))
    for n in range(5):  # its own bucket: the flood next door costs it nothing
        await calm.send("ping", ref=f"c{n}")
        assert (await calm.reply("pong", f"c{n}"))["op"] == "pong"
    await flooder.send("ping", ref="last")
    await flooder.wait_for(lambda f: f.get("ref") == "last")
    limited = [f for f in flooder.frames if f["op"] == "error"]
    assert limited and all(f["code"] == "RATE_LIMITED" and f["recoverable"] for f in limited)
    assert all(f["retry_after_s"] > 0 for f in limited)
    assert len([f for f in flooder.frames if f["op"] == "pong"]) >= 10
    assert not flooder.ws.closed  # limited, not dropped
    await flooder.close()
    await calm.close()


async def test_per_client_limit_spans_connections(make_secure: Any) -> None:
    gateway: GatewayClient = await make_secure(client_rate=1, client_burst=3)
    same = token("greedy")
    async with gateway.client.get("/v1/dialects", params={"token": same}) as response:
        assert response.status == 200
    statuses = []
    for _ in range(4):
        async with gateway.client.get("/v1/dialects", params={"token": same}) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert (await response.json())["error"]["code"] == "RATE_LIMITED"
    assert 429 in statuses
    async with gateway.client.get("/v1/dialects", params={"token": token("other")}) as response:
        assert response.status == 200


async def test_subscriptions_per_socket(make_secure: Any) -> None:
    gateway: GatewayClient = await make_secure(max_subscriptions=2)
    client = WsClient(
        await gateway.client.ws_connect("/v1/ws", params={"token": token(read=["*"])})
    )
    await client.wait_for(lambda f: f["op"] == "welcome")
    await client.subscribe("loopback:1")
    await client.subscribe("loopback:2")
    await client.subscribe("loopback:2")  # re-subscribing is not a new one
    await client.send("subscribe", conversation="loopback:3", ref="third")
    error = await client.reply("subscribed", "third")
    assert (error["op"], error["code"], error["limit"]) == ("error", "LIMIT_EXCEEDED", 2)
    await client.close()
