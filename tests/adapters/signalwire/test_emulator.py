"""The emulator as the SDK sees the platform: REST and Relay on hosts of their own; REST's
auth, errors, the newer join, paging."""

from __future__ import annotations

from typing import Any

import msgspec

from adapters.signalwire import SignalWireAdapter
from adapters.signalwire.emulator import Emulator
from adapters.signalwire.native import Page, collect_chat

AUTH = {"Authorization": "Bearer good-token"}


async def test_rest_wants_a_bearer_token(aiohttp_client: Any, emulator: Emulator) -> None:
    client = await aiohttp_client(emulator.rest)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic good-token"}):
        resp = await client.post("/api/fabric/messages", json={}, headers=headers)
        assert resp.status == 401
        assert (await resp.json())["errors"][0]["code"] == "unauthorized"


async def test_documented_errors(aiohttp_client: Any, emulator: Emulator) -> None:
    client = await aiohttp_client(emulator.rest)
    resp = await client.post("/api/fabric/messages", json={"conversation_id": "a"}, headers=AUTH)
    assert resp.status == 422
    resp = await client.get("/api/fabric/conversations/nobody/messages", headers=AUTH)
    assert resp.status == 404


async def test_newer_join_makes_a_group(aiohttp_client: Any, emulator: Emulator) -> None:
    client = await aiohttp_client(emulator.rest)
    body = {"from_fabric_address_id": "subscriber-1", "fabric_address_ids": ["bot", "subscriber-1"]}
    resp = await client.post("/api/fabric/conversations/join", json=body, headers=AUTH)
    group = (await resp.json())["group_id"]
    row = await emulator.agent_says(group, "hello group")
    assert row["group_id"] == group
    assert row["from_fabric_address_id"] == "bot"
    assert (
        SignalWireAdapter().decode(msgspec.json.encode(row)).events[0].conversation_id
        == f"signalwire:{group}"
    )


async def test_history_pages_follow_links_and_collect_chat(
    aiohttp_client: Any, emulator: Emulator
) -> None:
    client = await aiohttp_client(emulator.rest)
    emulator.greeting = None
    await client.post("/api/fabric/conversations/join", json={"conversation_id": "a"}, headers=AUTH)
    for n in range(5):
        await emulator.agent_says("a", f"m{n}")
        emulator.add_call_log("a")
    url = str(client.make_url("/api/fabric/conversations/a/messages?page_size=3"))
    pages: list[tuple[str, Page]] = []
    while True:
        resp = await client.session.get(url, headers=AUTH)  # links are absolute URLs
        pages.append((url, msgspec.convert(await resp.json(), Page)))
        page = collect_chat(pages, "a", 4)
        if page.complete or page.fetch is None:
            break
        url = page.fetch
    assert [r.text for r in page.rows] == ["m4", "m3", "m2", "m1"]  # newest first
    assert page.has_next
    assert len(pages) == 3  # 3 rows a page, half of them call logs


async def test_rest_and_relay_are_two_hosts(aiohttp_client: Any, emulator: Emulator) -> None:
    """The Relay socket is at `/` of its own host, with no REST there; the REST host has no
    socket. `app` (demo mode, one port) serves the socket at `/relay`."""
    rest = await aiohttp_client(emulator.rest)
    relay = await aiohttp_client(emulator.relay)
    join = {"conversation_id": "a"}
    assert (
        await relay.post("/api/fabric/conversations/join", json=join, headers=AUTH)
    ).status == 404
    assert (await rest.get("/")).status == 404
    connect = {"jsonrpc": "2.0", "id": "c1", "method": "signalwire.connect"}
    connect["params"] = {"authentication": {"jwt_token": "good-token"}}
    for client, path in ((relay, "/"), (await aiohttp_client(emulator.app), "/relay")):
        ws = await client.ws_connect(path)
        await ws.send_json(connect)
        answer = await ws.receive_json()
        assert answer["result"]["identity"] == "subscriber-1"
        state = await ws.receive_json()
        assert state["params"]["event_type"] == "signalwire.authorization.state"
        assert state["params"]["params"]["authorization_state"]
        await ws.close()


async def test_messages_keep_metadata_and_details(aiohttp_client: Any, emulator: Emulator) -> None:
    client = await aiohttp_client(emulator.rest)
    emulator.greeting = None
    await client.post("/api/fabric/conversations/join", json={"conversation_id": "a"}, headers=AUTH)
    body = {"conversation_id": "a", "text": "hi", "metadata": {"k": 1}, "details": {"d": 2}}
    assert (await client.post("/api/fabric/messages", json=body, headers=AUTH)).status == 200
    page = await (await client.get("/api/fabric/conversations/a/messages", headers=AUTH)).json()
    row = next(r for r in page["data"] if r["text"] == "hi")
    assert (row["metadata"], row["details"]) == ({"k": 1}, {"d": 2})
    bad = {**body, "metadata": "x"}
    assert (await client.post("/api/fabric/messages", json=bad, headers=AUTH)).status == 422
