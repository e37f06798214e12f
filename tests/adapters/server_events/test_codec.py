"""Decode tables for `server_events`: fixtures, context, timestamps, errors, isolation."""

from __future__ import annotations

import contextlib
import json
import pathlib
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.server_events import ServerEventsAdapter
from adapters.server_events import native as n
from adapters.server_events.decode import SPEC
from adapters.server_events.untimed import Untimed
from gateway import decoding, model
from gateway.codec import derived_id, to_at
from gateway.context import ConversationContext
from gateway.decoding import Decoded
from gateway.errors import DecodeError, GatewayError, MalformedJSON, RequestError
from gateway.model import Party

FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "server_events"
CASES = sorted(p.name[: -len(".expected.json")] for p in FIXTURES.glob("*.expected.json"))
CONV = "server_events:c1"
adapter = ServerEventsAdapter()


def read(
    body: bytes,
    conversation: str,
    context: ConversationContext | None = None,
    *,
    isolate: bool = False,
    **options: Any,
) -> Decoded:
    """The body as the pipeline decodes it for chat `conversation` in `context`, with the
    connector's `options` (`file_url`, `untimed`)."""
    contexts = {f"server_events:{conversation}": context} if context else None
    return decoding.decode(
        SPEC, body, conversation=conversation, contexts=contexts, options=options, isolate=isolate
    )


