"""visitor_widget encode: every command to its native emit, every validation error."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from adapters.visitor_widget import VisitorWidgetAdapter
from adapters.visitor_widget.encode import upload_finish
from gateway.errors import RequestError, Unsupported
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

adapter = VisitorWidgetAdapter()
CONV = "visitor_widget:c1"
PAGE_NULL = {"pageUrl": None, "pageTitle": None, "referer": None, "domain": None}
SESSION = {"conversation_id": CONV, "visitor_id": "v1", "chat_id": "c1", "key": "k1"}


def _native(command: Command, session: dict[str, Any] = SESSION) -> tuple[str | None, Any, Any]:
    req = adapter.encode(command, session)
    return req.event, req.frame, req.json


ENCODED = [
    (
        Send(conversation=CONV, content=Text("Hello")),
        ("chat.message", {"content": {"type": "text", "text": "Hello"}}, None),
    ),
    (
        Send(conversation=CONV, content=Url(url="https://x.example/a", text="see")),
        ("chat.message", {"content": {"type": "text", "text": "see\nhttps://x.example/a"}}, None),
    ),
    (
        Send(conversation=CONV, content=Url(url="https://x.example/a")),
        ("chat.message", {"content": {"type": "text", "text": "https://x.example/a"}}, None),
    ),
    (
        Send(conversation=CONV, content=Image(url="https://x.example/a.png", file_name="a.png")),
        (
            "chat.upload_init",
            None,
            {"url": "https://x.example/a.png", "fileName": "a.png", "fileType": None},
        ),
    ),
    (
        Send(
            conversation=CONV,
            content=File(url="data:text/plain;base64,aGk=", mime_type="text/plain"),
        ),
        (
            "chat.upload_init",
            None,
            {"url": "data:text/plain;base64,aGk=", "fileName": None, "fileType": "text/plain"},
        ),
    ),
    # src/visitor.ts chatTyping(is, text = null): no preview and typing off send `text: null`
    (SetTyping(conversation=CONV), ("chat.typing", {"typing": {"is": True, "text": None}}, None)),
    (
        SetTyping(conversation=CONV, preview="Hel"),
        ("chat.typing", {"typing": {"is": True, "text": "Hel"}}, None),
    ),
    (
        SetTyping(conversation=CONV, active=False, preview="Hel"),
        ("chat.typing", {"typing": {"is": False, "text": None}}, None),
    ),
    # src/visitor.ts chatRead / chatClose / chatUploadInit send `null`
    (MarkRead(conversation=CONV), ("chat.read", None, None)),
    (MarkRead(conversation=CONV, up_to=f"{CONV}/m1"), ("chat.read", None, None)),
    (End(conversation=CONV), ("chat.close", None, None)),
    # src/visitor.ts: `id` always (null on the first connect) and the page context
    (
        Start(
            dialect="visitor_widget",
            participant=Participant(from_="ann@example.com", from_type="email", name="Ann"),
        ),
        (
            "visitor.connect",
            {
                "id": None,
                "key": "k1",
                "name": "Ann",
                "email": "ann@example.com",
                "lang": "en",
                **PAGE_NULL,
            },
            None,
        ),
    ),
    (
        Start(
            dialect="visitor_widget",
            participant=Participant(from_="+420123", from_type="phone"),
            locale="cs-CZ",
            subject="Order 12",
            metadata={"plan": "pro"},
        ),
        (
            "visitor.connect",
            {
                "id": None,
                "key": "k1",
                "phone": "+420123",
                "lang": "cs",
                "variables": {"plan": "pro", "subject": "Order 12"},
                **PAGE_NULL,
            },
            None,
        ),
    ),
    (
        Start(dialect="visitor_widget", participant=Participant(from_="Bob")),
        (
            "visitor.connect",
            {"id": None, "key": "k1", "name": "Bob", "lang": "en", **PAGE_NULL},
            None,
        ),
    ),
    (
        Start(
            dialect="visitor_widget",
            participant=Participant(from_="Bob"),
            metadata={"pageUrl": "https://shop.example/cart", "pageTitle": "Cart", "plan": "pro"},
        ),
        (
            "visitor.connect",
            {
                "id": None,
                "key": "k1",
                "name": "Bob",
                "lang": "en",
                "variables": {"plan": "pro"},
                **PAGE_NULL,
                "pageUrl": "https://shop.example/cart",
                "pageTitle": "Cart",
            },
            None,
        ),
    ),
]


@pytest.mark.parametrize(("command", "native"), ENCODED)
def test_encode(command: Command, native: tuple[str, Any, Any]) -> None:
    assert _native(command) == native


def test_start_carries_the_group() -> None:
    start = Start(dialect="visitor_widget", participant=Participant(from_="Bob"))
    _, frame, _ = _native(start, {"key": "k1", "group": "sales"})
    assert frame["group"] == "sales"


def test_reconnect_frame_resends_the_identity() -> None:
    """src/visitor.ts visitorConnect: the first connect's values, with the identity the ack
    returned laid over them, but for the platform's read-only fields."""
    from adapters.visitor_widget.encode import identity_of, reconnect_frame

    first = {"id": None, "name": "Ann", "lang": "en", **PAGE_NULL, "pageUrl": "https://x/"}
    visitor = {"id": "v1", "chatId": "c1", "bannedAt": None, "name": "Ann B.", "visits": 2}
    identity = identity_of(visitor)
    assert identity == {"id": "v1", "name": "Ann B.", "visits": 2}
    frame = reconnect_frame({"key": "k1", "connect": first, "identity": identity})
    assert frame == {**first, "key": "k1", "id": "v1", "name": "Ann B.", "visits": 2}
    # a snapshot from before identities were kept: the visitor id alone
    assert reconnect_frame({"key": "k1", "visitor_id": "v1"}) == {
        "id": "v1",
        "key": "k1",
        **PAGE_NULL,
    }


