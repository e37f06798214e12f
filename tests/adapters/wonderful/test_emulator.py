"""The emulated platform answers as the adapter's wire definition says, errors included."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from adapters.wonderful.emulator import SESSIONS, Emulator

AUTH = {"Authorization": "Bearer test-key"}
START = {"from": "+1234567890", "fromType": "phone", "metadata": {"from": "+1234567890"}}


@pytest.fixture
async def client(emulator: Emulator, aiohttp_client: Any) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(emulator.app)
    return client


async def started(client: TestClient[Any, Any]) -> str:
    response = await client.post(SESSIONS, json=START, headers=AUTH)
    assert response.status == 201
    body = await response.json()
    assert (body["status"], body["participant"]) == (
        "in-progress",
        {"from": "+1234567890", "fromType": "phone"},
    )
    return str(body["sessionId"])


async def error_of(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["error"]["code"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "x"}])
async def test_requests_need_a_key(client: TestClient[Any, Any], headers: dict[str, str]) -> None:
    assert await error_of(await client.post(SESSIONS, json=START, headers=headers)) == (
        401,
        "UNAUTHORIZED",
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"fromType": "phone"}, 400, "MISSING_PARTICIPANT"),
        ({"from": "u"}, 400, "MISSING_PARTICIPANT"),
        ({"from": "u", "fromType": "fax"}, 400, "INVALID_REQUEST"),
        ([], 400, "MISSING_PARTICIPANT"),
    ],
)
async def test_start_errors(
    client: TestClient[Any, Any], body: Any, status: int, code: str
) -> None:
    assert await error_of(await client.post(SESSIONS, json=body, headers=AUTH)) == (status, code)


@pytest.mark.parametrize(
    "body",
    [{"type": "text"}, {"type": "image"}, {"type": "document", "fileName": "a"}, {"type": "voice"}],
)
async def test_send_validation(client: TestClient[Any, Any], body: dict[str, Any]) -> None:
    sid = await started(client)
    response = await client.post(f"{SESSIONS}/{sid}/messages", json=body, headers=AUTH)
    assert await error_of(response) == (400, "INVALID_REQUEST")


async def test_unknown_sessions(client: TestClient[Any, Any]) -> None:
    for method, path in [("GET", ""), ("POST", "/messages"), ("POST", "/end"), ("GET", "/ws")]:
        response = await client.request(method, f"{SESSIONS}/nope{path}", json={}, headers=AUTH)
        assert await error_of(response) == (404, "SESSION_NOT_FOUND")


async def test_forward_needs_a_destination_and_ends(
    client: TestClient[Any, Any], emulator: Emulator
) -> None:
    sid = await started(client)
    response = await client.post(f"{SESSIONS}/{sid}/forward", json={}, headers=AUTH)
    assert await error_of(response) == (400, "INVALID_REQUEST")
    response = await client.post(
        f"{SESSIONS}/{sid}/forward", json={"destination": "t"}, headers=AUTH
    )
    assert response.status == 200
    assert emulator.sessions[sid].status == "completed"
    response = await client.post(f"{SESSIONS}/{sid}/end", headers=AUTH)
    assert await error_of(response) == (409, "SESSION_ENDED")


async def test_socket_with_a_token_greets_and_echoes(client: TestClient[Any, Any]) -> None:
    sid = await started(client)
    async with client.ws_connect(f"{SESSIONS}/{sid}/ws?token=test-key") as ws:
        connected = await ws.receive_json(timeout=5)
        assert connected["type"] == "connected"
        assert connected["data"]["sessionId"] == sid
        await client.post(
            f"{SESSIONS}/{sid}/messages", json={"type": "text", "text": "hi"}, headers=AUTH
        )
        seen: list[tuple[str, str]] = []
        while ("agent", "echo: hi") not in seen:
            frame = await ws.receive_json(timeout=5)
            if frame["type"] == "message":
                seen.append((frame["data"]["speaker"], frame["data"]["data"]["text"]))
        assert ("customer", "hi") in seen


async def test_a_socket_to_an_ended_session_closes(
    client: TestClient[Any, Any], emulator: Emulator
) -> None:
    sid = await started(client)
    await emulator.end_session(sid)
    async with client.ws_connect(f"{SESSIONS}/{sid}/ws", headers=AUTH) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "connected"
        assert (await ws.receive(timeout=5)).type is WSMsgType.CLOSE


async def test_a_repeated_idempotency_key_is_carried_out_once(
    emulator: Emulator, client: TestClient[Any, Any]
) -> None:
    sid = await started(client)
    path = f"{SESSIONS}/{sid}/messages"
    once = {**AUTH, "Idempotency-Key": "k1"}
    first = await client.post(path, json={"type": "text", "text": "a"}, headers=once)
    again = await client.post(path, json={"type": "text", "text": "a"}, headers=once)
    assert first.status == again.status == 200
    assert await first.json() == await again.json()
    other = await client.post(path, json={"type": "text", "text": "a"}, headers=AUTH)
    assert (await other.json())["eventId"] != (await first.json())["eventId"]
    assert emulator.sessions[sid].received == [{"type": "text", "text": "a"}] * 2
    # a refusal is not kept: the same key, now valid, is carried out
    bad = {**AUTH, "Idempotency-Key": "k2"}
    assert await error_of(await client.post(path, json={"type": "text"}, headers=bad)) == (
        400,
        "INVALID_REQUEST",
    )
    assert (await client.post(path, json={"type": "text", "text": "b"}, headers=bad)).status == 200
    assert [r.key for r in emulator.received[-5:]] == ["k1", "k1", None, "k2", "k2"]


async def test_a_lost_answer_is_a_502_after_the_work_is_done(
    emulator: Emulator, client: TestClient[Any, Any]
) -> None:
    sid = await started(client)
    emulator.lose_answers(1)
    path = f"{SESSIONS}/{sid}/messages"
    headers = {**AUTH, "Idempotency-Key": "k"}
    lost = await client.post(path, json={"type": "text", "text": "x"}, headers=headers)
    assert await error_of(lost) == (502, "BAD_GATEWAY")
    assert (await client.post(path, json={"type": "text", "text": "x"}, headers=headers)).ok
    assert emulator.sessions[sid].received == [{"type": "text", "text": "x"}]
