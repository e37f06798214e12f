"""The emulated platform speaks the chat WebSocket of the public integration notes ("Connecting
to Wonderful Agent Chat via WebSocket": subprotocol or header auth, `start`, `init`, `message`,
plain text, `transcript`, `turn_ended`, `communication_ended`) and our REST paths, errors
included."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient

from adapters.wonderful.emulator import GREETING, REJOIN_PARAM, SESSIONS, Emulator

CHAT = "/api/v1/agents/agent-1/chat"
AUTH = {"X-API-Key": "test-key"}


@pytest.fixture
async def client(emulator: Emulator, aiohttp_client: Any) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(emulator.app)
    return client


async def frames_until(ws: ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    """The frames up to and including the first of type `kind`."""
    out: list[dict[str, Any]] = []
    while not out or out[-1]["type"] != kind:
        out.append(await ws.receive_json(timeout=5))
    return out


async def started(client: TestClient[Any, Any]) -> str:
    """A session started over the socket (greeted, then closed); returns its id."""
    async with client.ws_connect(CHAT, params={"commType": "chat"}, headers=AUTH) as ws:
        start = await ws.receive_json(timeout=5)
        await frames_until(ws, "turn_ended")
    return str(start["communication_id"])


async def error_of(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["error"]["code"]


@pytest.mark.parametrize(
    ("protocols", "headers", "chosen"),
    [
        (("token", "test-key"), {}, "token"),
        (("apikey", "test-key"), {}, "apikey"),
        ((), {"X-API-Key": "test-key"}, None),
        ((), {"Authorization": "Bearer test-key"}, None),
    ],
)
async def test_a_session_over_the_socket(
    client: TestClient[Any, Any],
    emulator: Emulator,
    protocols: tuple[str, ...],
    headers: dict[str, str],
    chosen: str | None,
) -> None:
    """The notes' lifecycle: start, init, the greeting, a message and its echo, the agent's
    answer, `turn_ended`; the server picks the subprotocol scheme, as a browser requires."""
    async with client.ws_connect(CHAT, protocols=protocols, headers=headers) as ws:
        assert ws.protocol == chosen
        start = await ws.receive_json(timeout=5)
        assert start.keys() == {"type", "event", "communication_id"}
        assert (start["type"], start["event"]) == ("start", "start")
        sid = start["communication_id"]
        await ws.send_json({"type": "init", "metadata": {"from": "u-1", "from_type": "name"}})
        greeting = await frames_until(ws, "turn_ended")
        assert [f["type"] for f in greeting] == ["transcript", "turn_ended"]
        line = greeting[0]["data"]
        assert line.keys() == {
            "id", "communication_id", "speaker", "text", "created_at", "start_time",
            "end_time", "tool_details", "is_eot",
        }  # fmt: skip
        assert (line["communication_id"], line["speaker"], line["text"]) == (sid, "agent", GREETING)
        assert isinstance(line["created_at"], int) and line["created_at"] > 1e11  # epoch ms
        await ws.send_json({"type": "message", "text": "hi"})
        turn = await frames_until(ws, "turn_ended")
        said = [
            (f["data"]["speaker"], f["data"]["text"]) for f in turn if f["type"] == "transcript"
        ]
        assert said == [("customer", "hi"), ("agent", "echo: hi")]
    session = emulator.sessions[sid]
    assert session.metadata == {"from": "u-1", "from_type": "name"}
    assert session.received == [{"type": "message", "text": "hi"}]
    # the history holds the same lines, with the same ids and times, in the seed's form
    history = [(m["eventId"], m["speaker"], m["data"]["text"]) for m in session.messages]
    lines = [(f["data"]["id"], f["data"]["speaker"], f["data"]["text"]) for f in turn[:2]]
    assert history[1:] == lines


async def test_plain_text_is_a_user_message(client: TestClient[Any, Any]) -> None:
    """The notes: a frame that is not JSON, or JSON without `type`, is a plain text message."""
    async with client.ws_connect(CHAT, headers=AUTH) as ws:
        await frames_until(ws, "turn_ended")
        for frame, text in [("hello there", "hello there"), ('{"text": "x"}', '{"text": "x"}')]:
            await ws.send_str(frame)
            turn = await frames_until(ws, "turn_ended")
            assert turn[0]["data"]["speaker"] == "customer"
            assert turn[0]["data"]["text"] == text


@pytest.mark.parametrize(
    ("protocols", "headers"),
    [
        ((), {}),
        (("token", "nope"), {}),
        ((), {"X-API-Key": "nope"}),
        ((), {"Authorization": "Basic test-key"}),
    ],
)
async def test_the_socket_needs_a_credential(
    client: TestClient[Any, Any], protocols: tuple[str, ...], headers: dict[str, str]
) -> None:
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect(CHAT, protocols=protocols, headers=headers)
    assert refused.value.status == 401


async def test_bye_ends_the_communication(client: TestClient[Any, Any], emulator: Emulator) -> None:
    async with client.ws_connect(CHAT, headers=AUTH) as ws:
        sid = (await ws.receive_json(timeout=5))["communication_id"]
        await frames_until(ws, "turn_ended")
        await ws.send_json({"type": "message", "text": "bye"})
        frames = await frames_until(ws, "communication_ended")
        assert frames[-1] == {"type": "communication_ended"}
        assert [f["data"]["text"] for f in frames[:-1]] == ["bye", "Goodbye!"]
        assert (await ws.receive(timeout=5)).type is WSMsgType.CLOSE
    assert emulator.sessions[sid].status == "completed"


async def test_rejoin_a_session(client: TestClient[Any, Any], emulator: Emulator) -> None:
    """Ours: `communicationId` on the chat URL opens the socket back into a session; an ended
    one says so and closes; an unknown one is refused."""
    sid = await started(client)
    params = {"commType": "chat", REJOIN_PARAM: sid}
    async with client.ws_connect(CHAT, params=params, headers=AUTH) as ws:
        assert (await ws.receive_json(timeout=5))["communication_id"] == sid
        await emulator.agent_says(sid, "still here")
        [line, _] = await frames_until(ws, "turn_ended")
        assert line["data"]["text"] == "still here"
    assert len(emulator.sessions) == 1
    await emulator.end_session(sid)
    async with client.ws_connect(CHAT, params=params, headers=AUTH) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "start"
        assert (await ws.receive_json(timeout=5))["type"] == "communication_ended"
        assert (await ws.receive(timeout=5)).type is WSMsgType.CLOSE
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect(CHAT, params={REJOIN_PARAM: "nope"}, headers=AUTH)
    assert refused.value.status == 404


async def test_a_file_is_in_the_history_alone(
    client: TestClient[Any, Any], emulator: Emulator
) -> None:
    sid = await started(client)
    params = {REJOIN_PARAM: sid}
    async with client.ws_connect(CHAT, params=params, headers=AUTH) as ws:
        await ws.receive_json(timeout=5)
        data = {"type": "image", "mediaUrl": "https://x/a.png"}
        line = await emulator.agent_sends(sid, data)
        assert await ws.receive_json(timeout=5) == {"type": "turn_ended"}  # no transcript
    response = await client.get(f"{SESSIONS}/{sid}", headers=AUTH)
    messages = (await response.json())["messages"]
    assert (messages[-1]["eventId"], messages[-1]["data"]) == (line, data)


@pytest.mark.parametrize(
    "body",
    [{"type": "text"}, {"type": "image"}, {"type": "document", "fileName": "a"}, {"type": "voice"}],
)
async def test_send_validation(client: TestClient[Any, Any], body: dict[str, Any]) -> None:
    sid = await started(client)
    response = await client.post(f"{SESSIONS}/{sid}/messages", json=body, headers=AUTH)
    assert await error_of(response) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"X-API-Key": "x"}])
async def test_rest_needs_a_key(client: TestClient[Any, Any], headers: dict[str, str]) -> None:
    assert await error_of(await client.get(f"{SESSIONS}/x", headers=headers)) == (
        401,
        "UNAUTHORIZED",
    )


async def test_unknown_sessions(client: TestClient[Any, Any]) -> None:
    for method, path in [("GET", ""), ("POST", "/messages"), ("POST", "/end")]:
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
