"""Decode tables for the `server_events` codec: fixtures, context, timestamps, errors."""

from __future__ import annotations

import contextlib
import json
import pathlib
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.server_events import ServerEventsAdapter, codec
from gateway import model
from gateway.codec import derived_id, to_at
from gateway.errors import DecodeError, GatewayError, MalformedJSON, RequestError
from gateway.model import Party

FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "server_events"
CASES = sorted(p.name[: -len(".expected.json")] for p in FIXTURES.glob("*.expected.json"))
CONV = "server_events:c1"
adapter = ServerEventsAdapter()


def events_json(body: bytes, conversation: str | None, **context: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = msgspec.to_builtins(
        codec.decode(body, conversation, **context).events
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
    assert set(codec.n.EVENT_NAMES) <= names


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
        {"type": "message", "content": {"kind": "text", "text": ""}},
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
        {"participant": {"role": "bot", "id": "known", "name": "Bot"}},
    ),
    (
        {
            "event": "chat_session_message",
            "party_id": "known",
            "msg_id": 1,
            "msg": "x",
            "timestamp": 1,
        },
        {"sender": {"role": "bot", "id": "known", "name": "Bot"}, "id": f"{CONV}/1"},
    ),
    (
        {"event": "chat_session_file", "msg_id": "f", "file_id": "F1", "timestamp": 1},
        {"content": {"kind": "file", "file_id": "F1", "url": "http://h/clientweb/file/F1"}},
    ),
    (
        {"event": "chat_session_signaling", "msg_id": "s", "data": {"sdp": "v=0"}, "timestamp": 1},
        {"type": "signal", "data": {"sdp": "v=0"}, "sender": {"role": "user"}},
    ),
]


@pytest.mark.parametrize(("frame", "expected"), DECODE_TABLE)
def test_decode_table(frame: dict[str, Any], expected: dict[str, Any]) -> None:
    (event,) = events_json(
        msgspec.json.encode(frame),
        "c1",
        parties={"known": Party(role="bot", id="known", name="Bot")},
        file_url="http://h/clientweb/file/{file_id}",
    )
    assert event | expected == event


def test_redecoding_gives_the_same_ids() -> None:
    body = (FIXTURES / "envelope_poll.json").read_bytes()
    assert events_json(body, "c1") == events_json(body, "c1")


def test_frames_without_timestamp_take_received_at() -> None:
    body = b'[{"event": "chat_session_typing"}, {"event": "chat_session_ended"}]'
    events = events_json(body, "c1", received_at="2024-01-01T00:00:00.000Z")
    assert [e["at"] for e in events] == ["2024-01-01T00:00:00.000Z"] * 2
    events = events_json(body, "c1")
    assert events[0]["at"] == events[1]["at"]  # one instant per batch


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


def test_untimed_ids_do_not_depend_on_the_receive_time() -> None:
    body = msgspec.json.encode(UNTIMED)
    first = events_json(body, "c1", received_at="2024-01-01T00:00:00.000Z")
    again = events_json(body, "c1", received_at="2025-06-01T12:00:00.000Z")
    assert [e["id"] for e in first] == [e["id"] for e in again]  # a re-post deduplicates
    assert [e["at"] for e in again] == ["2025-06-01T12:00:00.000Z"] * len(UNTIMED)
    ids = [e["id"] for e in first]
    assert len(set(ids)) == len(ids)  # the agent typing again, before and after m1: new events


def test_untimed_ids_of_a_stream_in_batches_match_its_history() -> None:
    """The connector's polls (one `Untimed` across batches) give the ids history gives."""
    untimed = codec.Untimed()
    polled = [
        event.id
        for frames in (UNTIMED[:2], UNTIMED[2:4], UNTIMED[4:6], UNTIMED[6:])
        for event in codec.decode(msgspec.json.encode(frames), "c1", untimed=untimed).events
    ]
    history = [e["id"] for e in events_json(msgspec.json.encode(UNTIMED), "c1")]
    assert polled == history