def learned(decoded: Decoded) -> ConversationContext:
    return decoded.learned.get(CONV, ConversationContext())


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The instant `now_at` gives (a body's `received_at`): `clock[0] = ...` sets it."""
    instant = ["2024-01-01T00:00:00.000Z"]
    monkeypatch.setattr(model, "clock", lambda: instant[0])
    return instant


def events_json(
    body: bytes, conversation: str, context: ConversationContext | None = None, **options: Any
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = msgspec.to_builtins(
        read(body, conversation, context, **options).events
    )
    for event in out:
        event.pop("seq", None)
    return out


@pytest.mark.parametrize("case", CASES)
def test_fixture(case: str) -> None:
    body = (FIXTURES / f"{case}.json").read_bytes()
    expected = json.loads((FIXTURES / f"{case}.expected.json").read_text())
    if "error" in expected:
        with pytest.raises(GatewayError) as info:
            adapter.decode(body, conversation=expected["conversation"])
        assert {"code": info.value.code, **info.value.details} == expected["error"]
        return
    decoded = adapter.decode(body, conversation=expected["conversation"])
    assert msgspec.to_builtins(decoded.events) == expected["events"]
    assert decoded.ignored == expected["ignored"]


def test_fixtures_cover_every_event_name() -> None:
    names = set()
    for path in FIXTURES.glob("*.json"):
        if path.name.endswith(".expected.json") or path.name.startswith("bad_"):
            continue
        body = json.loads(path.read_text())
        frames = body.get("events", [body]) if isinstance(body, dict) else body
        names |= {f["event"] for f in frames}
    assert set(n.EVENT_NAMES) <= names


# (frame, expected subset of the one canonical event)
DECODE_TABLE: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"event": "chat_session_status", "state": "connected", "timestamp": 1},
        {"type": "status", "status": "active"},
    ),
    (
        {"event": "chat_session_status", "state": "queued", "ewt": 12.5, "timestamp": 1},
        {"type": "status", "status": "queued", "wait_s": 12.5},
    ),
    (
        {"event": "chat_session_status", "state": "ivr", "ewt": "", "timestamp": 1},
        {"type": "status", "status": "queued"},
    ),
    (
        {"event": "chat_session_ended", "timestamp": 1},
        {"type": "ended", "reason": "completed"},
    ),
    (
        {"event": "chat_session_inactivity_timeout", "msg": "bye", "timestamp": 1},
        {"type": "ended", "reason": "inactivity", "by": "system", "text": "bye"},
    ),
    (
        {"event": "chat_session_timeout_warning", "msg": "still there?", "timestamp": 1},
        {"type": "notice", "kind": "inactivity_warning", "text": "still there?"},
    ),
    (
        {"event": "chat_session_message", "msg_id": "u1", "msg": "mine", "timestamp": 1},
        {"type": "message", "id": f"{CONV}/u1", "sender": {"role": "user"}},
    ),
    (
        {
            "event": "chat_session_message",
            "msg_id": "m",
            "msg": "",
            "msg_text": "x",
            "timestamp": 1,
        },
        {"type": "message", "content": {"kind": "text", "text": "x"}},
    ),
    (  # the iOS SDK's test message (Example/Tests/ContactCenterTests.swift): HTML and its text
        {
            "event": "chat_session_message",
            "msg_id": "m",
            "msg": "123<br>456",
            "msg_text": "123\n456",
            "timestamp": 1,
        },
        {"content": {"kind": "text", "text": "123\n456"}, "metadata": {"html": "123<br>456"}},
    ),
    (  # the client's own line in history: its party is the chat (iOS SDK ContactCenterEvent)
        {"event": "chat_session_message", "party_id": "c1", "msg_id": "u2", "msg": "mine"},
        {"type": "message", "id": f"{CONV}/u2", "sender": {"role": "user"}},
    ),
    (
        {"event": "chat_session_typing", "party_id": "c1", "timestamp": 1},
        {"type": "typing", "sender": {"role": "user"}},
    ),
    (
        {"event": "chat_session_not_typing", "party_id": "p9", "timestamp": 1},
        {"type": "typing", "active": False, "sender": {"role": "agent", "id": "p9"}},
    ),
    (
        {"event": "chat_session_party_joined", "party_id": "p", "first_name": "A", "timestamp": 1},
        {"type": "participant_joined", "participant": {"role": "agent", "id": "p", "name": "A"}},
    ),
    (
        {"event": "chat_session_party_left", "party_id": "known", "timestamp": 1},
        {"participant": {"role": "bot", "id": "known"}},
    ),
    (
        {
            "event": "chat_session_message",
            "party_id": "known",
            "msg_id": 1,
            "msg": "x",
            "timestamp": 1,
        },
        {"sender": {"role": "bot", "id": "known"}, "id": f"{CONV}/1"},
    ),
    (
        {"event": "chat_session_file", "msg_id": "f", "file_id": "F1", "timestamp": 1},
        {"content": {"kind": "file", "file_id": "F1", "url": "http://h/clientweb/file/F1"}},
    ),
    (
        {"event": "chat_session_signaling", "msg_id": "s", "data": {"sdp": "v=0"}, "timestamp": 1},
        {"type": "signal", "data": {"sdp": "v=0"}, "sender": {"role": "user"}},
    ),
    (  # coordinates as the iOS SDK decodes them: strings (Example/Tests/eventsFixture.txt)
        {"event": "chat_session_location", "latitude": "123.456", "longitude": "321.654"},
        {"content": {"kind": "location", "latitude": 123.456, "longitude": 321.654}},
    ),
    (
        {"event": "chat_session_location", "latitude": -33, "longitude": "151.2", "msg_id": "l"},
        {"id": f"{CONV}/l", "content": {"kind": "location", "latitude": -33.0, "longitude": 151.2}},
    ),
    (  # iOS types `msg_id` optional: the id is derived from the frame
        {"event": "chat_session_message", "party_id": "known", "msg": "x", "timestamp": 1},
        {"type": "message", "sender": {"role": "bot", "id": "known"}},
    ),
    (  # iOS types `ref_msg_id` optional (its test fixture's receipts carry none)
        {"event": "chat_session_message_read", "msg_id": "m3"},
        {"type": "receipt", "status": "read", "sender": {"role": "user"}},
    ),
]


@pytest.mark.parametrize(("frame", "expected"), DECODE_TABLE)
def test_decode_table(frame: dict[str, Any], expected: dict[str, Any]) -> None:
    (event,) = events_json(
        msgspec.json.encode(frame),
        "c1",
        ConversationContext(roles={"known": "bot"}),
        file_url="http://h/clientweb/file/{file_id}",
    )
    assert event | expected == event


