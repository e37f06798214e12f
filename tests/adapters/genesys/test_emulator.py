"""The GMS emulator's own wire behaviour (paths, envelopes, documented errors), raw HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.genesys.emulator import Emulator

Client = TestClient[Any, Any]


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], emulator: Emulator) -> Client:
    result: Client = await aiohttp_client(emulator.app)
    return result


async def post(client: Client, path: str, **form: Any) -> tuple[int, dict[str, Any]]:
    async with client.post(path, data=form) as response:
        return response.status, await response.json()


async def start(client: Client, emulator: Emulator) -> dict[str, Any]:
    status, body = await post(client, emulator.path, nickname="Bob", **{"userData[Order]": "7"})
    assert status == 200
    return body


def auth(chat: dict[str, Any], **form: Any) -> dict[str, Any]:
    keys = {"userId": chat["userId"], "secureKey": chat["secureKey"], "alias": chat["alias"]}
    return {**keys, **form}


async def test_request_chat_envelope(client: Client, emulator: Emulator) -> None:
    """The keys of the GMS v2 docs' sample reply to Request Chat, and no others (no
    `nextPosition`, no `chatEnded`: the connector must do without them)."""
    chat = await start(client, emulator)
    assert chat["statusCode"] == 0
    assert chat.keys() == {"statusCode", "alias", "userId", "secureKey", "messages", "chatId"}
    (joined,) = chat["messages"]
    assert (joined["type"], joined["index"]) == ("ParticipantJoined", 1)
    assert joined["from"] == {"nickname": "Bob", "participantId": 1, "type": "Client"}
    assert emulator.sessions[chat["chatId"]].form["userData[Order]"] == "7"


async def test_commands_return_the_transcript_only_when_asked(
    client: Client, emulator: Emulator
) -> None:
    """The docs on `transcriptPosition`: "Including this parameter enables the return of the
    transcript"; a refresh returns it from 1 without one."""
    chat = await start(client, emulator)
    path = f"{emulator.path}/{chat['chatId']}"
    _, body = await post(client, f"{path}/startTyping", **auth(chat))
    assert (body["statusCode"], body["messages"]) == (0, [])
    _, body = await post(client, f"{path}/stopTyping", **auth(chat, transcriptPosition=2))
    assert [m["type"] for m in body["messages"]][-1] == "TypingStopped"
    assert body["nextPosition"] == body["messages"][-1]["index"] + 1
    _, body = await post(client, f"{path}/refresh", **auth(chat))
    assert body["messages"][0]["index"] == 1


async def test_a_chat_ended_by_error(client: Client, emulator: Emulator) -> None:
    chat = await start(client, emulator)
    emulator.fail_session(chat["chatId"], code=100)
    _, body = await post(client, f"{emulator.path}/{chat['chatId']}/refresh", **auth(chat))
    assert (body["statusCode"], body["chatEnded"], body["errors"]) == (
        2,
        True,
        [{"code": 100, "advice": "chat ended by error"}],
    )
    assert body["messages"][0]["index"] == 1


async def test_refresh_from_a_position(client: Client, emulator: Emulator) -> None:
    chat = await start(client, emulator)
    path = f"{emulator.path}/{chat['chatId']}"
    await emulator.agent_says(chat["chatId"], "hi")
    _, body = await post(client, f"{path}/refresh", **auth(chat, transcriptPosition=2))
    assert [m["index"] for m in body["messages"]] == list(range(2, body["nextPosition"]))
    assert all(isinstance(m["utcTime"], int) for m in body["messages"])


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secureKey": "wrong"}, 3),
        ({"alias": "999"}, 3),
        ({"transcriptPosition": "x"}, 3),
    ],
)
async def test_documented_errors(
    client: Client, emulator: Emulator, change: dict[str, str], code: int
) -> None:
    chat = await start(client, emulator)
    status, body = await post(
        client, f"{emulator.path}/{chat['chatId']}/refresh", **{**auth(chat), **change}
    )
    assert (status, body["statusCode"], body["errors"][0]["code"]) == (200, 2, code)


async def test_missing_and_unknown(client: Client, emulator: Emulator) -> None:
    _, body = await post(client, emulator.path)
    assert body["errors"][0]["code"] == 2  # nickname is mandatory
    _, body = await post(client, f"{emulator.path}/NOPE/refresh", userId="u", secureKey="k")
    assert body["errors"][0]["code"] == 50
    chat = await start(client, emulator)
    _, body = await post(client, f"{emulator.path}/{chat['chatId']}/pushUrl", **auth(chat))
    assert body["errors"][0]["code"] == 1
    _, body = await post(client, f"{emulator.path}/{chat['chatId']}/send", **auth(chat))
    assert body["errors"][0]["code"] == 2  # message is mandatory


async def test_a_body_that_is_no_form_is_refused(client: Client, emulator: Emulator) -> None:
    """GMS takes form-encoded (or multipart) parameters only: a JSON body is a 415."""
    async with client.post(emulator.path, json={"nickname": "Bob"}) as response:
        assert response.status == 415
    chat = await start(client, emulator)
    async with client.post(f"{emulator.path}/{chat['chatId']}/refresh", json=auth(chat)) as r:
        assert r.status == 415
    assert [r.op for r in emulator.received] == ["requestChat"]


async def test_stale_alias_is_honoured_once(client: Client, emulator: Emulator) -> None:
    chat = await start(client, emulator)
    new = emulator.move_session(chat["chatId"])
    path = f"{emulator.path}/{chat['chatId']}/refresh"
    _, body = await post(client, path, **auth(chat))
    assert (body["statusCode"], body["alias"]) == (0, new)
    _, body = await post(client, path, **auth(chat))
    assert body["statusCode"] == 2
    _, body = await post(client, path, **auth(chat, alias=new))
    assert body["statusCode"] == 0


async def test_api_key_is_checked(client: Client, emulator: Emulator) -> None:
    emulator.api_key = "k"
    status, body = await post(client, emulator.path, nickname="Bob")
    assert (status, body["errors"][0]["code"]) == (401, 101)
    async with client.post(emulator.path, data={"nickname": "Bob"}, headers={"apikey": "k"}) as r:
        assert r.status == 200


async def test_scripted_agent_and_disconnect(client: Client, emulator: Emulator) -> None:
    chat = await start(client, emulator)
    chat_id = chat["chatId"]
    session = emulator.sessions[chat_id]
    form = auth(chat, message="yo", transcriptPosition=1)
    _, body = await post(client, f"{emulator.path}/{chat_id}/send", **form)
    assert body["messages"][-1]["text"] == "yo"
    async with asyncio.timeout(5):
        await emulator.wait_until(lambda: session.transcript[-1].get("text") == "echo: yo")
    assert [e["type"] for e in session.transcript[-2:]] == ["TypingStarted", "Message"]
    _, body = await post(client, f"{emulator.path}/{chat_id}/disconnect", **auth(chat))
    assert body["chatEnded"] is True
    _, body = await post(client, f"{emulator.path}/{chat_id}/send", **auth(chat, message="late"))
    assert (body["statusCode"], body["chatEnded"]) == (2, True)
