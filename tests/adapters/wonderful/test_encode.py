"""The wonderful encoder: every command as its chat-WebSocket frame or REST request, and every
validation error."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from adapters.wonderful import WonderfulAdapter
from adapters.wonderful.encode import idempotency_key, sent_message
from adapters.wonderful.native import SendResponse
from gateway.adapter import NativeRequest
from gateway.errors import RequestError, Unsupported
from gateway.model import (
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

adapter = WonderfulAdapter()
CONV = "wonderful:s-1"
BASE = "/api/v1/chat/sessions"
AGENT = {"agent_id": "agent-uuid"}


def encode(command: Command, session: dict[str, Any] | None = None) -> NativeRequest:
    return adapter.encode(command, session or {})


def start(**participant: Any) -> Start:
    return Start(dialect="wonderful", participant=Participant(**participant))


def test_start_opens_the_chat_socket_with_init_as_the_seed_merges_it() -> None:
    """The notes: the socket `/api/v1/agents/{agentId}/chat?commType=chat`, then `init` with the
    session metadata; the seed: the metadata merged with the participant info."""
    command = Start(
        dialect="wonderful",
        participant=Participant(from_="user-123", from_type="phone"),
        agent_id="agent-uuid",
        metadata={"customer_id": "cust-456", "subscription_plan": "premium", "from": "spoofed"},
    )
    request = encode(command)
    assert (request.method, request.path, request.query) == (
        "GET",
        "/api/v1/agents/agent-uuid/chat",
        {"commType": "chat"},
    )
    assert request.frame == {
        "type": "init",
        "metadata": {
            "from": "user-123",
            "from_type": "phone",
            "from_number": "user-123",
            "locale": "en-US",
            "customer_id": "cust-456",
            "subscription_plan": "premium",
        },
    }
    assert encode(start(from_="u"), {"agent_id": "a/b c"}).path == "/api/v1/agents/a%2Fb%20c/chat"


@pytest.mark.parametrize(
    ("participant", "identity"),
    [
        ({"from_": "+15550001", "from_type": "phone"}, {"from_number": "+15550001"}),
        ({"from_": "a@example.com", "from_type": "email"}, {"from_email": "a@example.com"}),
        ({"from_": "user-123", "from_type": "name"}, {}),  # display only: not stored
        ({"from_": "John Doe"}, {}),
        (
            {"from_": "u-1", "name": "John", "email": "j@example.com", "phone": "+1555"},
            {"from_number": "+1555", "from_email": "j@example.com", "name": "John"},
        ),
    ],
)
def test_start_identity_rules(participant: dict[str, Any], identity: dict[str, Any]) -> None:
    metadata = encode(start(**participant), AGENT).frame["metadata"]
    p = Participant(**participant)
    assert metadata == {"from": p.from_, "from_type": p.from_type, **identity, "locale": "en-US"}


def test_start_locale_subject_and_default_agent() -> None:
    command = Start(
        dialect="wonderful", participant=Participant(from_="u"), locale="he-IL", subject="refund"
    )
    request = encode(command, {"agent_id": "agent-default"})
    assert request.path == "/api/v1/agents/agent-default/chat"
    assert request.frame["metadata"] == {
        "from": "u",
        "from_type": "name",
        "subject": "refund",
        "locale": "he-IL",
    }
    with pytest.raises(RequestError, match="agent"):
        encode(start(from_="u"))


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (start(from_=""), "MISSING_PARTICIPANT"),
        (start(from_="   ", from_type="phone"), "MISSING_PARTICIPANT"),
        (Send(conversation=CONV, content=Text("")), "INVALID_REQUEST"),
        (Send(conversation=CONV, content=Image(file_id="f1")), "INVALID_REQUEST"),
        (Send(conversation=CONV, content=File(file_id="f1")), "INVALID_REQUEST"),
        (Send(conversation="genesys:s-1", content=Text("x")), "INVALID_REQUEST"),
        (Send(conversation="wonderful:", content=Text("x")), "INVALID_REQUEST"),
        (Forward(conversation=CONV, destination=" "), "INVALID_REQUEST"),
        (End(conversation="s-1"), "INVALID_REQUEST"),
    ],
)
def test_validation_errors(command: Command, code: str) -> None:
    with pytest.raises(RequestError) as caught:
        encode(command, AGENT)
    assert caught.value.code == code


def test_text_is_a_frame_on_the_socket() -> None:
    """The notes: `{"type": "message", "text"}`; the frame has no place for metadata."""
    request = encode(Send(conversation=CONV, content=Text("Hello"), metadata={"order_id": "1"}))
    assert request.frame == {"type": "message", "text": "Hello"}
    assert (request.path, request.json) == ("", None)


@pytest.mark.parametrize(
    ("content", "body"),
    [
        (Image(url="https://x/s.png"), {"type": "image", "mediaUrl": "https://x/s.png"}),
        (
            Image(url="https://x/s.png", caption="look", file_name="s.png"),
            {"type": "image", "mediaUrl": "https://x/s.png", "text": "look", "fileName": "s.png"},
        ),
        (
            File(url="https://x/invoice.pdf", file_name="invoice.pdf", mime_type="application/pdf"),
            {"type": "document", "mediaUrl": "https://x/invoice.pdf", "fileName": "invoice.pdf"},
        ),
    ],
)
def test_send(content: Any, body: dict[str, Any]) -> None:
    request = encode(Send(conversation=CONV, content=content))
    assert (request.method, request.path, request.json) == ("POST", f"{BASE}/s-1/messages", body)


def test_media_send_with_metadata() -> None:
    content = Image(url="https://x/s.png")
    request = encode(Send(conversation=CONV, content=content, metadata={"order_id": "1"}))
    assert request.json == {
        "type": "image",
        "mediaUrl": "https://x/s.png",
        "metadata": {"order_id": "1"},
    }


def test_the_rest_paths_are_configurable() -> None:
    session = {"sessions_path": "/v2/conversations"}
    assert encode(End(conversation=CONV), session).path == "/v2/conversations/s-1/end"
    assert encode(Recover(conversation=CONV), session).path == "/v2/conversations/s-1"


@pytest.mark.parametrize(
    "command",
    [
        Send(conversation=CONV, content=Url(url="https://x")),
        Send(conversation=CONV, content=Audio(url="https://x/a.ogg", voice=True)),
        Send(conversation=CONV, content=Location(latitude=1, longitude=2)),
        SetTyping(conversation=CONV),
        MarkRead(conversation=CONV),
    ],
)
def test_unsupported(command: Command) -> None:
    with pytest.raises(Unsupported):
        encode(command)


def test_recover_end_forward() -> None:
    assert encode(Recover(conversation=CONV)) == NativeRequest(method="GET", path=f"{BASE}/s-1")
    assert encode(End(conversation=CONV)) == NativeRequest(path=f"{BASE}/s-1/end", json={})
    assert encode(Forward(conversation=CONV, destination="support-team")) == NativeRequest(
        path=f"{BASE}/s-1/forward", json={"destination": "support-team"}
    )


def test_a_sent_media_message_has_the_id_and_content_of_its_history_line() -> None:
    command = Send(conversation=CONV, content=Image(url="https://x/a.png"), metadata={"k": "v"})
    sent = sent_message(command, SendResponse("ev-9", "2024-02-02T13:00:00.000Z"), "fr-FR")
    echo = {
        "type": "message",
        "data": {
            "eventId": "ev-9",
            "sessionId": "s-1",
            "speaker": "customer",
            "locale": "fr-FR",
            "data": {"type": "image", "mediaUrl": "https://x/a.png"},
            "metadata": {"k": "v"},
            "timestamp": "2024-02-02T13:00:00.000Z",
        },
    }
    [decoded] = adapter.decode(msgspec.json.encode(echo)).events
    assert decoded == sent
    assert sent.id == "wonderful:s-1/ev-9"
    assert sent.metadata == {"k": "v", "locale": "fr-FR"}


def test_idempotency_keys_follow_the_ref_in_its_scope() -> None:
    def send(conversation: str = CONV, ref: str | None = "r1") -> Send:
        return Send(conversation=conversation, content=Text("x"), ref=ref)

    key = idempotency_key(send())
    assert key is not None and len(key) == 32
    assert idempotency_key(send()) == key  # a retry, from any replica, names the same delivery
    assert idempotency_key(send(ref=None)) is None
    others = [
        idempotency_key(send(ref="r2")),
        idempotency_key(send(conversation="wonderful:s-2")),
        idempotency_key(End(conversation=CONV, ref="r1")),
    ]
    assert len({key, *others}) == 4
    start = Start(dialect="wonderful", ref="r1", participant=Participant(from_="a@example.com"))
    assert idempotency_key(start) is None  # a start is no POST: it opens the socket


def test_adapter_describes_itself() -> None:
    assert adapter.describe() == {
        "name": "wonderful",
        "capabilities": ["end", "forward", "ingest", "recover", "send", "start"],
        "content_kinds": ["file", "image", "text"],
        "typing_preview": False,
    }
