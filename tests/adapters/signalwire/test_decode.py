"""signalwire decoding: fixtures, the mapping tables, error paths. Pure, no I/O.

Each fixture's `.expected.json` carries `_label`: whether the body is CAPTURED (copied from the
vendor's docs or tests), RECONSTRUCTED (built by us from the vendor's types and code) or OURS,
and from where.
"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.signalwire import SignalWireAdapter
from adapters.signalwire.decode import SPEC
from gateway import decoding
from gateway.codec import to_at
from gateway.context import ConversationContext
from gateway.decoding import Decoded
from gateway.errors import DecodeError, GatewayError, MalformedJSON
from gateway.model import Error, Message, Text, event_encoder

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


def decode(
    body: bytes | str, conversation: str | None = None, own_address: str | None = None
) -> Decoded:
    """`body` through the pipeline as ingest runs it: parsed, then built with each of its
    conversations' context (here: `own_address` as the gateway's own address in all)."""
    raw = body.encode() if isinstance(body, str) else body
    parsed = decoding.parse(SPEC, raw, conversation=conversation)
    context = ConversationContext(own_address=own_address)
    return decoding.build(parsed, {conv: context for conv in parsed.conversations})


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


def test_every_fixture_pair_exists_and_says_where_it_comes_from() -> None:
    assert len(GOOD) >= 15
    assert len(BAD) >= 5
    for path in GOOD + BAD:
        label = _expected(path)["_label"]
        assert label.split(":")[0] in ("CAPTURED", "RECONSTRUCTED", "OURS"), path.name


def _rpc(row: dict[str, Any], **params: Any) -> bytes:
    envelope = {"event_type": "conversation.message", "timestamp": 1708192187.7, "params": row}
    envelope.update(params)
    frame = {"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event", "params": envelope}
    return json.dumps(frame).encode()


ROW = {"id": "m1", "conversation_id": CONV, "user_id": ME, "ts": 1708192187.5, "type": "message"}


NEWER = {"id": "m1", "group_id": CONV, "from_fabric_address_id": ME, "ts": 1708192187.5}
OLDER_ADDRESS = {"id": "m1", "conversation_id": CONV, "from_address_id": ME, "ts": 1708192187.5}


@pytest.mark.parametrize(
    ("body", "own_address", "role"),
    [
        (_rpc({**ROW, "subtype": "chat", "text": "x"}), None, "agent"),
        (_rpc({**ROW, "subtype": "chat", "text": "x"}, is_author=True), None, "user"),
        (_rpc({**ROW, "subtype": "chat", "text": "x"}), ME, "user"),  # the gateway's own address
        (json.dumps({**ROW, "subtype": "chat", "text": "x"}).encode(), ME, "user"),
        (json.dumps({**ROW, "subtype": "chat", "text": "x"}).encode(), "other", "agent"),
        (json.dumps({**ROW, "subtype": "chat", "text": "x"}).encode(), None, "agent"),
        # every author field the SDK's types name, in history pages as in live events
        (json.dumps({"data": [{**NEWER, "text": "x"}]}).encode(), ME, "user"),
        (json.dumps({"data": [{**NEWER, "text": "x"}]}).encode(), "other", "agent"),
        (json.dumps({"data": [{**OLDER_ADDRESS, "text": "x"}]}).encode(), ME, "user"),
        (_rpc({**NEWER, "text": "x"}, is_author=False), ME, "user"),
    ],
)
def test_roles(body: bytes, own_address: str | None, role: str) -> None:
    (event,) = decode(body, None, own_address).events
    assert event.sender.role == role  # type: ignore[union-attr]


@pytest.mark.parametrize("text", [None, "absent"])
def test_a_chat_row_without_text_is_a_message_without_text(text: str | None) -> None:
    """The SDK's types let a chat row's text be null (v4 `ConversationMessagePayload.text:
    string | null`) or absent (v3 `ConversationMessage.text?: string`), and its v4 `Address`
    keeps every chat row among the text messages: a message with empty text, its metadata
    kept, never an error and never dropped."""
    row: dict[str, Any] = {**ROW, "subtype": "chat", "metadata": {"attachment": "a.png"}}
    if text is None:
        row["text"] = None
    (event,) = decode(_rpc(row)).events
    assert isinstance(event, Message)
    assert event.content == Text("")
    assert event.metadata == {"attachment": "a.png"}


@pytest.mark.parametrize(
    "channel", ["signalwire_x", ["signalwire_x", "signalwire_y"], [], None], ids=repr
)
def test_event_channel_a_string_or_an_array(channel: Any) -> None:
    """v4 `core/RPCMessages/types/base.ts`: `EventChannel = string | string[]`."""
    (event,) = decode(_rpc({**ROW, "subtype": "chat", "text": "x"}, event_channel=channel)).events
    assert isinstance(event, Message)


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
        (_rpc({**ROW, "subtype": "chat", "text": 5}), "$.params.params.text"),
        (_rpc({**ROW, "subtype": "chat", "text": "x"}, event_channel=5), "$.params.event_channel"),
        (
            _rpc({**ROW, "subtype": "chat", "text": "x"}, event_channel=["a", 5]),
            "$.params.event_channel[1]",
        ),
        (_rpc("not a row"), "$.params.params"),  # type: ignore[arg-type]
        (
            b'{"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event", "params": null}',
            "$.params",
        ),
        (b'{"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event"}', "$"),
        (b'{"jsonrpc": "2.0", "id": {}, "method": "signalwire.event", "params": {}}', "$.id"),
        (json.dumps({**ROW, "conversation_id": "", "text": "x"}).encode(), "$.conversation_id"),
        (_rpc({**ROW, "conversation_id": 5, "text": "x"}), "$.params.params.conversation_id"),
        (b"[1]", "$"),
        (b"null", "$"),
    ],
)
def test_malformed_known_frames_name_the_path(body: bytes, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(body)
    assert info.value.details["path"] == path
    assert info.value.details["index"] == 0


def test_not_json_is_malformed() -> None:
    with pytest.raises(MalformedJSON):
        decode(b'{"id": ')


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
            decode(body)


def test_live_and_page_paths_stamp_the_same_at() -> None:
    """A live frame and a history page stamp a row's `ts` alike, as `to_at` does."""
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
        (event,) = decode(json.dumps(live)).events
        (page,) = decode(json.dumps({"data": [row], "links": {}})).events
        assert event.at == page.at == to_at(value), value