def test_untimed_frames_count_from_a_message_earlier_in_the_body() -> None:
    message = {"event": "chat_session_message", "msg_id": "m0", "msg": "x", "timestamp": 1}
    typing = {"event": "chat_session_typing", "party_id": "a"}
    (_, alone) = events_json(msgspec.json.encode([message, typing]), "c1")
    untimed = codec.Untimed()
    codec.decode(msgspec.json.encode(message), "c1", untimed=untimed)
    (polled,) = codec.decode(msgspec.json.encode(typing), "c1", untimed=untimed).events
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
    (b'{"event": "chat_session_message", "msg_id": null, "msg": "x"}', 0, "$.msg_id"),
    (b'{"event": "chat_session_message", "msg_id": [], "msg": "x"}', 0, "$.msg_id"),
    (b'[{"event": "zzz"}, {"event": "chat_session_typing", "party_id": 1}]', 1, "$.party_id"),
    (b'{"events": [{"event": "chat_session_location", "latitude": "n"}]}', 0, "$.latitude"),
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
    (event,) = codec.decode(body, "c1").events
    return event.at


@pytest.mark.parametrize("value", STAMPS)
def test_timestamps_are_to_at(value: str | float) -> None:
    """The codec's timestamps are `gateway.codec.to_at`'s, and its refusals are DecodeErrors."""
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


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(2**40), max_value=2**49))
def test_epoch_milliseconds_are_to_at_before_and_after_their_second_is_cached(ms: int) -> None:
    """`_frame_at` formats epoch milliseconds itself once `to_at` has cached their second: the
    same time (or refusal) either way, for the int and for its digits as a string."""
    for value in (ms, str(ms), ms):  # the first finds its second uncached (unless drawn before)
        try:
            decoded = _decoded_at(value)
        except DecodeError:
            with pytest.raises(ValueError, match="timestamp"):
                to_at(value)
            continue
        assert decoded == to_at(value), value


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
    st.sampled_from(sorted(codec.n.EVENT_NAMES)),
    st.dictionaries(
        _fields, _json_values | st.text(alphabet="0123456789", max_size=14), max_size=5
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_frames, st.lists(_frames, max_size=3), _json_values))
def test_decode_raises_only_gateway_errors(body: Any) -> None:
    with contextlib.suppress(GatewayError):  # any other exception fails the test
        adapter.decode(msgspec.json.encode(body), conversation="c1")


# ---------------------------------------------------------------------------------------------
# The fast path (`codec._typed_frames`) must give exactly the exact path's frames, or step aside


def _agree(body: bytes) -> codec._Frames | None:
    """Check that the fast path agrees with the exact one on `body`; its answer."""
    fast = codec._typed_frames(body)
    try:
        frames, ignored = codec._exact_frames(body)
    except GatewayError:
        assert fast is None  # every error is the exact path's to raise
        return fast
    if fast is not None:
        assert (list(fast[0]), fast[1]) == (list(frames), ignored)
        assert [type(f) for f in fast[0]] == [type(f) for f in frames]
    return fast


def _outcome(body: bytes, conversation: str | None, **context: Any) -> Any:
    """What `codec.decode` gives for `body`: its events and count, or its error."""
    try:
        decoded = codec.decode(body, conversation, **context)
    except (GatewayError, RecursionError) as exc:
        return (type(exc), str(exc), getattr(exc, "details", None))
    return msgspec.to_builtins(decoded)


def _minified(body: bytes) -> bytes:
    return json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("case", CASES)
def test_fast_path_agrees_on_every_fixture(case: str) -> None:
    body = (FIXTURES / f"{case}.json").read_bytes()
    _agree(body)
    with contextlib.suppress(ValueError):  # bad_malformed_json
        minified = _minified(body)
        fast = _agree(minified)
        if not case.startswith("bad_"):  # the benchmark's bodies: all on the fast path
            assert fast is not None