def test_page_context_must_be_text() -> None:
    start = Start(
        dialect="visitor_widget", participant=Participant(from_="Bob"), metadata={"pageUrl": 5}
    )
    with pytest.raises(RequestError) as info:
        _native(start)
    assert info.value.details["parameter"] == "metadata.pageUrl"


def test_upload_finish() -> None:
    req = upload_finish("tok")
    assert (req.event, req.frame) == ("chat.upload_finish", {"uploadToken": "tok"})


INVALID = [
    Send(conversation=CONV, content=Text("")),
    Send(conversation=CONV, content=Text("  \n")),
    Send(conversation=CONV, content=Url(url=" ")),
    Send(conversation=CONV, content=Image(file_id="f1")),
    Send(conversation=CONV, content=File(file_id="f1")),
    Send(conversation="visitor_widget:other", content=Text("hi")),
    End(conversation="visitor_widget:other"),
    Start(dialect="visitor_widget", participant=Participant(from_="  ")),
    Start(
        dialect="visitor_widget", participant=Participant(from_="not-an-email", from_type="email")
    ),
]


@pytest.mark.parametrize("command", INVALID)
def test_invalid_commands(command: Command) -> None:
    with pytest.raises(RequestError) as info:
        _native(command)
    assert info.value.code == "INVALID_REQUEST"


def test_start_without_key() -> None:
    with pytest.raises(RequestError, match="GATEWAY_VISITOR_WIDGET_KEY"):
        _native(Start(dialect="visitor_widget", participant=Participant(from_="Bob")), {})


UNSUPPORTED = [
    Forward(conversation=CONV, destination="sales"),
    Recover(conversation=CONV),
    Send(conversation=CONV, content=Audio(url="https://x.example/a.ogg")),
    Send(conversation=CONV, content=Location(latitude=1.0, longitude=2.0)),
    Send(conversation=CONV, content=Action(action="end")),
]


@pytest.mark.parametrize("command", UNSUPPORTED)
def test_unsupported(command: Command) -> None:
    with pytest.raises(Unsupported):
        _native(command)


def test_every_encoded_request_is_json() -> None:
    for command, _ in ENCODED:
        req = adapter.encode(command, SESSION)
        assert msgspec.json.decode(msgspec.json.encode(req))


def test_describe() -> None:
    described = adapter.describe()
    assert described["name"] == "visitor_widget"
    assert {"start", "send", "typing", "read", "end", "files"} <= set(described["capabilities"])
    assert "forward" not in described["capabilities"]
    assert described["content_kinds"] == ["file", "image", "text", "url"]
