"""signalwire encoding: canonical commands to the platform's REST requests. Pure, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.signalwire import SignalWireAdapter
from adapters.signalwire.encode import history_request
from gateway.adapter import NativeRequest
from gateway.errors import GatewayError, RequestError, Unsupported
from gateway.model import (
    End,
    Forward,
    Image,
    MarkRead,
    Participant,
    Recover,
    Send,
    SetTyping,
    Start,
    Text,
    Url,
)

ADAPTER = SignalWireAdapter()

SESSION = {"address_id": "addr-1", "conversation": "addr-1"}
GROUP = {
    "address_id": "addr-1",
    "group_id": "g-1",
    "from_address_id": "me-1",
    "conversation": "g-1",
}
START = Start(dialect="signalwire", participant=Participant(from_="Ann"), agent_id="addr-1")


@pytest.mark.parametrize(
    ("command", "session", "request_"),
    [
        (
            START,
            {},
            NativeRequest(
                path="/api/fabric/conversations/join", json={"conversation_id": "addr-1"}
            ),
        ),
        (
            Start(dialect="signalwire", participant=Participant(from_="Ann", to="addr-2")),
            {},
            NativeRequest(
                path="/api/fabric/conversations/join", json={"conversation_id": "addr-2"}
            ),
        ),
        (
            Start(dialect="signalwire", participant=Participant(from_="Ann")),
            {"agent_id": "addr-3"},
            NativeRequest(
                path="/api/fabric/conversations/join", json={"conversation_id": "addr-3"}
            ),
        ),
        (
            START,
            {"from_address_id": "me-1"},
            NativeRequest(
                path="/api/fabric/conversations/join",
                json={"from_fabric_address_id": "me-1", "fabric_address_ids": ["addr-1", "me-1"]},
            ),
        ),
        (
            Send(conversation="signalwire:g-1", content=Text("hello")),
            GROUP,
            NativeRequest(
                path="/api/fabric/messages",
                json={"group_id": "g-1", "text": "hello", "from_fabric_address_id": "me-1"},
            ),
        ),
        (
            Recover(conversation="signalwire:g-1"),
            GROUP,
            NativeRequest(
                method="GET",
                path="/api/fabric/conversations/g-1/messages",
                query={"page_size": "10"},
            ),
        ),
        (
            Send(conversation="signalwire:addr-1", content=Text("hello")),
            SESSION,
            NativeRequest(
                path="/api/fabric/messages", json={"conversation_id": "addr-1", "text": "hello"}
            ),
        ),
        (
            Send(
                conversation="signalwire:g-1",
                content=Text("hello"),
                metadata={"order": 7, "details": {"status": "sent"}},
            ),
            GROUP,
            NativeRequest(
                path="/api/fabric/messages",
                json={
                    "group_id": "g-1",
                    "text": "hello",
                    "from_fabric_address_id": "me-1",
                    "metadata": {"order": 7},
                    "details": {"status": "sent"},
                },
            ),
        ),
        (
            Send(conversation="signalwire:addr-1", content=Text("hi"), metadata={"order": 7}),
            SESSION,
            NativeRequest(
                path="/api/fabric/messages",
                json={"conversation_id": "addr-1", "text": "hi", "metadata": {"order": 7}},
            ),
        ),
        (
            Recover(conversation="signalwire:addr-1"),
            SESSION,
            NativeRequest(
                method="GET",
                path="/api/fabric/conversations/addr-1/messages",
                query={"page_size": "10"},
            ),
        ),
    ],
)
def test_encode(command: Any, session: dict[str, Any], request_: NativeRequest) -> None:
    assert ADAPTER.encode(command, session) == request_


@pytest.mark.parametrize(
    ("command", "session", "error", "code"),
    [
        (
            Start(dialect="signalwire", participant=Participant(from_="Ann")),
            {},
            RequestError,
            "MISSING_ADDRESS",
        ),
        (Send(conversation="c", content=Text("  ")), SESSION, RequestError, "INVALID_REQUEST"),
        (Send(conversation="c", content=Text("hi")), {}, GatewayError, "SESSION_NOT_FOUND"),
        (Send(conversation="c", content=Url("https://x")), SESSION, Unsupported, "UNSUPPORTED"),
        (
            Send(conversation="c", content=Image(url="https://x")),
            SESSION,
            Unsupported,
            "UNSUPPORTED",
        ),
        (
            Send(conversation="c", content=Text("hi"), metadata={"details": "x"}),
            SESSION,
            RequestError,
            "INVALID_REQUEST",
        ),
        (SetTyping(conversation="c"), SESSION, Unsupported, "UNSUPPORTED"),
        (MarkRead(conversation="c"), SESSION, Unsupported, "UNSUPPORTED"),
        (End(conversation="c"), SESSION, Unsupported, "UNSUPPORTED"),
        (Forward(conversation="c", destination="d"), SESSION, Unsupported, "UNSUPPORTED"),
    ],
)
def test_encode_refusals(
    command: Any, session: dict[str, Any], error: type[GatewayError], code: str
) -> None:
    with pytest.raises(error) as info:
        ADAPTER.encode(command, session)
    assert info.value.code == code


def test_history_request_validates_page_size() -> None:
    assert history_request("a", 3).query == {"page_size": "3"}
    with pytest.raises(RequestError):
        history_request("a", 0)


def test_describe() -> None:
    assert ADAPTER.describe() == {
        "name": "signalwire",
        "capabilities": ["history", "ingest", "recover", "send", "start"],
        "content_kinds": ["text"],
        "typing_preview": False,
    }
