"""Property: with many conversations and clients of different scopes, no client ever receives
an event outside its scope, whatever it asks for."""

from __future__ import annotations

import asyncio
from fnmatch import fnmatchcase
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Settings
from gateway.web.app import create_app
from tests.security.conftest import SECRET, token
from tests.support import GatewayClient, WsClient, loopback_message

CHATS = ["a1", "a2", "ab", "b1", "b2", "c"]
SCOPES = st.lists(
    st.sampled_from(
        ["loopback:a*", "loopback:b*", "loopback:a1", "loopback:c", "loopback:ab", "other:*"]
    ),
    max_size=3,
    unique=True,
)
ASKS = st.lists(
    st.sampled_from(
        ["*", "loopback:*", "loopback:a*", "loopback:b*"] + [f"loopback:{c}" for c in CHATS]
    ),
    min_size=1,
    max_size=5,
)


async def scenario(clients: list[tuple[list[str], list[str]]], chats: list[str]) -> None:
    app = create_app(
        Settings(
            dialects=["loopback"],
            auth="jwt",
            jwt_secret=SECRET,
            ws_rate=1000,
            ws_burst=1000,
            client_rate=1000,
            client_burst=1000,
        )
    )
    async with TestClient(TestServer(app)) as http:
        gateway = GatewayClient(http)
        sockets: list[tuple[list[str], WsClient]] = []
        for n, (scopes, asks) in enumerate(clients):
            ws = WsClient(
                await http.ws_connect("/v1/ws", params={"token": token(f"c{n}", read=scopes)})
            )
            await ws.wait_for(lambda f: f["op"] == "welcome")
            for target in asks:
                await ws.send("subscribe", conversation=target, ref=target)
                reply = await ws.reply("subscribed", target)
                allowed = any(fnmatchcase(target, scope) for scope in scopes)
                assert (reply["op"] == "subscribed") == allowed, (scopes, target, reply)
            sockets.append((scopes, ws))
        ingest = token("ingest", ingest=["loopback"])
        frames = [loopback_message(chat, n) for n in (1, 2) for chat in chats]
        async with http.post(
            "/v1/dialects/loopback/events", json=frames, params={"token": ingest}
        ) as response:
            assert response.status == 202
        for scopes, ws in sockets:  # a ping round trip: everything fanned out has arrived
            await ws.send("ping", ref="sync")
            await ws.reply("pong", "sync")
            for event in ws.events():
                conversation = event["conversation_id"]
                assert any(fnmatchcase(conversation, scope) for scope in scopes), (scopes, event)
            await ws.close()
        assert gateway


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    clients=st.lists(st.tuples(SCOPES, ASKS), min_size=1, max_size=4),
    chats=st.lists(st.sampled_from(CHATS), min_size=1, max_size=6, unique=True),
)
def test_no_client_sees_outside_its_scope(clients: Any, chats: list[str]) -> None:
    asyncio.run(scenario(clients, chats))