ODD_BODIES: list[bytes] = [
    # an envelope that also names an event: the exact path reads one or the other
    b'{"events":[{"event":"chat_session_ended","timestamp":1}],"event":"chat_session_ended"}',
    b'{"events":[{"event":"chat_session_ended","timestamp":1}],"event":"zzz"}',
    b'{"event":"zzz","events":[{"event":"chat_session_ended","timestamp":1}]}',
    b'{"event":"chat_session_ended","events":[{"event":"zzz"}]}',
    b'{"events":[{"event":"zzz"},{"event":"chat_session_ended"}],"event":7}',
    # repeated keys: the typed and the untyped readings must not part ways
    b'{"event":"chat_session_ended","event":"zzz"}',
    b'{"event":"zzz","event":"chat_session_ended"}',
    b'[{"event":"zzz"},{"event":"chat_session_ended","event":"chat_session_ended"}]',
    b'[{"event":"zzz"},{"event":"zzz","event":"chat_session_ended"}]',
    b'{"events":[{"event":"zzz"}],"events":[{"event":"chat_session_ended"}]}',
    b'[{"event":"chat_session_party_left","party_id":"a","party_id":"b"},{"event":"x"}]',
    # unknown single frames, empty forms, and the rest
    b'{"event":"chat_session_end"}',
    b'{"event":null}',
    b"{}",
    b"[]",
    b'{"events":[]}',
    b'{"events":{}}',
    b' {"event":"chat_session_ended"}',
    b'{"events":[{"event":"zzz"},1]}',
    b'[{"event":"zzz"},{"event":"chat_session_typing","party_id":1}]',
    b'[{"event":"zzz"},{"event":"chat_session_ended","timestamp":1e400}]',
    b'[{"event":"zzz"},' + b"[" * 5000 + b"]" * 5000 + b"]",
    b'[{"event":"zzz"},{"event":"chat_session_signaling","msg_id":1,"data":'
    + b"[" * 5000
    + b"]" * 5000
    + b"}]",
    b'[{"event":"zzz"}] x',
    b'{"events":[{"event":"zzz"}]',
]


def _exact_only(patch: pytest.MonkeyPatch) -> None:
    """Turn the fast paths off: `_typed_frames`, and `decode`'s own path for one frame (which
    takes the bodies starting with `_FRAME_START`)."""
    patch.setattr(codec, "_typed_frames", lambda body: None)
    patch.setattr(codec, "_FRAME_START", b"\x00never")


@pytest.mark.parametrize("body", ODD_BODIES)
def test_fast_path_agrees_on_odd_bodies(body: bytes) -> None:
    _agree(body)
    try:
        fast: Any = events_json(body, "c1", received_at="2024-01-01T00:00:00.000Z")
    except (GatewayError, RecursionError) as exc:
        fast = (type(exc), str(exc), getattr(exc, "details", None))
    with pytest.MonkeyPatch.context() as patch:  # the whole decode on the exact path alone
        _exact_only(patch)
        try:
            exact: Any = events_json(body, "c1", received_at="2024-01-01T00:00:00.000Z")
        except (GatewayError, RecursionError) as exc:
            exact = (type(exc), str(exc), getattr(exc, "details", None))
    assert fast == exact


_unknown = st.builds(
    lambda name, fields: {"event": name, **fields},
    st.sampled_from(["chat_session_end", "chat_session_form_data", "zzz"]),
    st.dictionaries(_fields, _json_values, max_size=2),
)
_any_frame = st.one_of(_frames, _unknown, _json_values)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        _any_frame,
        st.lists(_any_frame, max_size=4),
        st.builds(lambda frames: {"events": frames}, st.lists(_any_frame, max_size=4)),
        st.builds(
            lambda frames, event: {"events": frames, "event": event},
            st.lists(_any_frame, max_size=3),
            _json_values | st.sampled_from(sorted(codec.n.EVENT_NAMES)),
        ),
    )
)
def test_fast_path_agrees_on_generated_bodies(body: Any) -> None:
    encoded = msgspec.json.encode(body)
    _agree(encoded)
    context = {"received_at": "2024-01-01T00:00:00.000Z"}
    fast = _outcome(encoded, "c1", **context)
    with pytest.MonkeyPatch.context() as patch:  # the whole decode on the exact path alone
        _exact_only(patch)
        assert _outcome(encoded, "c1", **context) == fast


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
    (event,) = codec.decode(msgspec.json.encode(frame), "c1").events
    when = event.at if "timestamp" in frame else "~#0"
    expected = derived_id(CONV, *(when if part is WHEN else part for part in parts))
    assert event.id == expected


