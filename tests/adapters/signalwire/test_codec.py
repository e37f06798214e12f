"""The signalwire codec: fixtures, mapping tables, error paths, encode. Pure, no I/O."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.signalwire import SignalWireAdapter, codec, native
from adapters.signalwire.native import RpcEvent
from gateway import model
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
# The fast path (typed, whole body) against the exact path (untyped, frame by frame)


def _outcome(decode: Any, body: bytes | str, conversation: str | None = None) -> Any:
    """What decoding gives: the events as JSON and the ignored count, or the error in full."""
    try:
        decoded = decode(body, conversation, frozenset({ME}))
    except GatewayError as exc:
        return ("error", type(exc).__name__, exc.body())
    except Exception as exc:  # whatever escapes, both paths must agree on it
        return ("escaped", type(exc).__name__, str(exc))
    return ("ok", _as_json(decoded.events), decoded.ignored)


def _minified(path: Path) -> bytes:
    return json.dumps(json.loads(path.read_bytes()), separators=(",", ":")).encode()


@pytest.fixture
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row without `ts` is stamped now: the same `now` for both paths, so they compare."""

    monkeypatch.setattr(model, "clock", lambda: "2024-01-01T00:00:00.000Z")


@pytest.mark.parametrize("path", GOOD + BAD, ids=lambda p: p.stem)
def test_fast_and_exact_paths_agree_on_every_fixture(path: Path) -> None:
    conversation = _expected(path)["conversation"]
    bodies: list[bytes | str] = [path.read_bytes(), path.read_text()]
    if not path.name.startswith("bad_not_json"):
        bodies.append(_minified(path))
    for body in bodies:
        fast = _outcome(codec.decode, body, conversation)
        assert fast == _outcome(codec._decode_exact, body, conversation)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_valid_fixtures_take_the_fast_path(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A regression here costs only speed, which no other test would notice."""
    expected = _expected(path)

    def no_exact(*args: Any) -> Any:
        raise AssertionError("took the exact path")

    monkeypatch.setattr(codec, "_decode_exact", no_exact)
    for body in (path.read_bytes(), _minified(path)):
        decoded = codec.decode(body, expected["conversation"])
        assert _as_json(decoded.events) == expected["events"]


_ROW_C = {"id": "r1", "conversation_id": CONV, "user_id": "u1", "ts": 1708192187.5, "text": "t"}
_EVENT = json.loads(_rpc({**ROW, "subtype": "chat", "text": "x"}))


@pytest.mark.parametrize(
    "doc",
    [
        {"links": {}, "data": [_ROW_C]},  # a page that does not open with `data`
        {"jsonrpc": "2.0", "data": [_ROW_C]},  # no id, no method: a page still
        {"data": [_ROW_C], "jsonrpc": "2.0"},
        {"data": [_ROW_C], "id": "x"},  # with an id: a row (and an invalid one)
        {"data": [_ROW_C], "method": "signalwire.event"},  # with a method: JSON-RPC
        {"data": [_ROW_C, _EVENT]},  # a live event among the rows of a page
        {"data": [_ROW_C, {**_EVENT, "id": 5}]},
        {"data": [_ROW_C, {"jsonrpc": "2.0", "id": "c1", "result": {}}]},
        {"data": {"id": "r1"}},
        {**_ROW_C, "method": "signalwire.ping"},  # a row's fields with a method: JSON-RPC
        {**_ROW_C, "jsonrpc": "2.0"},
        {"text": "t", **_ROW_C},  # a row opening with another key
        {"params": _EVENT["params"], **_EVENT},  # an event opening with another key
        {**_EVENT, "method": "signalwire.ping"},
        {**_EVENT, "method": None},
        {**_EVENT, "method": 5},
        {**_EVENT, "id": None},
        {**_EVENT, "jsonrpc": "1.0"},
        {**_EVENT, "params": {**_EVENT["params"], "event_type": "call.state"}},
        {**_EVENT, "params": {**_EVENT["params"], "event_type": 5}},
        {**_EVENT, "params": {**_EVENT["params"], "event_channel": 5}},
        {**_EVENT, "params": []},
        {"jsonrpc": "2.0", "id": None, "error": {"code": 1}},
        {"metadata": {}, **_ROW_C},  # opens like a JSON-RPC `method`
        {**_ROW_C, "kind": 5},
        {**_ROW_C, "type": 5},
        {**_ROW_C, "subtype": "poll", "id": 5},  # ignored before it is checked
        {**_ROW_C, "conversation_id": None},
        {**_ROW_C, "ts": None},
        {**_ROW_C, "ts": "2024-02-17T17:49:52+02:00"},
        {**_ROW_C, "metadata": {"a": {"b": [1, None]}}, "details": {"c": 1}, "hidden": True},
        [_ROW_C, _EVENT],  # arrays of both kinds, either first
        [_EVENT, _ROW_C, {"jsonrpc": "2.0", "id": "p", "method": "signalwire.ping"}],
        [_ROW_C, {**_ROW_C, "id": None}],
        [_ROW_C, 5],
        # Arrays opening with JSON-RPC are read as heads (`_rpc_frames`): each envelope check.
        [{**_EVENT, "jsonrpc": "1.0"}],
        [{**_EVENT, "jsonrpc": None}],
        [{**_EVENT, "id": None}],
        [{**_EVENT, "id": 1.5}],
        [{**_EVENT, "id": True}],
        [{**_EVENT, "id": 10**30}],
        [{k: v for k, v in _EVENT.items() if k != "id"}],
        [{k: v for k, v in _EVENT.items() if k != "params"}],
        [{**_EVENT, "params": []}],
        [{**_EVENT, "params": {**_EVENT["params"], "event_type": "call.state"}}, _EVENT],
        [{**_EVENT, "params": {**_EVENT["params"], "event_type": 5}}],
        [{"jsonrpc": "2.0", "id": "c1", "result": {}}, {**_EVENT, "method": 5}],
        [{"method": "signalwire.event", "id": 3, "params": _EVENT["params"]}],
        [_EVENT, 5],
        [],
        {},
        "row",
        None,
    ],
)
def test_fast_and_exact_paths_agree_on_shapes(doc: Any, fixed_now: None) -> None:
    # Minified, as platforms send it (where the guesses of `_OPENINGS` hit),
    # and spaced or indented (where they miss): the answer must not depend on them.
    compact = json.dumps(doc, separators=(",", ":"))
    for body in (compact, json.dumps(doc), json.dumps(doc, indent=1), json.dumps(doc) + "  "):
        assert _outcome(codec.decode, body.encode()) == _outcome(codec._decode_exact, body)


def test_fast_and_exact_paths_agree_on_odd_bytes(fixed_now: None) -> None:
    for body in [
        b"",  # under the four bytes `_OPENINGS` reads
        b"1",
        b"[]",
        b"{}",
        b" [] ",
        b'{"\\u0069d": "r1", "conversation_id": "c", "text": "t"}',  # an escaped key
        b'{"id": "r1", "id": 5, "conversation_id": "c", "text": "t"}',  # a duplicate key
        b'{"id": 5, "id": "r1", "conversation_id": "c", "text": "t"}',
        b'\xef\xbb\xbf{"id": "r1", "conversation_id": "c", "text": "t"}',
        b'{"id": "r1", "conversation_id": "c", "text": "\xff"}',  # `loads` lets it escape
        b"[" * 5000 + b"]" * 5000,
        b'{"id": "r1", "conversation_id": "c", "text": "t", "metadata": '
        + b'{"a": ' * 3000
        + b"1"
        + b"}" * 3001,
    ]:
        assert _outcome(codec.decode, body) == _outcome(codec._decode_exact, body)


def test_fast_and_exact_paths_agree_on_mutated_bodies(fixed_now: None) -> None:
    rng = random.Random(7)
    junk: list[Any] = [None, 0, 1, 1e12, -1.5, "", "x", "chat", "log", True, [], {}, [None]]
    keys = ["id", "method", "jsonrpc", "data", "params", "type", "subtype", "ts", "text"]
    bodies = [json.loads(p.read_bytes()) for p in GOOD]

    def mutate(node: Any) -> Any:
        if isinstance(node, dict) and rng.random() < 0.8:
            node = dict(node)
            roll = rng.random()
            if roll < 0.15 and node:
                del node[rng.choice(list(node))]
            elif roll < 0.3:
                node[rng.choice(keys)] = rng.choice(junk)
            elif roll < 0.4:
                node = dict(rng.sample(list(node.items()), len(node)))  # another key order
            elif node:
                key = rng.choice(list(node))
                node[key] = mutate(node[key]) if rng.random() < 0.7 else rng.choice(junk)
        elif isinstance(node, list) and node and rng.random() < 0.8:
            node = list(node)
            i = rng.randrange(len(node))
            node[i] = mutate(node[i]) if rng.random() < 0.7 else rng.choice(junk)
        return node

    for _ in range(3000):
        body = json.dumps(mutate(rng.choice(bodies)), separators=(",", ":")).encode()
        assert _outcome(codec.decode, body) == _outcome(codec._decode_exact, body), body


_LIVE = json.loads(_minified(FIXTURES / "rpc_message_agent.json"))
_TYPING = {
    "jsonrpc": "2.0",
    "id": "t1",
    "method": "signalwire.event",
    "params": {"event_type": "conversation.typing", "params": {}},
}
_PING = {"jsonrpc": "2.0", "id": "p1", "method": "signalwire.ping", "params": {}}


@pytest.mark.parametrize(
    "doc",
    [
        _LIVE,  # one live event
        _LIVE["params"]["params"],  # a bare row
        {"data": [_LIVE["params"]["params"]], "links": {}},  # a history page
        [_LIVE["params"]["params"]] * 2,  # an array of rows
        [_LIVE, _TYPING, _PING],  # an array of frames, ours (read whole) and others (heads)
    ],
    ids=["event", "row", "page", "rows", "frames"],
)
def test_adapter_decode_keeps_the_contract(doc: Any) -> None:
    """`SignalWireAdapter.decode` is `codec.decode` itself (no `Adapter.decode` around it), so
    the codec maps what msgspec raises besides `DecodeError`: bad UTF-8 inside a string a
    decoder reads, and nesting too deep, are `MalformedJSON` whichever decoder meets them.
    (A frame we skip is read no further than its head, `native.FrameHead`: what else it holds
    is not looked at, as `tests/security/test_fuzz.py` notes.)"""
    assert SignalWireAdapter.decode is codec.decode
    body = json.dumps(doc, separators=(",", ":")).encode()
    assert ADAPTER.decode(body).events  # the body itself is good
    spots = [
        (value, at)
        for value in (b'"Ada (agent)"', b'"2.0"', b'"p1"', b'"signalwire.ping"')
        for at in range(len(body))
        if body.startswith(value, at)
    ]
    assert spots
    for value, at in spots:  # every occurrence: in the frames we read whole, and in the heads
        for bad in (b'"\xff' + value[1:], b"[" * 3000 + b"]" * 3000):
            with pytest.raises(MalformedJSON):
                ADAPTER.decode(body[:at] + bad + body[at + len(value) :])


def test_fast_structs_mirror_the_native_ones() -> None:
    """The fast path's Structs accept exactly what `Row` and `RpcEvent` accept."""

    def fields(cls: Any, *skip: str) -> dict[str, Any]:
        return {
            f.name: (f.type, f.default) for f in msgspec.structs.fields(cls) if f.name not in skip
        }

    assert fields(native.FastRow, "method", "jsonrpc") == fields(native.Row)
    assert fields(native.FastMessageEvent, "params") == fields(native.MessageEvent, "params")
    assert fields(native.FastRpcEvent, "params") == fields(native.RpcEvent, "params")
    for fast, slow in [
        (native.FastMessageEvent, native.MessageEvent),
        (native.FastMessageUpdated, native.MessageUpdated),
        (native.FastConversationEnded, native.ConversationEnded),
    ]:
        assert fast.__struct_config__.tag == slow.__struct_config__.tag
        assert fast.__struct_config__.tag_field == slow.__struct_config__.tag_field
    assert fields(native.FastConversationEnded) == fields(native.ConversationEnded)


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