def test_redecoding_gives_the_same_ids() -> None:
    body = (FIXTURES / "envelope_poll.json").read_bytes()
    assert events_json(body, "c1") == events_json(body, "c1")


def test_frames_without_timestamp_take_received_at(clock: list[str]) -> None:
    body = b'[{"event": "chat_session_typing"}, {"event": "chat_session_ended"}]'
    events = events_json(body, "c1")
    assert [e["at"] for e in events] == ["2024-01-01T00:00:00.000Z"] * 2


UNTIMED = [
    {"event": "chat_session_status", "state": "connected"},
    {"event": "chat_session_typing", "party_id": "a"},
    {"event": "chat_session_not_typing", "party_id": "a"},
    {"event": "chat_session_typing", "party_id": "a"},
    {"event": "chat_session_message", "party_id": "a", "msg_id": "m1", "msg": "hi"},
    {"event": "chat_session_typing", "party_id": "a"},
    {"event": "chat_session_timeout_warning", "msg": "still there?"},
    {"event": "chat_session_ended"},
]


def test_untimed_ids_do_not_depend_on_the_receive_time(clock: list[str]) -> None:
    body = msgspec.json.encode(UNTIMED)
    first = events_json(body, "c1")
    clock[0] = "2025-06-01T12:00:00.000Z"
    again = events_json(body, "c1")
    assert [e["id"] for e in first] == [e["id"] for e in again]  # a re-post deduplicates
    assert [e["at"] for e in again] == ["2025-06-01T12:00:00.000Z"] * len(UNTIMED)
    ids = [e["id"] for e in first]
    assert len(set(ids)) == len(ids)  # the agent typing again, before and after m1: new events


def test_untimed_ids_of_a_stream_in_batches_match_its_history() -> None:
    """The connector's polls (one `Untimed` across batches) give the ids history gives."""
    untimed = Untimed()
    polled = [
        event.id
        for frames in (UNTIMED[:2], UNTIMED[2:4], UNTIMED[4:6], UNTIMED[6:])
        for event in read(msgspec.json.encode(frames), "c1", untimed=untimed).events
    ]
    history = [e["id"] for e in events_json(msgspec.json.encode(UNTIMED), "c1")]
    assert polled == history


def test_untimed_frames_count_from_a_message_earlier_in_the_body() -> None:
    message = {"event": "chat_session_message", "msg_id": "m0", "msg": "x", "timestamp": 1}
    typing = {"event": "chat_session_typing", "party_id": "a"}
    (_, alone) = events_json(msgspec.json.encode([message, typing]), "c1")
    untimed = Untimed()
    read(msgspec.json.encode(message), "c1", untimed=untimed)
    (polled,) = read(msgspec.json.encode(typing), "c1", untimed=untimed).events
    assert alone["id"] == polled.id
    (first,) = events_json(msgspec.json.encode(typing), "c1")
    assert first["id"] != alone["id"]  # after m0 is not the start of the stream


def test_timed_ids_are_unchanged_by_the_stream_position() -> None:
    frame = {"event": "chat_session_typing", "party_id": "a", "timestamp": 1700000000123}
    alone = events_json(msgspec.json.encode(frame), "c1")
    after = events_json(msgspec.json.encode([*UNTIMED[:5], frame]), "c1")
    assert alone[0]["id"] == after[-1]["id"]


@pytest.mark.parametrize(
    "body",
    [b'{"event": "chat_session_ended"}', b'[{"event": "chat_session_typing"}]'],
)
@pytest.mark.parametrize("conversation", [None, ""])
def test_known_frames_need_the_conversation(body: bytes, conversation: str | None) -> None:
    with pytest.raises(RequestError) as info:
        adapter.decode(body, conversation=conversation)
    assert info.value.code == "INVALID_REQUEST"
    assert info.value.details == {"parameter": "conversation"}


