"""The genesys encoder: every command into its GMS request, every validation error. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.genesys import GenesysAdapter
from gateway.adapter import NativeRequest
from gateway.errors import GatewayError, RequestError, SessionNotFound, Unsupported
from gateway.model import (
    Command,
    End,
    File,
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

ADAPTER = GenesysAdapter()
SESSION = {"chat_id": "c1", "user_id": "u1", "secure_key": "k1", "alias": "117", "position": 4}
AUTH = {"userId": "u1", "secureKey": "k1", "alias": "117", "transcriptPosition": "4"}


def start(**kw: Any) -> Start:
    fields: dict[str, Any] = {"dialect": "genesys", "participant": Participant(from_="Bob")}
    return Start(**{**fields, **kw})


ENCODE_TABLE: list[tuple[str, Command, NativeRequest]] = [
    ("start with a name", start(), NativeRequest(path="", form={"nickname": "Bob"})),
    (
        "start with everything",
        start(
            participant=Participant(
                from_="bob@example.com", from_type="email", name="Bob B", phone="+15550100"
            ),
            subject="Refund",
            metadata={"firstName": "Bob", "lastName": "B", "OrderId": 42, "Vip": True},
        ),
        NativeRequest(
            path="",
            form={
                "nickname": "Bob B",
                "firstName": "Bob",
                "lastName": "B",
                "emailAddress": "bob@example.com",
                "subject": "Refund",
                "userData[OrderId]": "42",
                "userData[Vip]": "true",
                "userData[PhoneNumber]": "+15550100",
            },
        ),
    ),
    (
        "start by phone, first and last name only",
        start(
            participant=Participant(from_="", from_type="phone", phone="+1555"),
            metadata={"firstName": "A", "lastName": "B"},
        ),
        NativeRequest(
            path="", form={"firstName": "A", "lastName": "B", "userData[PhoneNumber]": "+1555"}
        ),
    ),
    (
        "send text",
        Send(conversation="genesys:c1", content=Text(text="hello")),
        NativeRequest(path="/c1/send", form={**AUTH, "message": "hello", "messageType": "text"}),
    ),
    (
        "send url",
        Send(conversation="genesys:c1", content=Url(url="https://x.io/a", text="see")),
        NativeRequest(
            path="/c1/send", form={**AUTH, "message": "https://x.io/a", "messageType": "url"}
        ),
    ),
    (
        "typing on with a preview",
        SetTyping(conversation="genesys:c1", preview="hel"),
        NativeRequest(path="/c1/startTyping", form={**AUTH, "message": "hel"}),
    ),
    (
        "typing off",
        SetTyping(conversation="genesys:c1", active=False),
        NativeRequest(path="/c1/stopTyping", form=AUTH),
    ),
    ("end", End(conversation="genesys:c1"), NativeRequest(path="/c1/disconnect", form=AUTH)),
]


@pytest.mark.parametrize(
    ("command", "expected"), [c[1:] for c in ENCODE_TABLE], ids=[c[0] for c in ENCODE_TABLE]
)
def test_encode(command: Command, expected: NativeRequest) -> None:
    assert ADAPTER.encode(command, SESSION) == expected


ERROR_TABLE: list[tuple[str, Command, dict[str, Any], type[GatewayError]]] = [
    (
        "start without any name",
        start(participant=Participant(from_=" ")),
        {},
        RequestError,
    ),
    (
        "start with a nested userData value",
        start(metadata={"cart": {"a": 1}}),
        {},
        RequestError,
    ),
    ("empty text", Send(conversation="genesys:c1", content=Text(text="  ")), SESSION, RequestError),
    (
        "relative url",
        Send(conversation="genesys:c1", content=Url(url="/a")),
        SESSION,
        RequestError,
    ),
    (
        "image",
        Send(conversation="genesys:c1", content=Image(url="https://x/i.png")),
        SESSION,
        Unsupported,
    ),
    (
        "file",
        Send(conversation="genesys:c1", content=File(url="https://x/f.pdf")),
        SESSION,
        Unsupported,
    ),
    ("read receipts", MarkRead(conversation="genesys:c1"), SESSION, Unsupported),
    ("forward", Forward(conversation="genesys:c1", destination="sales"), SESSION, Unsupported),
    ("recover", Recover(conversation="genesys:c1"), SESSION, Unsupported),
    (
        "send without a session",
        Send(conversation="genesys:c1", content=Text(text="x")),
        {},
        SessionNotFound,
    ),
    (
        "end without a secure key",
        End(conversation="genesys:c1"),
        {"chat_id": "c1"},
        SessionNotFound,
    ),
]


@pytest.mark.parametrize(
    ("command", "session", "error"), [c[1:] for c in ERROR_TABLE], ids=[c[0] for c in ERROR_TABLE]
)
def test_encode_errors(
    command: Command, session: dict[str, Any], error: type[GatewayError]
) -> None:
    with pytest.raises(error) as info:
        ADAPTER.encode(command, session)
    assert type(info.value) is error


def test_nested_user_data_error_names_the_path() -> None:
    with pytest.raises(RequestError) as info:
        ADAPTER.encode(start(metadata={"cart": [1]}), {})
    assert info.value.details["path"] == "$.metadata.cart"


def test_capabilities_declare_no_read_receipts() -> None:
    described = ADAPTER.describe()
    assert described["name"] == "genesys"
    assert "read" not in described["capabilities"]
    assert "forward" not in described["capabilities"]
    assert set(described["capabilities"]) == {"ingest", "start", "send", "typing", "end"}
    assert described["content_kinds"] == ["text", "url"]