# ---------------------------------------------------------------------------------------------
# `decode`'s own path for a body of one frame (built without `to_events`' loop) must give what
# the loop gives, errors and the state of a stream's `Untimed` included.


_ONE_FRAME_BODIES = [
    *((FIXTURES / f"{case}.json").read_bytes() for case in CASES),
    *(body for body, _, _ in BAD_TABLE),
    b'{"event":"chat_session_typing","party_id":"a","timestamp":0}',
    b'{"event":"chat_session_typing","party_id":"a","timestamp":""}',
    b'{"event":"chat_session_message","msg_id":"m","msg":"x","timestamp":1e400}',
    b'{"event":"chat_session_message","msg_id":"m","party_id":"a","msg":"x","timestamp":1}',
    b'{"event":"chat_session_party_joined","party_id":"a","first_name":"A","timestamp":1}',
    b'{"event":"chat_session_file","msg_id":"m","file_id":"f","file_type":"image","timestamp":1}',
    b'{"event":"chat_session_end","timestamp":1}',
    b'{"event":"chat_session_ended","timestamp":1} x',
]
_CONTEXTS: list[dict[str, Any]] = [
    {},
    {"parties": {"a": Party(role="bot", id="a", name="A")}, "file_url": "https://f/{file_id}"},
    {"received_at": "2024-01-01T00:00:00.000Z"},
]


@pytest.mark.parametrize("body", _ONE_FRAME_BODIES)
@pytest.mark.parametrize("conversation", ["c1", None])
@pytest.mark.parametrize("context", _CONTEXTS)
def test_one_frame_path_agrees_with_the_loop(
    body: bytes, conversation: str | None, context: dict[str, Any]
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        # One clock for both: an untimed frame without `received_at` is stamped "now".
        patch.setattr(model, "clock", lambda: "2024-05-05T05:05:05.005Z")
        with pytest.MonkeyPatch.context() as slow_path:
            slow_path.setattr(codec, "_FRAME_START", b"\x00never")  # to `to_events`
            slow = _outcome(body, conversation, **context)
        assert _outcome(body, conversation, **context) == slow


def test_one_frame_path_anchors_the_stream() -> None:
    """A timed message decoded alone moves a stream's `Untimed` as the loop moves it."""
    message = b'{"event":"chat_session_message","msg_id":"m9","msg":"x","timestamp":1}'
    typing = b'{"event":"chat_session_typing","party_id":"a"}'
    ids = []
    for one_frame_path in (True, False):
        untimed = codec.Untimed()
        with pytest.MonkeyPatch.context() as patch:
            if not one_frame_path:
                patch.setattr(codec, "_FRAME_START", b"\x00never")
            codec.decode(message, "c1", untimed=untimed)
            ids.append(codec.decode(typing, "c1", untimed=untimed).events[0].id)
    assert (
        ids[0] == ids[1] == codec.decode(b"[" + message + b"," + typing + b"]", "c1").events[1].id
    )


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
    untimed = codec.Untimed()
    polled = [
        codec.decode(msgspec.json.encode(frame), "c1", untimed=untimed).events[0].id
        for frame in frames
    ]
    assert [e["id"] for e in events_json(msgspec.json.encode(frames), "c1")] == polled
    assert codec.decode(msgspec.json.encode(frames[2:5]), "c1").events[2].id != polled[4]


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
def test_decode_itself_keeps_the_adapter_contract(body: bytes) -> None:
    """The adapter's `decode` is `codec.decode` itself: it maps bad UTF-8 and deep nesting."""
    assert adapter.decode is codec.decode
    with pytest.raises(MalformedJSON):
        codec.decode(body, conversation="c1")