BAD_TABLE: list[tuple[bytes, int, str]] = [
    (b'{"event": "chat_session_message", "msg_id": [], "msg": "x"}', 0, "$.msg_id"),
    (b'[{"event": "zzz"}, {"event": "chat_session_typing", "party_id": 1}]', 1, "$.party_id"),
    (b'{"events": [{"event": "chat_session_location", "latitude": "n"}]}', 0, "$"),
    (
        b'{"events": [{"event": "chat_session_location", "latitude": "n", "longitude": 1}]}',
        0,
        "$.latitude",
    ),
    (b'[{"event": "chat_session_location", "latitude": 1, "longitude": "inf"}]', 0, "$.longitude"),
    (b'[{"event": "chat_session_location", "latitude": [], "longitude": 1}]', 0, "$.latitude"),
    (
        b'{"event": "chat_session_file", "msg_id": "m", "file_id": "f", "file_type": "x"}',
        0,
        "$.file_type",
    ),
    (
        b'{"event": "chat_session_form_show", "form_request_id": "r", "form_name": "f",'
        b' "form_timeout": "later"}',
        0,
        "$.form_timeout",
    ),
    (b'{"event": "chat_session_file", "msg_id": "m", "file_id": ""}', 0, "$.file_id"),
    (b'{"event": "chat_session_ended", "timestamp": true}', 0, "$.timestamp"),
    (b'{"event": "chat_session_ended", "timestamp": {}}', 0, "$.timestamp"),
    (b'{"event": "chat_session_ended", "timestamp": "nan"}', 0, "$.timestamp"),
    (b'{"event": "chat_session_ended", "timestamp": 1e300}', 0, "$.timestamp"),
    (b'{"event": "chat_session_ended", "timestamp": "99999-01-01"}', 0, "$.timestamp"),
    (b'{"event": "chat_session_status", "state": "queued", "ewt": "inf"}', 0, "$.ewt"),
    (b'{"event": 7}', 0, "$.event"),
    (b"{}", 0, "$"),
    (b"null", 0, "$"),
    (b"[[]]", 0, "$"),
    (b'{"events": null}', 0, "$.events"),
]


