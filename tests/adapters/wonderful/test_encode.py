"""The wonderful encoder: every command as its REST request, and every validation error."""

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


def encode(command: Command, session: dict[str, Any] | None = None) -> NativeRequest:
    return adapter.encode(command, session or {})


def start(**participant: Any) -> Start:
    return Start(dialect="wonderful", participant=Participant(**participant))


def test_start_as_the_seed_shows() -> None:
    command = Start(
        dialect="wonderful",
        participant=Participant(
            from_="user-123", from_type="phone", to="+1234567890", to_type="phone"
        ),
        agent_id="agent-uuid",
        metadata={"customer_id": "cust-456", "subscription_plan": "premium", "from": "spoofed"},
    )
    request = encode(command)
    assert (request.method, request.path) == ("POST", BASE)
    assert request.json == {
        "from": "user-123",
        "fromType": "phone",
        "agentId": "agent-uuid",
        "to": "+1234567890",
        "toType": "phone",
        "locale": "en-US",
        "metadata": {
            "from": "user-123",
            "from_type": "phone",
            "from_number": "user-123",
            "customer_id": "cust-456",
            "subscription_plan": "premium",
        },
    }


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
    body = encode(start(**participant)).json
    p = Participant(**participant)
    assert body["metadata"] == {"from": p.from_, "from_type": p.from_type, **identity}
    assert body["fromType"] == p.from_type


def test_start_locale_subject_and_default_agent() -> None:
    command = Start(
        dialect="wonderful", participant=Participant(from_="u"), locale="he-IL", subject="refund"
    )
    body = encode(command, {"agent_id": "agent-default"}).json
    assert (body["locale"], body["agentId"], body["metadata"]["subject"]) == (
        "he-IL",
        "agent-default",
        "refund",
    )
    assert "agentId" not in encode(start(from_="u")).json
    assert encode(start(from_="u")).json["locale"] == "en-US"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (start(from_=""), "MISSING_PARTICIPANT"),
        (start(from_="   ", from_type="phone"), "MISSING_PARTICIPANT"),
        (start(from_="u", to_type="phone"), "INVALID_REQUEST"),
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
        encode(command)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("content", "body"),
    [
        (Text("Hello"), {"type": "text", "text": "Hello"}),
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


def test_send_with_metadata() -> None:
    request = encode(Send(conversation=CONV, content=Text("Order"), metadata={"order_id": "1"}))
    assert request.json == {"type": "text", "text": "Order", "metadata": {"order_id": "1"}}


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


def test_a_sent_message_has_the_id_and_content_of_its_echo() -> None:
    command = Send(conversation=CONV, content=Text("hi"), metadata={"k": "v"})
    sent = sent_message(command, SendResponse("ev-9", "2024-02-02T13:00:00.000Z"), "fr-FR")
    echo = {
        "type": "message",
        "data": {
            "eventId": "ev-9",
            "sessionId": "s-1",
            "speaker": "customer",
            "locale": "fr-FR",
            "data": {"type": "text", "text": "hi"},
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

    def start(who: str, ref: str = "r1") -> Start:
        return Start(dialect="wonderful", ref=ref, participant=Participant(from_=who))

    key = idempotency_key(send())
    assert key is not None and len(key) == 32
    assert idempotency_key(send()) == key  # a retry, from any replica, names the same delivery
    assert idempotency_key(send(ref=None)) is None
    others = [
        idempotency_key(send(ref="r2")),
        idempotency_key(send(conversation="wonderful:s-2")),
        idempotency_key(End(conversation=CONV, ref="r1")),
        idempotency_key(start("a@example.com")),
    ]
    assert len({key, *others}) == 5
    assert idempotency_key(start("a@example.com")) != idempotency_key(start("b@example.com"))


def test_adapter_describes_itself() -> None:
    assert adapter.describe() == {
        "name": "wonderful",
        "capabilities": ["end", "forward", "ingest", "recover", "send", "start"],
        "content_kinds": ["file", "image", "text"],
        "typing_preview": False,
    }
