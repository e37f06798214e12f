"""Encode tables: every command into its native request, and every refusal."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from adapters.server_events import ServerEventsAdapter, encode
from adapters.server_events import native as n
from gateway.errors import GatewayError, RequestError, SessionNotFound, Unsupported
from gateway.model import (
    Action,
    Audio,
    Command,
    End,
    File,
    Forward,
    Image,
    Location,
    MarkRead,
    Participant,
    Recover,
    Send,
    SetTyping,
    Start,
    Text,
    Url,
)

CONV = "server_events:c1"
SESSION = {"chat_id": "c1", "last_msg_id": "a-9"}
EVENTS = "chats/c1/events"
adapter = ServerEventsAdapter()


def send(content: Any, **kw: Any) -> Send:
    return Send(conversation=CONV, content=content, metadata={"msg_id": "m1"}, **kw)


# (command, the one client event POSTed to chats/c1/events)
EVENT_TABLE: list[tuple[Command, dict[str, Any]]] = [
    (send(Text("hi")), {"event": "chat_session_message", "msg_id": "m1", "msg": "hi"}),
    (
        send(Url(url="https://x.example", text="see")),
        {"event": "chat_session_message", "msg_id": "m1", "msg": "see https://x.example"},
    ),
    (
        send(Url(url="https://x.example")),
        {"event": "chat_session_message", "msg_id": "m1", "msg": "https://x.example"},
    ),
    (
        send(Image(file_id="f1", file_name="a.png")),
        {
            "event": "chat_session_file",
            "file_id": "f1",
            "file_type": "image",
            "msg_id": "m1",
            "file_name": "a.png",
        },
    ),
    (
        send(File(file_id="f2")),
        {"event": "chat_session_file", "file_id": "f2", "file_type": "attachment", "msg_id": "m1"},
    ),
    (
        send(Location(latitude=1.5, longitude=-2.0, url="https://maps")),
        {
            "event": "chat_session_location",
            "msg_id": "m1",
            "latitude": 1.5,
            "longitude": -2.0,
            "url": "https://maps",
        },
    ),
    (SetTyping(conversation=CONV), {"event": "chat_session_typing"}),
    (SetTyping(conversation=CONV, active=False), {"event": "chat_session_not_typing"}),
    (
        MarkRead(conversation=CONV, up_to=f"{CONV}/a-3"),
        {"event": "chat_session_message_read", "ref_msg_id": "a-3"},
    ),
    (MarkRead(conversation=CONV), {"event": "chat_session_message_read", "ref_msg_id": "a-9"}),
    (End(conversation=CONV), {"event": "chat_session_end"}),
]


@pytest.mark.parametrize(("command", "event"), EVENT_TABLE)
def test_encode_events(command: Command, event: dict[str, Any]) -> None:
    request = adapter.encode(command, SESSION)
    assert (request.method, request.path, request.json) == ("POST", EVENTS, {"events": [event]})


def test_encode_start() -> None:
    start = Start(
        dialect="server_events",
        participant=Participant(from_="+15550100", from_type="phone", name="Ann"),
        subject="billing",
        metadata={"order": "42"},
    )
    request = adapter.encode(start, {})
    assert (request.method, request.path) == ("POST", "chats")
    assert request.json == {
        "from": "+15550100",
        "phone_number": "+15550100",
        "parameters": {"locale": "en-US", "name": "Ann", "subject": "billing", "order": "42"},
    }


def test_msg_id_follows_ref_so_a_retry_dedups() -> None:
    first = encode.sent_msg_id(
        adapter.encode(Send(conversation=CONV, content=Text("a"), ref="r1"), SESSION)
    )
    again = encode.sent_msg_id(
        adapter.encode(Send(conversation=CONV, content=Text("a"), ref="r1"), SESSION)
    )
    other = encode.sent_msg_id(
        adapter.encode(Send(conversation=CONV, content=Text("a"), ref="r2"), SESSION)
    )
    fresh = encode.sent_msg_id(adapter.encode(Send(conversation=CONV, content=Text("a")), SESSION))
    assert first == again != other
    assert fresh is not None
    assert uuid.UUID(fresh)


@pytest.mark.parametrize(
    ("command", "session", "error", "field"),
    [
        (send(Text("  ")), SESSION, RequestError, "content.text"),
        (send(Url(url="")), SESSION, RequestError, "content.url"),
        (send(Image(url="https://x/a.png")), SESSION, RequestError, "content.file_id"),
        (send(File(url="https://x/a.pdf")), SESSION, RequestError, "content.file_id"),
        (
            MarkRead(conversation=CONV, up_to="server_events:other/a-1"),
            SESSION,
            RequestError,
            "up_to",
        ),
        (MarkRead(conversation=CONV, up_to=f"{CONV}/"), SESSION, RequestError, "up_to"),
        (MarkRead(conversation=CONV), {"chat_id": "c1"}, RequestError, "up_to"),
        (End(conversation="server_events:c2"), SESSION, RequestError, "conversation"),
        (End(conversation=CONV), {}, SessionNotFound, None),
    ],
)
def test_encode_refusals(
    command: Command, session: dict[str, Any], error: type[GatewayError], field: str | None
) -> None:
    with pytest.raises(error) as info:
        adapter.encode(command, session)
    assert info.value.details.get("field") == field
    assert info.value.code in ("INVALID_REQUEST", "SESSION_NOT_FOUND")


@pytest.mark.parametrize(
    "command",
    [
        Forward(conversation=CONV, destination="billing"),
        Recover(conversation=CONV),
        send(Audio(url="https://x/a.ogg", voice=True)),
        send(Action(action="hangup")),
    ],
)
def test_unsupported(command: Command) -> None:
    with pytest.raises(Unsupported) as info:
        adapter.encode(command, SESSION)
    assert info.value.code == "UNSUPPORTED"


def test_client_events_without_a_canonical_command() -> None:
    """Form data, delivered receipts, signaling and disconnect: connector methods use these."""
    request = encode.events_request(
        "c1",
        n.ClientFormData(form_request_id="r", form_name="f", data={"email": "a@b"}),
        n.ClientDelivered(ref_msg_id="a-1"),
        n.ClientSignaling(msg_id="s1", destination_party_id="p1", data={"sdp": "v=0"}),
        n.ClientDisconnect(),
    )
    assert request.json == {
        "events": [
            {
                "event": "chat_session_form_data",
                "form_request_id": "r",
                "form_name": "f",
                "data": {"email": "a@b"},
            },
            {"event": "chat_session_message_delivered", "ref_msg_id": "a-1"},
            {
                "event": "chat_session_signaling",
                "msg_id": "s1",
                "destination_party_id": "p1",
                "data": {"sdp": "v=0"},
            },
            {"event": "chat_session_disconnect"},
        ]
    }


def test_adapter_describes_itself() -> None:
    described = adapter.describe()
    assert described["name"] == "server_events"
    assert "forward" not in described["capabilities"]
    assert set(described["content_kinds"]) == {"text", "url", "image", "file", "location"}
