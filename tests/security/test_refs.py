"""Command refs belong to the client that sent them (issue #23 item 1).

A client that repeats another client's `start` ref (and participant) must not get their
`started` answer, read access, transcript or send rights: over the WebSocket and HTTP, on
both hub engines (the Redis one keeps refs in Redis).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestServer

from adapters.loopback.emulator import Emulator
from tests.security.conftest import token
from tests.sessions.conftest import emulator
from tests.support import GatewayClient, WsClient

__all__ = ["emulator"]  # the fixture, shared with the sessions tests

VICTIM = {"commands": ["start", "send"], "read": []}
ATTACKER = {"commands": ["start", "send"], "read": []}


async def _secure_sessions(
    make_secure: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> GatewayClient:
    _, server = emulator
    return await make_secure(  # type: ignore[no-any-return]
        dialect_settings={
            "loopback": {"url": str(server.make_url("")), "poll_wait": "1", "backoff_s": "0.02"}
        }
    )


async def _ws(gateway: GatewayClient, sub: str, claims: dict[str, Any]) -> WsClient:
    socket = await gateway.client.ws_connect("/v1/ws", params={"token": token(sub, **claims)})
    ws = WsClient(socket)
    await ws.wait_for(lambda f: f["op"] == "welcome")
    return ws


def _participant() -> dict[str, str]:
    return {"from": f"+1555{uuid.uuid4().int % 10**7:07d}", "from_type": "phone"}


async def test_a_replayed_start_ref_over_ws_gets_nothing_of_the_first_client(
    make_secure: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> None:
    gateway = await _secure_sessions(make_secure, emulator)
    who = _participant()
    victim = await _ws(gateway, "victim", VICTIM)
    await victim.send("start", ref="r1", dialect="loopback", participant=who)
    started = await victim.reply("started", "r1")
    assert started["op"] == "started", started
    conversation = started["conversation"]
    await victim.send(
        "send", ref="m1", conversation=conversation, content={"kind": "text", "text": "secret"}
    )
    assert (await victim.reply("ack", "m1"))["op"] == "ack"

    attacker = await _ws(gateway, "attacker", ATTACKER)
    await attacker.send("start", ref="r1", dialect="loopback", participant=who)
    answer = await attacker.reply("started", "r1")
    # Either a session of its own or a refusal: never the victim's conversation.
    assert answer.get("conversation") != conversation, answer
    await attacker.send(
        "send", ref="m2", conversation=conversation, content={"kind": "text", "text": "x"}
    )
    refused = await attacker.reply("ack", "m2")
    assert refused["op"] == "error" and refused["code"] == "FORBIDDEN", refused
    await attacker.send("subscribe", ref="s", conversation=conversation, since=0)
    assert (await attacker.reply("subscribed", "s"))["op"] == "error"
    await asyncio.sleep(0.2)
    assert attacker.events(conversation) == []
    await attacker.close()
    await victim.close()


async def test_a_replayed_start_ref_over_http_gets_nothing_of_the_first_client(
    make_secure: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> None:
    gateway = await _secure_sessions(make_secure, emulator)
    who = _participant()
    body = {"ref": "r1", "dialect": "loopback", "participant": who}

    async def start(sub: str) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token(sub, **VICTIM)}"}
        async with gateway.client.post("/v1/conversations", json=body, headers=headers) as r:
            return r.status, await r.json()

    status, first = await start("victim")
    assert status == 201, first
    status, again = await start("victim")  # the same client's repeat: the same answer
    assert (status, again["conversation"]) == (201, first["conversation"])
    status, other = await start("attacker")
    assert other.get("conversation") != first["conversation"], other


async def test_a_refs_answer_of_a_conversation_command_is_the_senders_own(
    make_secure: Callable[..., Any], emulator: tuple[Emulator, TestServer]
) -> None:
    """Two clients allowed on one conversation reuse a ref: each gets its own answer."""
    gateway = await _secure_sessions(make_secure, emulator)
    claims = {"commands": ["start", "send"], "read": ["loopback:*"]}
    first = await _ws(gateway, "one", claims)
    await first.send("start", ref="r1", dialect="loopback", participant=_participant())
    conversation = (await first.reply("started", "r1"))["conversation"]
    await first.send(
        "send", ref="m", conversation=conversation, content={"kind": "text", "text": "a"}
    )
    one = await first.reply("ack", "m")
    second = await _ws(gateway, "two", claims)
    await second.send(
        "send", ref="m", conversation=conversation, content={"kind": "text", "text": "b"}
    )
    two = await second.reply("ack", "m")
    assert one["op"] == two["op"] == "ack", (one, two)
    assert one["id"] != two["id"], (
        one,
        two,
    )  # the second message was sent, not answered from the first
    await first.close()
    await second.close()