def test_bad_utf8_and_deep_nesting_are_malformed_json() -> None:
    body = json.dumps({**ROW, "subtype": "chat", "text": "Ada"}).encode()
    for bad in (body.replace(b'"Ada"', b'"\xffAda"'), b"[" * 3000 + b"]" * 3000):
        with pytest.raises(MalformedJSON):
            ADAPTER.decode(bad)


def test_an_is_author_event_teaches_the_own_address() -> None:
    """History rows carry no `is_author`: the live echo that does names the gateway's own
    address, which the conversation keeps (`learned`, for the hub) and later frames use."""
    echo = json.loads(_rpc({**NEWER, "text": "mine"}, is_author=True))
    later = {**NEWER, "id": "m2", "text": "mine too, from history"}
    decoded = decode(json.dumps([echo, later]))
    assert [e.sender.role for e in decoded.events] == ["user", "user"]  # type: ignore[attr-defined]
    assert decoded.learned == {f"signalwire:{CONV}": ConversationContext(own_address=ME)}
    assert decode(json.dumps([later])).events[0].sender.role == "agent"  # type: ignore[attr-defined]


def test_skipped_frames_are_counted_as_ignored() -> None:
    frames = [
        {"jsonrpc": "2.0", "id": "p1", "method": "signalwire.ping", "params": {}},
        {"jsonrpc": "2.0", "id": "c1", "result": {}},
        json.loads(_rpc({**ROW, "subtype": "reaction", "text": "x"})),
        json.loads(_rpc({**ROW, "text": "x"}, event_type="call.state")),
        {**ROW, "type": "event", "text": "x"},
        json.loads(_rpc({**ROW, "text": "kept"})),
    ]
    decoded = decode(json.dumps(frames))
    assert (len(decoded.events), decoded.ignored) == (1, 5)


def test_a_connector_batch_keeps_its_good_frames() -> None:
    """On a connector's socket (`isolate`), a bad frame becomes an `error` event naming it."""
    frames = [json.loads(_rpc({**ROW, "text": "good"})), json.loads(_rpc({**ROW, "ts": "soon"}))]
    body = json.dumps(frames).encode()
    decoded = decoding.decode(SPEC, body, conversation=CONV, isolate=True)
    message, error = decoded.events
    assert isinstance(message, Message) and message.content == Text("good")
    assert isinstance(error, Error)
    assert error.metadata == {"index": 1, "path": "$.params.params.ts"}
    assert decoded.rejected == 1
