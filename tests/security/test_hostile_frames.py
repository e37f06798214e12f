"""Hostile but small inputs get precise errors, not crashes or loops (issue #23 item 7)."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
from typing import Any

import msgspec

from tests.redis_server import free_port
from tests.security.conftest import token
from tests.support import GatewayClient, WsClient


async def test_a_deeply_nested_frame_is_an_error_frame_not_a_dead_socket(
    gateway: GatewayClient,
) -> None:
    ws = await gateway.ws()
    deep = "[" * 2000 + "]" * 2000
    await ws.send_raw('{"op":"subscribe","ref":"x","conversation":' + deep + "}")
    await ws.send_raw(deep)
    errors = [await ws.wait_for(lambda f: f["op"] == "error")]
    await ws.send("ping", ref="alive")
    assert (await ws.reply("pong", "alive"))["op"] == "pong"
    errors = [f for f in ws.frames if f["op"] == "error"]
    assert len(errors) == 2 and {e["code"] for e in errors} <= {"INVALID_REQUEST", "MALFORMED_JSON"}
    assert not ws.ws.closed
    await ws.close()


async def test_malformed_frames_spend_the_rate_limit_too(make_secure: Any) -> None:
    gateway: GatewayClient = await make_secure(
        ws_rate=20, ws_burst=10, client_rate=1000, client_burst=1000
    )
    ws = WsClient(await gateway.client.ws_connect("/v1/ws", params={"token": token("bad")}))
    await ws.wait_for(lambda f: f["op"] == "welcome")
    await asyncio.gather(*(ws.send_raw("{nope") for _ in range(40)))
    async with asyncio.timeout(5):  # one error each: malformed, or limited before it is read
        while len(codes := [f["code"] for f in ws.frames if f["op"] == "error"]) < 40:
            await asyncio.sleep(0.02)
    assert "RATE_LIMITED" in codes and codes.count("MALFORMED_JSON") < 40, codes
    await ws.close()


async def test_since_beyond_any_seq_is_refused_on_every_engine(gateway: GatewayClient) -> None:
    ws = await gateway.ws()
    for field, value in (("since", 2**64 - 1), ("since", 2**62 + 1)):
        await ws.send(
            "subscribe", ref=f"{field}{value}", conversation="loopback:x", **{field: value}
        )
        answer = await ws.reply("subscribed", f"{field}{value}", timeout=3)
        assert (answer["op"], answer["code"], answer["path"]) == (
            "error",
            "INVALID_REQUEST",
            "$.since",
        ), answer
    await ws.send("history", ref="h", conversation="loopback:x", before=2**64 - 1)
    answer = await ws.reply("history", "h", timeout=3)
    assert (answer["op"], answer.get("path")) == ("error", "$.before"), answer
    await ws.close()


async def test_non_ascii_digits_are_not_numbers(gateway: GatewayClient) -> None:
    status, body = await gateway.get("/v1/conversations/loopback:x/events", since="١٢")
    assert (status, body["error"]["path"]) == (400, "query.since"), body
    status, body = await gateway.get("/v1/conversations/loopback:x/events", limit="²")
    assert (status, body["error"]["path"]) == (400, "query.limit"), body


def test_start_up_failures_and_warnings_are_json_lines() -> None:
    """A gateway that cannot reach its store exits with a JSON line, not a bare traceback."""
    port = free_port()
    env = {
        "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "GATEWAY_PORT": str(port),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_AUTH": "none",
        "GATEWAY_DIALECTS": "loopback",
        "PYTHONWARNINGS": "always",
    }
    done = subprocess.run(
        [sys.executable, "-W", "always", "-m", "gateway.cli", "serve"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.decode().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = msgspec.json.decode(line)  # every line is JSON, tracebacks included
        assert "event" in record, record
    assert any(msgspec.json.decode(line).get("level") in ("error", "critical") for line in lines)


async def test_a_gzip_bomb_and_deep_json_over_http_are_refused_plainly(
    gateway: GatewayClient,
) -> None:
    """Two of the probes that held (2026-12-07), kept as tests."""
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB in ~64 KiB
    async with gateway.client.post(
        "/v1/dialects/loopback/events",
        data=bomb,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    ) as r:
        assert r.status == 413, await r.text()
        assert (await r.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    deep = b"[" * 10_000 + b"]" * 10_000
    async with gateway.client.post("/v1/dialects/loopback/events", data=deep) as r:
        assert 400 <= r.status < 500, await r.text()
        assert (await r.json())["error"]["code"] in ("MALFORMED_JSON", "INVALID_FRAME")
    status, _ = await gateway.get("/readyz")
    assert status == 200
