"""The emulator behaves as the platform's documents say (auth, long poll, history, files)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.server_events.emulator import Emulator
from adapters.server_events.errors import vendor_error
from gateway.errors import NotFound, PayloadTooLarge, SessionNotFound, VendorError

API = "/clientweb/api/v2"
AUTH = {"Authorization": 'MOBILE-API-140-327-PLAIN appId="app", clientId="c-1"'}
NONCE = "nonce=1700000000123"  # Android's cache-buster (URLProvider.generateFullUrl)


@pytest.fixture
async def platform(aiohttp_client: Any) -> tuple[Emulator, Any]:
    emulator = Emulator(app_id="app", poll_hold=0.2, agent_delay=0, greeting=None)
    return emulator, await aiohttp_client(emulator.app)


async def error_code(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["error_code"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (401, "2000")),
        ({"Authorization": "Bearer x"}, (401, "2001")),
        ({"Authorization": 'MOBILE-API-140-327-PLAIN appId="app", clientId=""'}, (401, "2002")),
        ({"Authorization": 'MOBILE-API-140-327-PLAIN appId="x", clientId="c"'}, (403, "3000")),
        ({"Authorization": "MOBILE-API-140-327-PLAIN appId=x, clientId=c"}, (403, "3000")),
    ],
)
async def test_auth_header(platform: Any, headers: dict[str, str], expected: Any) -> None:
    _, client = platform
    assert await error_code(await client.get(f"{API}/availability", headers=headers)) == expected


async def test_tenant_is_checked_when_configured(aiohttp_client: Any) -> None:
    client = await aiohttp_client(Emulator(app_id="app", tenant="t1").app)
    response = await client.get(f"{API}/availability", headers=AUTH)
    assert await error_code(response) == (400, "1000")
    response = await client.get(f"{API}/availability?tenantUrl=t1", headers=AUTH)
    assert await response.json() == {"chat": "available", "ewt": "0"}


async def test_the_sdks_unquoted_header_is_accepted(platform: Any) -> None:
    """Both SDKs send the values bare (Android `HttpHeaderType.kt`, iOS `HttpHeaderFields.swift`)."""
    _, client = platform
    bare = {"Authorization": "MOBILE-API-140-327-PLAIN appId=app, clientId=c-1"}
    response = await client.get(f"{API}/availability", headers=bare)
    assert await response.json() == {"chat": "available", "ewt": "0"}


async def test_only_v2_is_served(platform: Any) -> None:
    _, client = platform
    response = await client.get("/clientweb/api/v1/availability", headers=AUTH)
    assert response.status == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", (400, "5003")), ("?nonce=abc", (400, "5003")), (f"?{NONCE}", None)],
)
async def test_a_poll_needs_a_cache_buster(platform: Any, query: str, expected: Any) -> None:
    _, client = platform
    chat_id = await start(client)
    response = await client.get(f"{API}/chats/{chat_id}/events{query}", headers=AUTH)
    if expected is None:
        assert response.status == 200
    else:
        assert await error_code(response) == expected


async def test_timestamp_is_a_cache_buster_too(platform: Any) -> None:
    _, client = platform
    chat_id = await start(client)
    query = "?timestamp=1700000000123"
    response = await client.get(f"{API}/chats/{chat_id}/events{query}", headers=AUTH)
    assert response.status == 200


async def test_a_lenient_emulator_takes_a_poll_without_one(aiohttp_client: Any) -> None:
    emulator = Emulator(app_id="app", agent_delay=0, greeting=None, require_cache_buster=False)
    client = await aiohttp_client(emulator.app)
    chat_id = await start(client)
    response = await client.get(f"{API}/chats/{chat_id}/events", headers=AUTH)
    assert response.status == 200


async def start(client: Any) -> str:
    response = await client.post(f"{API}/chats", json={"from": "Ann"}, headers=AUTH)
    created = await response.json()
    assert created["state"] == "queued"
    assert created["is_new_chat"] is True
    return str(created["chat_id"])


async def test_a_second_concurrent_poll_is_refused_and_a_poll_times_out(platform: Any) -> None:
    emulator, client = platform
    chat_id = await start(client)
    first = await client.get(f"{API}/chats/{chat_id}/events?{NONCE}", headers=AUTH)  # the join
    assert [e["event"] for e in (await first.json())["events"]] == [
        "chat_session_status",
        "chat_session_party_joined",
    ]
    held = asyncio.create_task(client.get(f"{API}/chats/{chat_id}/events?{NONCE}", headers=AUTH))
    await emulator.until(lambda: emulator.chats[chat_id].polls == 1)
    second = await client.get(f"{API}/chats/{chat_id}/events?{NONCE}", headers=AUTH)
    assert await error_code(second) == (400, "5509")
    assert await error_code(await held) == (400, "5511")  # held poll_hold, nothing came


async def test_history_has_client_events_but_never_signaling(platform: Any) -> None:
    emulator, client = platform
    chat_id = await start(client)
    events = [
        {"event": "chat_session_message", "msg_id": "u1", "msg": "hello"},
        {
            "event": "chat_session_signaling",
            "msg_id": "s1",
            "destination_party_id": "agent-1",
            "data": "offer",
        },
        {"event": "chat_session_typing"},
    ]
    response = await client.post(
        f"{API}/chats/{chat_id}/events", json={"events": events}, headers=AUTH
    )
    assert response.status == 200
    await emulator.until(
        lambda: any(e.get("msg") == "echo: hello" for e in emulator.chats[chat_id].history)
    )
    history = (await (await client.get(f"{API}/chats/{chat_id}/history", headers=AUTH)).json())[
        "events"
    ]
    names = [e["event"] for e in history]
    assert "chat_session_signaling" not in names
    assert {"chat_session_message", "chat_session_typing"} <= set(names)
    own = next(e for e in history if e.get("msg_id") == "u1")
    assert own["party_id"] == chat_id  # the client's party is the chat
    assert own["timestamp"].isdigit()
    assert emulator.received(chat_id) == events


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("chats/nope/events", {"events": []}, (404, "5005")),
        ("chats/{chat}/events", {"events": "x"}, (400, "5003")),
        ("chats/{chat}/events", {"events": [{"no": "event"}]}, (400, "5003")),
        ("chats", {"no": "from"}, (400, "5003")),
    ],
)
async def test_client_errors(platform: Any, path: str, body: Any, expected: Any) -> None:
    _, client = platform
    chat_id = await start(client)
    response = await client.post(f"{API}/{path.format(chat=chat_id)}", json=body, headers=AUTH)
    assert await error_code(response) == expected


async def test_files(aiohttp_client: Any) -> None:
    emulator = Emulator(app_id="app", max_upload=4)
    client = await aiohttp_client(emulator.app)
    from aiohttp import FormData

    small, big, misnamed = FormData(), FormData(), FormData()
    small.add_field("file-upload-input", b"abc", filename="a.txt", content_type="text/plain")
    big.add_field("file-upload-input", b"abcdef", filename="b.txt")
    misnamed.add_field("file", b"abc", filename="a.txt")
    uploaded = await (await client.post(f"{API}/files", data=small, headers=AUTH)).json()
    assert uploaded["file_name"] == "a.txt"  # Android's ContactCenterUploadedFileInfo
    file_id = uploaded["file_id"]
    assert await error_code(await client.post(f"{API}/files", data=misnamed, headers=AUTH)) == (
        400,
        "5003",
    )
    assert await error_code(await client.post(f"{API}/files", data=big, headers=AUTH)) == (
        413,
        "5501",
    )
    got = await client.get(f"/clientweb/file/{file_id}", headers=AUTH)
    assert await got.read() == b"abc"
    assert got.content_type == "text/plain"
    assert await error_code(await client.get("/clientweb/file/none", headers=AUTH)) == (404, "5502")


@pytest.mark.parametrize(
    ("code", "error", "canonical"),
    [
        ("5005", SessionNotFound, "SESSION_NOT_FOUND"),
        ("5006", NotFound, "NOT_FOUND"),
        ("5502", NotFound, "NOT_FOUND"),
        ("5501", PayloadTooLarge, "PAYLOAD_TOO_LARGE"),
        ("3000", VendorError, "VENDOR_AUTH"),
        ("2003", VendorError, "VENDOR_AUTH"),
        ("1000", VendorError, "VENDOR_AUTH"),
        ("5003", VendorError, "VENDOR_REJECTED"),
        ("5509", VendorError, "VENDOR_BUSY"),
        ("5511", VendorError, "NO_EVENTS"),
        ("5001", VendorError, "VENDOR_UNAVAILABLE"),
        ("5500", VendorError, "VENDOR_UNAVAILABLE"),
        ("9999", VendorError, "VENDOR_UNAVAILABLE"),
    ],
)
def test_error_mapping(code: str, error: type[Exception], canonical: str) -> None:
    mapped = vendor_error(code, "text", 400)
    assert type(mapped) is error
    assert mapped.code == canonical
    assert mapped.details == {"vendor_code": code, "http_status": 400}
