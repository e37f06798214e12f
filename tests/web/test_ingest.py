"""`POST /v1/dialects/{dialect}/events` and the log read-back, on both hub engines."""

from __future__ import annotations

import asyncio
import io
import json

from gateway.logging import configure, reset
from tests.support import GatewayClient, loopback_message


async def test_accepts_and_reads_back(gateway: GatewayClient, conversation: str) -> None:
    frames = [loopback_message(conversation, n) for n in (1, 2)] + [{"kind": "wave", "chat": "x"}]
    status, body = await gateway.ingest("loopback", frames)
    assert status == 202
    conv = f"loopback:{conversation}"
    assert body == {
        "accepted": 2,
        "duplicates": 0,
        "ignored": 1,
        "events": [{"id": f"{conv}/m1", "seq": 1}, {"id": f"{conv}/m2", "seq": 2}],
    }
    status, log = await gateway.get(f"/v1/conversations/{conv}/events")
    assert status == 200
    assert [(e["seq"], e["content"]["text"]) for e in log["events"]] == [
        (1, "text 1"),
        (2, "text 2"),
    ]
    assert log["last_seq"] == 2 and log["has_more"] is False
    status, page = await gateway.get(f"/v1/conversations/{conv}/events", since=1, limit=1)
    assert [e["seq"] for e in page["events"]] == [2] and page["has_more"] is False
    status, page = await gateway.get(f"/v1/conversations/{conv}/events", since=0, limit=1)
    assert [e["seq"] for e in page["events"]] == [1] and page["has_more"] is True


async def test_reposting_changes_nothing(gateway: GatewayClient, conversation: str) -> None:
    frames = [loopback_message(conversation, n) for n in (1, 2)]
    await gateway.ingest("loopback", frames)
    status, body = await gateway.ingest("loopback", {"frames": frames})
    assert status == 202
    assert (body["accepted"], body["duplicates"]) == (0, 2)
    assert [e["seq"] for e in body["events"]] == [1, 2]
    _, log = await gateway.get(f"/v1/conversations/loopback:{conversation}/events")
    assert len(log["events"]) == 2


async def test_a_role_announced_in_one_body_holds_for_the_next(
    gateway: GatewayClient, conversation: str
) -> None:
    """DIALECTS.md: context (the role a party announced on joining) is the conversation's, not
    the request's: a later body's frame from that party, with no role of its own, maps to it."""
    joined = {"kind": "joined", "chat": conversation, "from": {"id": "b7", "role": "bot"}}
    assert (await gateway.ingest("loopback", joined))[0] == 202
    message = loopback_message(conversation, 1)
    message["from"] = {"id": "b7"}
    stranger = loopback_message(conversation, 2)
    stranger["from"] = {"id": "someone"}
    assert (await gateway.ingest("loopback", [message, stranger]))[0] == 202
    _, log = await gateway.get(f"/v1/conversations/loopback:{conversation}/events")
    assert [e["sender"]["role"] for e in log["events"] if e["type"] == "message"] == [
        "bot",
        "agent",
    ]


async def test_a_bad_frame_rejects_the_whole_batch(
    gateway: GatewayClient, conversation: str
) -> None:
    frames = [loopback_message(conversation, 1), loopback_message(conversation, 2)]
    frames[1]["from"] = {"role": "wizard"}
    status, body = await gateway.ingest("loopback", frames)
    assert status == 422
    assert body["error"]["code"] == "INVALID_FRAME"
    assert (body["error"]["index"], body["error"]["path"]) == (1, "$.from.role")
    _, log = await gateway.get(f"/v1/conversations/loopback:{conversation}/events")
    assert log["events"] == []


async def test_error_paths(make_gateway, conversation: str) -> None:  # type: ignore[no-untyped-def]
    gateway: GatewayClient = await make_gateway(max_body_bytes=2048)
    cases = [
        (("nope", [], None, None), 404, "UNKNOWN_DIALECT"),
        (("loopback", None, None, b"{not json"), 400, "MALFORMED_JSON"),
        (("loopback", None, None, b"[" + b'"x",' * 1000 + b'"x"]'), 413, "PAYLOAD_TOO_LARGE"),
        (("loopback", {"kind": "message", "chat": "c"}, None, None), 422, "INVALID_FRAME"),
        (("loopback", None, None, b""), 400, "MALFORMED_JSON"),
    ]
    for (dialect, body, conv, raw), status, code in cases:
        got_status, got = await gateway.ingest(dialect, body, conv, raw)
        assert (got_status, got["error"]["code"]) == (status, code), got
        assert got["error"]["message"]
    async with gateway.client.get("/v1/dialects/loopback/events") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "METHOD_NOT_ALLOWED"
    for path, params in [
        (f"/v1/conversations/loopback:{conversation}/events", {"since": "x"}),
        (f"/v1/conversations/loopback:{conversation}/events", {"limit": "0"}),
        (f"/v1/conversations/loopback:{conversation}/events", {"limit": "100000"}),
        ("/v1/conversations/loopback:*/events", {}),
    ]:
        status, body = await gateway.get(path, **params)
        assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", body


