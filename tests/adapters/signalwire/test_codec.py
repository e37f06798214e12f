"""The signalwire codec: fixtures, mapping tables, error paths, encode. Pure, no I/O."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.signalwire import SignalWireAdapter, codec
from adapters.signalwire.native import RpcEvent
from gateway.adapter import NativeRequest
from gateway.codec import to_at
from gateway.errors import DecodeError, GatewayError, MalformedJSON, RequestError, Unsupported
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
    event_encoder,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "signalwire"
GOOD = sorted(
    p
    for p in FIXTURES.glob("*.json")
    if not p.name.endswith(".expected.json") and not p.name.startswith("bad_")
)
BAD = sorted(p for p in FIXTURES.glob("bad_*.json") if not p.name.endswith(".expected.json"))
ADAPTER = SignalWireAdapter()
CONV = "9dbe9e94-c797-461e-b5a3-af6d095deaf4"
ME = "5f1d2c3b-aaaa-4bbb-8ccc-0123456789ab"


def _expected(path: Path) -> dict[str, Any]:
    expected: dict[str, Any] = json.loads(
        path.with_name(path.name.replace(".json", ".expected.json")).read_text()
    )
    return expected


def _as_json(events: list[Any]) -> list[dict[str, Any]]:
    out = []
    for event in events:
        obj = msgspec.json.decode(event_encoder.encode(event))
        obj.pop("seq", None)
        out.append(obj)
    return out


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_fixture_decodes_to_expected(path: Path) -> None:
    expected = _expected(path)
    decoded = ADAPTER.decode(path.read_bytes(), conversation=expected["conversation"])
    assert _as_json(decoded.events) == expected["events"]
    assert decoded.ignored == expected["ignored"]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_fixture_raises_with_index_and_path(path: Path) -> None:
    expected = _expected(path)
    with pytest.raises(GatewayError) as info:
        ADAPTER.decode(path.read_bytes(), conversation=expected["conversation"])
    error = expected["error"]
    assert info.value.code == error["code"]
    for key in ("index", "path"):
        assert info.value.details.get(key) == error.get(key)


def test_every_fixture_pair_exists() -> None:
    assert len(GOOD) >= 15
    assert len(BAD) >= 5
    for path in GOOD + BAD:
        assert path.with_name(path.name.replace(".json", ".expected.json")).exists()


def _rpc(row: dict[str, Any], **params: Any) -> bytes:
    envelope = {"event_type": "conversation.message", "timestamp": 1708192187.7, "params": row}
    envelope.update(params)
    frame = {"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event", "params": envelope}
    return json.dumps(frame).encode()


ROW = {"id": "m1", "conversation_id": CONV, "user_id": ME, "ts": 1708192187.5, "type": "message"}


@pytest.mark.parametrize(
    ("body", "self_ids", "role"),
    [
        (_rpc({**ROW, "subtype": "chat", "text": "x"}), (), "agent"),
        (_rpc({**ROW, "subtype": "chat", "text": "x"}, is_author=True), (), "user"),
        (_rpc({**ROW, "subtype": "chat", "text": "x"}), (ME,), "user"),  # the gateway's own address
        (json.dumps({**ROW, "subtype": "chat", "text": "x"}).encode(), (ME,), "user"),
        (json.dumps({**ROW, "subtype": "chat", "text": "x"}).encode(), ("other",), "agent"),
    ],
)
def test_roles(body: bytes, self_ids: tuple[str, ...], role: str) -> None:
    (event,) = codec.decode(body, None, frozenset(self_ids)).events
    assert event.sender.role == role  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "row",
    [
        {**ROW, "subtype": "chat", "text": "plain"},
        {**ROW, "subtype": "chat", "text": "extras", "details": {"a": 1}, "metadata": {"b": 2}},
        {**ROW, "subtype": "chat", "text": "hidden", "hidden": True, "details": None},
        {**ROW, "subtype": "chat", "text": "newer", "conversation_id": None, "group_id": "g1"},
        {**ROW, "subtype": "chat", "text": "int ts", "ts": 1708192187},
        {**ROW, "subtype": "log", "details": {"status": "ended"}},
    ],
)
def test_fast_path_maps_like_the_general_path(row: dict[str, Any]) -> None:
    body = _rpc(row)
    general = codec.rpc_events(msgspec.json.decode(body, type=RpcEvent), None, (), 0)
    assert codec.decode(body).events == general


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (_rpc({**ROW, "subtype": "chat", "text": "x", "ts": "soon"}), "$.params.params.ts"),
        (_rpc({**ROW, "subtype": "chat", "text": "x", "ts": 1e300}), "$.params.params.ts"),
        (_rpc({**ROW, "subtype": "chat", "text": "x", "ts": [1]}), "$.params.params.ts"),
        (_rpc({**ROW, "subtype": "chat", "text": "x", "ts": True}), "$.params.params.ts"),
        (_rpc({**ROW, "subtype": "chat", "text": "x", "id": None}), "$.params.params.id"),
        (_rpc({**ROW, "subtype": "chat", "text": "x", "details": []}), "$.params.params.details"),
        (_rpc({**ROW, "subtype": "chat", "text": "x"}, is_author="yes"), "$.params.is_author"),
        (_rpc({**ROW, "subtype": "chat"}), "$.params.params.text"),
        (_rpc("not a row"), "$.params.params"),  # type: ignore[arg-type]
        (
            b'{"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event", "params": null}',
            "$.params",
        ),
        (b'{"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event"}', "$"),
        (b'{"jsonrpc": "2.0", "id": {}, "method": "signalwire.event", "params": {}}', "$.id"),
        (b"[1]", "$"),
        (b"null", "$"),
    ],
)
def test_malformed_known_frames_name_the_path(body: bytes, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(body)
    assert info.value.details["path"] == path
    assert info.value.details["index"] == 0


def test_not_json_is_malformed() -> None:
    with pytest.raises(MalformedJSON):
        codec.decode(b'{"id": ')


def test_random_mutations_raise_only_gateway_errors() -> None:
    """No wrong type anywhere may let another exception escape decode."""
    rng = random.Random(6)
    junk: list[Any] = [None, 1, -1.5, "", "x", True, [], {}, [None], {"a": None}, 1e308]
    bodies = [json.loads(p.read_bytes()) for p in GOOD]

    def mutate(node: Any) -> Any:
        if isinstance(node, dict) and node and rng.random() < 0.7:
            key = rng.choice(list(node))
            node = dict(node)
            node[key] = mutate(node[key]) if rng.random() < 0.6 else rng.choice(junk)
        elif isinstance(node, list) and node and rng.random() < 0.7:
            node = list(node)
            i = rng.randrange(len(node))
            node[i] = mutate(node[i]) if rng.random() < 0.6 else rng.choice(junk)
        return node

    for _ in range(3000):
        body = json.dumps(mutate(rng.choice(bodies))).encode()
        with contextlib.suppress(GatewayError):
            codec.decode(body)


def test_live_and_page_paths_stamp_the_same_at() -> None:
    """The hot path (live frame) and the general path (history page) both stamp `to_at`."""
    rng = random.Random(1)
    values = [0.0, 1e11 - 0.5, 1708192187.9999996, 1708192187.0005]
    values += [round(rng.uniform(0, 4e9), rng.randint(0, 7)) for _ in range(2000)]
    for value in values:
        row = {"id": "r", "conversation_id": "c", "user_id": "u", "ts": value, "text": "t"}
        live = {
            "jsonrpc": "2.0",
            "id": "e1",
            "method": "signalwire.event",
            "params": {"event_type": "conversation.message", "params": row},
        }
        (fast,) = codec.decode(json.dumps(live)).events
        (page,) = codec.decode(json.dumps({"data": [row], "links": {}})).events
        assert fast.at == page.at == to_at(value), value


# ---------------------------------------------------------------------------------------------
# Encode

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
    assert codec.history_request("a", 3).query == {"page_size": "3"}
    with pytest.raises(RequestError):
        codec.history_request("a", 0)


def test_describe() -> None:
    assert ADAPTER.describe() == {
        "name": "signalwire",
        "capabilities": ["history", "ingest", "recover", "send", "start"],
        "content_kinds": ["text"],
        "typing_preview": False,
    }
