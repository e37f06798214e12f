"""Demo mode without a browser: every dialect's scripted agent answers, sends a file, ends on
"bye"; the console's page, assets and side-effect-free decode endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.demo import Demo
from tests.console.conftest import DIALECTS
from tests.support import GatewayClient, WsClient, loopback_message

TIMEOUT = 10.0
FILE_KINDS = {"file", "image", "url"}


def _texts(ws: WsClient, conversation: str, role: str) -> list[str]:
    return [
        e["content"].get("text", "")
        for e in ws.events(conversation)
        if e["type"] == "message" and e["sender"]["role"] == role and e["content"]["kind"] == "text"
    ]


async def _until(ws: WsClient, conversation: str, predicate: Any) -> dict[str, Any]:
    frame = await ws.wait_for(
        lambda f: (
            f["op"] == "event"
            and f["event"]["conversation_id"] == conversation
            and predicate(f["event"])
        ),
        TIMEOUT,
    )
    return frame["event"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_scripted_agent_answers_sends_a_file_and_ends(
    demo: GatewayClient, dialect: str
) -> None:
    ws = await demo.ws()
    participant = {"from": "visitor@example.com", "name": "Test Visitor"}
    await ws.send("start", ref="s1", dialect=dialect, participant=participant)
    started = await ws.reply("started", "s1", TIMEOUT)
    assert started["op"] == "started", started
    conv = started["conversation"]
    assert conv.startswith(f"{dialect}:")

    await ws.send("send", ref="m1", conversation=conv, content={"kind": "text", "text": "hello"})
    assert (await ws.reply("ack", "m1", TIMEOUT))["op"] == "ack"
    await _until(
        ws,
        conv,
        lambda e: (
            e["type"] == "message"
            and e["sender"]["role"] != "user"
            and "echo: hello" in e["content"].get("text", "")
        ),
    )
    assert _texts(ws, conv, "user").count("hello") == 1

    await ws.send(
        "send", ref="m2", conversation=conv, content={"kind": "text", "text": "a file please"}
    )
    sent = await _until(
        ws,
        conv,
        lambda e: (
            e["type"] == "message"
            and e["sender"]["role"] != "user"
            and (
                e["content"]["kind"] in FILE_KINDS
                or "/files/receipt.txt" in e["content"].get("text", "")
            )
        ),
    )
    assert sent["sender"]["role"] in ("agent", "bot", "system", "external")

    await ws.send("send", ref="m3", conversation=conv, content={"kind": "text", "text": "bye"})
    await _until(ws, conv, lambda e: e["type"] == "ended")
    seqs = [e["seq"] for e in ws.events(conv)]
    assert len(seqs) == len(set(seqs)), "an event was delivered twice"
    await ws.close()


async def test_demo_runs_without_an_app() -> None:
    async with Demo(["loopback", "no-such-dialect"], pace=0) as demo:
        assert list(demo.settings) == ["loopback"]
        url = demo.settings["loopback"].url
        assert url is not None and url.startswith("http://127.0.0.1:")
        assert demo.tables()["loopback"]["url"] == url


async def test_console_page_and_assets(demo: GatewayClient) -> None:
    async with demo.client.get("/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        assert "/static/app.js" in page and "Content-Security-Policy" in response.headers
    for asset, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        async with demo.client.get(f"/static/{asset}") as response:
            assert response.status == 200 and kind in response.content_type


async def test_decode_returns_events_without_publishing(demo: GatewayClient) -> None:
    frame = loopback_message("decode-only", 1, "hi")
    async with demo.client.post("/v1/dialects/loopback/decode", json=frame) as response:
        assert response.status == 200
        body = await response.json()
    assert body["ignored"] == 0
    (event,) = body["events"]
    assert event["type"] == "message" and event["content"] == {"kind": "text", "text": "hi"}
    assert event["conversation_id"] == "loopback:decode-only"
    status, log = await demo.get("/v1/conversations/loopback:decode-only/events")
    assert status == 200 and log["events"] == []


@pytest.mark.parametrize(
    ("dialect", "body", "status", "code"),
    [
        ("loopback", b"{not json", 400, "MALFORMED_JSON"),
        ("nope", b"{}", 404, "UNKNOWN_DIALECT"),
        ("loopback", b'{"kind": "message", "chat": "c", "id": "m1"}', 422, "INVALID_FRAME"),
    ],
)
async def test_decode_errors_are_ingests(
    demo: GatewayClient, dialect: str, body: bytes, status: int, code: str
) -> None:
    async with demo.client.post(f"/v1/dialects/{dialect}/decode", data=body) as response:
        assert response.status == status
        error = (await response.json())["error"]
    assert error["code"] == code
    if code == "INVALID_FRAME":
        assert "path" in error