@pytest.mark.parametrize(("body", "index", "path"), BAD_TABLE)
def test_malformed_known_frames(body: bytes, index: int, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        adapter.decode(body, conversation="c1")
    assert (info.value.code, info.value.details) == (
        "INVALID_FRAME",
        {"index": index, "path": path},
    )


@pytest.mark.parametrize("body", [b"", b"{", b"[1,", b"\xff", b"chat_session_ended"])
def test_not_json(body: bytes) -> None:
    with pytest.raises(MalformedJSON):
        adapter.decode(body, conversation="c1")


STAMPS: list[str | float] = [
    0,
    1,
    1700000000,
    1700000000.5,
    1700000000.0005,
    1700000000.9996,
    1700000000123,
    1700000000999.6,
    99999999999,
    100000000001,
    "1700000000",
    "1700000000123",
    " 1700000000123 ",
    "1700000000.25",
    "2023-11-14T22:13:20.123+02:00",
    "2023-11-14T22:13:20",
    253402300799,
    253402300799.9999,
    -1.5,
    -5,
    -100000000001,
    "00001700000000123",
    "\uff11\uff17\uff10\uff10",
    2**33 * 1000 + 999,
    2**34,
    "1700000000123.0",
    "7999999999999",
    "8999999999999",
    "0700000000123",
    "1700000000\u0661\u0662\u0663",
    100000000000,
    "0100000000001",
    "9999999999999",
    "170000000012\u0663",
    True,
]


def _decoded_at(value: str | float) -> str:
    body = msgspec.json.encode({"event": "chat_session_ended", "timestamp": value})
    (event,) = read(body, "c1").events
    return event.at


@pytest.mark.parametrize("value", STAMPS)
def test_timestamps_are_to_at(value: str | float) -> None:
    """Timestamps are `gateway.codec.to_at`'s, and its refusals are DecodeErrors."""
    try:
        expected = to_at(value)
    except ValueError:
        with pytest.raises(DecodeError) as info:
            _decoded_at(value)
        assert info.value.details == {"index": 0, "path": "$.timestamp"}
        return
    assert _decoded_at(value) == expected


def test_timestamps_agree_on_a_sweep() -> None:
    base = 1700000000.0
    for step in range(500):
        value = base + step * 0.0001237
        assert _decoded_at(value) == to_at(value), value
        assert _decoded_at(value * 1000) == to_at(value * 1000), value
        assert _decoded_at(str(int(value * 1000))) == to_at(int(value * 1000)), value


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_fields = st.sampled_from(
    [
        "msg_id",
        "msg",
        "msg_text",
        "party_id",
        "timestamp",
        "state",
        "ewt",
        "file_id",
        "file_type",
        "latitude",
        "longitude",
        "form_request_id",
        "form_name",
        "form_timeout",
        "ref_msg_id",
        "case_id",
        "type",
        "data",
    ]
)
_frames = st.builds(
    lambda name, fields: {"event": name, **fields},
    st.sampled_from(sorted(n.EVENT_NAMES)),
    st.dictionaries(
        _fields, _json_values | st.text(alphabet="0123456789", max_size=14), max_size=5
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_frames, st.lists(_frames, max_size=3), _json_values))
def test_decode_raises_only_gateway_errors(body: Any) -> None:
    with contextlib.suppress(GatewayError):  # any other exception fails the test
        adapter.decode(msgspec.json.encode(body), conversation="c1")


WHEN = object()  # the frame's canonical `at`, or its place in a fresh stream when untimed

# (frame, the parts `gateway.codec.derived_id` takes for it, as docs/dialects/server_events.md says)
DERIVED: list[tuple[dict[str, Any], tuple[Any, ...]]] = [
    (
        {"event": "chat_session_status", "state": "ivr", "timestamp": 1},
        ("chat_session_status", WHEN, "ivr"),
    ),
    ({"event": "chat_session_typing", "timestamp": 1}, ("chat_session_typing", WHEN, None)),
    (
        {"event": "chat_session_not_typing", "party_id": "p"},
        ("chat_session_not_typing", WHEN, "p"),
    ),
    (
        {"event": "chat_session_party_joined", "party_id": "p"},
        ("chat_session_party_joined", WHEN, "p"),
    ),
    (
        {"event": "chat_session_party_left", "party_id": "p", "timestamp": "1700000000123"},
        ("chat_session_party_left", WHEN, "p"),
    ),
    ({"event": "chat_session_ended"}, ("chat_session_ended", WHEN)),
    ({"event": "chat_session_inactvity_timeout"}, ("chat_session_inactivity_timeout", WHEN)),
    (
        {"event": "chat_session_timeout_warning", "msg": "m", "timestamp": 2.5},
        ("chat_session_timeout_warning", WHEN, "m"),
    ),
    (
        {"event": "chat_session_location", "latitude": 1, "longitude": -0.1, "timestamp": "1"},
        ("chat_session_location", WHEN, None, 1.0, -0.1),
    ),
    (
        {"event": "chat_session_form_show", "form_request_id": 7, "form_name": "f"},
        ("chat_session_form_show", 7),
    ),
    ({"event": "chat_session_case_set", "case_id": 42}, ("chat_session_case_set", 42)),
    (
        {"event": "chat_session_message_read", "ref_msg_id": 3},
        ("chat_session_message_read", 3, None),
    ),
    (
        {"event": "chat_session_message_delivered", "ref_msg_id": "m", "party_id": "p"},
        ("chat_session_message_delivered", "m", "p"),
    ),
]


@pytest.mark.parametrize(("frame", "parts"), DERIVED)
def test_derived_ids_are_gateway_derived_ids(frame: dict[str, Any], parts: tuple[Any, ...]) -> None:
    """The builders' `joined_id` keys give `gateway.codec.derived_id` of the documented parts."""
    (event,) = read(msgspec.json.encode(frame), "c1").events
    when = event.at if "timestamp" in frame else "~#0"
    expected = derived_id(CONV, *(when if part is WHEN else part for part in parts))
    assert event.id == expected


def test_untimed_frames_of_a_body_count_from_its_last_message_with_an_id() -> None:
    """Without an `Untimed`, the first untimed frame of a body looks back for the last message
    with a `msg_id` (a location may have none): the place polls frame by frame give it."""
    frames = [
        {"event": "chat_session_file", "msg_id": 5, "file_id": "f", "timestamp": 1},
        {"event": "chat_session_message", "msg_id": "m1", "msg": "x", "timestamp": 2},
        {"event": "chat_session_location", "latitude": 1, "longitude": 2, "timestamp": 3},
        {"event": "chat_session_status", "state": "queued", "timestamp": 4},
        {"event": "chat_session_typing", "party_id": "a"},
        {"event": "chat_session_message", "msg_id": "m2", "msg": "y"},
        {"event": "chat_session_typing", "party_id": "a"},
    ]
    untimed = Untimed()
    polled = [
        read(msgspec.json.encode(frame), "c1", untimed=untimed).events[0].id for frame in frames
    ]
    assert [e["id"] for e in events_json(msgspec.json.encode(frames), "c1")] == polled
    assert read(msgspec.json.encode(frames[2:5]), "c1").events[2].id != polled[4]


@pytest.mark.parametrize(
    "body",
    [
        b'{"event":"chat_session_message","msg_id":"m","msg":"\xff","timestamp":1}',
        b'[{"event":"chat_session_message","msg_id":"m","msg":"\xff","timestamp":1}]',
        b'{"events":[{"event":"chat_session_message","msg_id":"m","msg":"\xff"}]}',
        b'[{"event":"zzz"},{"event":"chat_session_message","msg_id":"m","msg":"\xed\xa0\x80"}]',
        b'{"event":"chat_session_signaling","msg_id":1,"data":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'[{"event":"chat_session_signaling","msg_id":1,"data":'
        + b"[" * 5000
        + b"]" * 5000
        + b"}]",
    ],
)
def test_bad_utf8_and_deep_nesting_are_malformed_json(body: bytes) -> None:
    with pytest.raises(MalformedJSON):
        adapter.decode(body, conversation="c1")
    with pytest.raises(MalformedJSON):  # the connector's reading too, isolation or not
        read(body, "c1", isolate=True)


# ---------------------------------------------------------------------------------------------
# The conversation's context: roles in, roles learned out, the same event whichever way


JOIN_BOT = {
    "event": "chat_session_party_joined",
    "party_id": "sc-1",
    "display_name": "Helper",
    "type": "scenario",
    "timestamp": 1700000000100,
}
BOT_SAYS = {
    "event": "chat_session_message",
    "party_id": "sc-1",
    "msg_id": "b1",
    "msg": "I am a bot",
    "timestamp": 1700000000200,
}


@pytest.mark.parametrize(
    ("kind", "role"), [("scenario", "bot"), ("internal", "agent"), ("external", "external")]
)
def test_a_join_teaches_the_role_of_later_frames(kind: str, role: str) -> None:
    join = {**JOIN_BOT, "type": kind}
    body = msgspec.json.encode({"events": [join, BOT_SAYS, {**BOT_SAYS, "msg_id": "b2"}]})
    reading = read(body, "c1")
    assert learned(reading) == ConversationContext(roles={"sc-1": role})
    assert [e.sender.role for e in reading.events[1:]] == [role, role]  # type: ignore[union-attr]


def test_a_role_learned_from_one_body_holds_in_the_next() -> None:
    """Poll by poll (context in, learned out) or as one history body: the same events."""
    first = read(msgspec.json.encode(JOIN_BOT), "c1")
    later = read(msgspec.json.encode(BOT_SAYS), "c1", learned(first))
    together = read(msgspec.json.encode([JOIN_BOT, BOT_SAYS]), "c1")
    assert [*first.events, *later.events] == together.events
    (said,) = later.events
    assert said.sender == Party(role="bot", id="sc-1")  # type: ignore[union-attr]
    assert learned(later) == ConversationContext()  # nothing new


def test_without_context_an_unannounced_party_is_an_agent() -> None:
    (said,) = read(msgspec.json.encode(BOT_SAYS), "c1").events
    assert said.sender == Party(role="agent", id="sc-1")  # type: ignore[union-attr]


def test_the_chat_id_is_the_client_whatever_the_context_says() -> None:
    context = ConversationContext(roles={"c1": "agent"})
    line = {**BOT_SAYS, "party_id": "c1"}
    (said,) = read(msgspec.json.encode(line), "c1", context).events
    assert said.sender == Party(role="user")  # type: ignore[union-attr]


def test_isolation_keeps_the_good_frames_of_a_batch() -> None:
    body = msgspec.json.encode(
        {
            "events": [
                BOT_SAYS,
                {"event": "chat_session_message", "msg_id": "bad", "msg": 42},
                {"event": "chat_session_location", "latitude": "north", "longitude": 1},
                {"event": "zzz"},
                {**BOT_SAYS, "msg_id": "b2"},
            ]
        }
    )
    with pytest.raises(DecodeError):
        read(body, "c1")
    reading = read(body, "c1", isolate=True)
    good, errors = reading.events[:2], reading.events[2:]
    assert [e.id for e in good] == [f"{CONV}/b1", f"{CONV}/b2"]
    assert [(type(e), e.metadata) for e in errors] == [
        (model.Error, {"index": 1, "path": "$.msg"}),
        (model.Error, {"index": 2, "path": "$.latitude"}),
    ]
    assert (reading.ignored, reading.rejected) == (1, 2)


def test_the_ios_sdks_own_events_fixture(clock: list[str]) -> None:
    """CAPTURED: ServicePattern/MobileAPI_IOS `Example/Tests/eventsFixture.txt` (commit c309b30),
    the body the iOS SDK's decoding test reads. Its first frames carry no timestamp (their `at`
    is the time of decoding), so it has no `.expected.json` (those must decode the same at any
    time): what each frame becomes is listed here."""
    body = (FIXTURES / "ios_sdk_events_fixture.json").read_bytes()
    decoded = adapter.decode(body, conversation="c1")
    assert decoded.ignored == 2  # chat_session_disconnect, chat_session_end: client events
    summary = [
        (type(e).__name__, getattr(e, "sender", None) or getattr(e, "participant", None), e.at)
        for e in decoded.events
    ]
    received, user = clock[0], Party(role="user")
    assert summary == [
        ("Status", None, received),
        ("Status", None, received),
        ("Status", None, received),
        ("Message", user, received),
        ("Message", user, received),
        ("Receipt", user, received),
        ("Receipt", user, received),
        ("Message", Party(role="agent", id="<party id>"), "2021-02-16T10:45:42.000Z"),
        (
            "ParticipantJoined",
            Party(role="agent", id="<party id>", name="<party display name>"),
            "2021-02-16T10:48:23.000Z",
        ),
        (
            "ParticipantJoined",
            Party(role="bot", id="<party id>2", name="<party display name>2"),
            "2021-02-16T10:48:24.000Z",
        ),
        (
            "ParticipantJoined",
            Party(role="external", id="<party id>3", name="<party display name>3"),
            "2021-02-16T10:48:25.000Z",
        ),
        ("ParticipantLeft", Party(role="bot", id="<party id>2"), "2021-02-16T10:48:26.000Z"),
        ("Notice", None, "2021-02-16T10:48:27.000Z"),
        ("Ended", None, "2021-02-16T10:48:28.000Z"),
        ("Message", Party(role="bot", id="<party id>2"), "2021-02-16T10:48:26.000Z"),
    ]
    statuses = [(e.status, e.wait_s) for e in decoded.events if isinstance(e, model.Status)]
    assert statuses == [("queued", 10.0), ("connecting", 20.0), ("active", 30.0)]
    location = decoded.events[-1]
    assert isinstance(location, model.Message)
    assert location.content == model.Location(latitude=123.456, longitude=321.654)
    receipts = [e for e in decoded.events if isinstance(e, model.Receipt)]
    assert [(r.status, r.message_id) for r in receipts] == [("delivered", None), ("read", None)]
    assert len({e.id for e in decoded.events}) == len(decoded.events)