async def test_concurrent_ingest_keeps_one_order(gateway: GatewayClient, conversation: str) -> None:
    results = await asyncio.gather(
        *(gateway.ingest("loopback", loopback_message(conversation, n)) for n in range(1, 41))
    )
    assert all(status == 202 for status, _ in results)
    seqs = sorted(body["events"][0]["seq"] for _, body in results)
    assert seqs == list(range(1, 41))


async def test_service_routes(gateway: GatewayClient) -> None:
    status, body = await gateway.get("/v1/dialects")
    assert status == 200
    assert [d["name"] for d in body["dialects"]] == ["loopback"]
    assert {"ingest", "start", "send"} <= set(body["dialects"][0]["capabilities"])
    status, schema = await gateway.get("/v1/schema")
    assert status == 200
    event_types = {ref["$ref"].rsplit("/", 1)[1] for ref in schema["properties"]["event"]["anyOf"]}
    assert {
        "Message",
        "Typing",
        "Receipt",
        "Signal",
        "Availability",
        "Error",
        "Ended",
    } <= event_types
    assert (await gateway.get("/healthz"))[0] == 200
    status, ready = await gateway.get("/readyz")
    assert (status, ready["hub"]) == (200, True)
    status, missing = await gateway.get("/v1/nothing")
    assert (status, missing["error"]["code"]) == (404, "NOT_FOUND")


async def test_metrics_move(gateway: GatewayClient, conversation: str) -> None:
    async def scrape() -> str:
        async with gateway.client.get("/metrics") as response:
            assert response.status == 200
            return await response.text()

    def value(text: str, line_start: str) -> float:
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    accepted = 'gateway_ingest_frames_total{dialect="loopback",outcome="accepted"}'
    before = value(await scrape(), accepted)
    await gateway.ingest("loopback", [loopback_message(conversation, 1)])
    ws = await gateway.ws()
    await ws.subscribe(f"loopback:{conversation}")
    after = await scrape()
    assert value(after, accepted) == before + 1
    assert value(after, "gateway_ws_connections") >= 1
    assert value(after, "gateway_ws_subscriptions") >= 1
    assert "gateway_hub_publish_seconds_count" in after
    await ws.close()


async def test_one_info_line_per_webhook(gateway: GatewayClient, conversation: str) -> None:
    """A webhook's `ingest.*` line is its access line (method, path, status, duration); other
    routes keep `http.request`."""
    stream = io.StringIO()
    configure("json", "info", stream=stream)
    try:
        good = loopback_message(conversation, 1)
        bad = loopback_message(conversation, 2)
        bad["from"] = {"role": "wizard"}
        assert (await gateway.ingest("loopback", good))[0] == 202
        assert (await gateway.ingest("loopback", [good, bad]))[0] == 422
        assert (await gateway.get(f"/v1/conversations/loopback:{conversation}/events"))[0] == 200
    finally:
        configure("console", "info")
        reset()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    accepted, rejected, read = lines
    path = "/v1/dialects/loopback/events"
    assert accepted["event"] == "ingest.accepted" and accepted["accepted"] == 1
    assert (accepted["method"], accepted["path"], accepted["status"]) == ("POST", path, 202)
    assert accepted["dialect"] == "loopback" and accepted["duration_ms"] >= 0
    assert rejected["event"] == "ingest.rejected" and rejected["code"] == "INVALID_FRAME"
    assert (rejected["path"], rejected["status"], rejected["index"]) == (path, 422, 1)
    assert rejected["where"] == "$.from.role"
    assert rejected["request_id"] != accepted["request_id"]
    assert read["event"] == "http.request" and read["status"] == 200 and "dialect" not in read
