"""Subscription patterns are a small language checked for containment in a claim (#23 item 6).

A pattern is a literal prefix and one `*` at its end (or no `*`: one conversation). A claim
`read: ["loopback:t42-*"]` allows `loopback:t42-*` and narrower, never a glob that only looks
like it (`*[!:t42-]`, `*[^:t42-]`), on either engine.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.security.conftest import token
from tests.support import GatewayClient, WsClient, loopback_message


async def _ws(gateway: GatewayClient, **claims: Any) -> WsClient:
    socket = await gateway.client.ws_connect("/v1/ws", params={"token": token(**claims)})
    ws = WsClient(socket)
    await ws.wait_for(lambda f: f["op"] == "welcome")
    return ws


async def _ingest(gateway: GatewayClient, chat: str) -> None:
    headers = {"Authorization": f"Bearer {token('relay', ingest=['loopback'])}"}
    body = loopback_message(chat, 1)
    async with gateway.client.post("/v1/dialects/loopback/events", json=body, headers=headers) as r:
        assert r.status == 202, await r.text()


async def _answer(ws: WsClient, target: str) -> dict[str, Any]:
    ref = f"r{len(ws.frames)}"
    await ws.send("subscribe", ref=ref, conversation=target)
    return await ws.reply("subscribed", ref)


@pytest.mark.parametrize("claim", ["*:t42-*", "loopback:t42-*"])
async def test_a_glob_that_looks_narrower_than_the_claim_is_refused(
    make_secure: Any, conversation: str, claim: str
) -> None:
    gateway: GatewayClient = await make_secure()
    ws = await _ws(gateway, read=[claim])
    for target in ("*[!:t42-]", "*[^:t42-]", "*?", "loopback:t42-[a-z]*", "*t42-*", "loopback:*"):
        answer = await _answer(ws, target)
        assert answer["op"] == "error", (target, answer)
        assert answer["code"] in ("FORBIDDEN", "INVALID_REQUEST"), answer
    await _ingest(gateway, f"other{conversation}")
    await asyncio.sleep(0.2)
    assert ws.events() == []
    await ws.close()


async def test_a_prefix_pattern_inside_the_claim_is_allowed(
    make_secure: Any, conversation: str
) -> None:
    gateway: GatewayClient = await make_secure()
    ws = await _ws(gateway, read=["loopback:t42-*"])
    for target in ("loopback:t42-*", f"loopback:t42-{conversation[:4]}*", "loopback:t42-x"):
        assert (await _answer(ws, target))["op"] == "subscribed", target
    await _ingest(gateway, f"t42-{conversation}")
    await ws.wait_events(1)
    await ws.close()


async def test_a_malformed_pattern_is_a_precise_error(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    for target in ("a*b", "a[b]", "a?", "**", "a\\*"):
        answer = await _answer(ws, target)
        assert (answer["op"], answer.get("code")) == ("error", "INVALID_REQUEST"), answer
        assert answer["path"] == "$.conversation", answer
    await ws.close()
