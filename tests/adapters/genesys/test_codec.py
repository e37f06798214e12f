"""The genesys codec: fixtures, decode tables, error paths, robustness. Pure, no I/O."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.genesys import GenesysAdapter
from adapters.genesys.decode import SPEC, ended
from adapters.genesys.errors import command_error, error_code
from gateway import model
from gateway.codec import derived_id
from gateway.errors import (
    DecodeError,
    GatewayError,
    MalformedJSON,
    RequestError,
    SessionNotFound,
    Unsupported,
    VendorError,
)
from gateway.model import Ended, Error, Message, Text, Url

FIXTURES = Path(__file__).parents[2] / "fixtures" / "genesys"
CASES = sorted(p.name[: -len(".expected.json")] for p in FIXTURES.glob("*.expected.json"))
ADAPTER = GenesysAdapter()
CHAT = "c1"
CONV = "genesys:c1"
T = 1432845095000
AT = "2015-05-28T20:31:35.000Z"
AGENT = {"nickname": "Anna", "participantId": "7", "type": "Agent"}


def decode(body: Any, conversation: str | None = CHAT) -> list[dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    events = ADAPTER.decode(raw, conversation=conversation).events
    return [msgspec.to_builtins(e) for e in events]


@pytest.mark.parametrize("case", CASES)
def test_fixture(case: str) -> None:
    expected = json.loads((FIXTURES / f"{case}.expected.json").read_text())
    body = (FIXTURES / f"{case}.json").read_bytes()
    if "error" in expected:
        with pytest.raises(GatewayError) as info:
            ADAPTER.decode(body, conversation=expected["conversation"])
        got = {"code": info.value.code, **info.value.details}
        assert got == expected["error"]
        return
    decoded = ADAPTER.decode(body, conversation=expected["conversation"])
    assert [msgspec.to_builtins(e) for e in decoded.events] == expected["events"]
    assert decoded.ignored == expected["ignored"]


def test_fixtures_cover_every_entry_type() -> None:
    seen: set[str] = set()
    for case in CASES:
        if case.startswith("bad_"):
            continue
        body = json.loads((FIXTURES / f"{case}.json").read_text())
        frames = body if isinstance(body, list) else body.get("messages", body.get("transcript"))
        frames = frames if frames is not None else [body]
        seen |= {f["type"] for f in frames}
    assert seen >= SPEC.known


# --- decode tables --------------------------------------------------------------------------

ROLE_TABLE = [
    ("Client", "user"),
    ("client", "user"),
    ("Agent", "agent"),
    ("agent", "agent"),
    ("Supervisor", "supervisor"),
    ("supervisor", "supervisor"),
    ("External", "system"),
    ("external", "system"),
    ({"client": True}, "user"),
    ({"agent": False, "external": True}, "system"),
]


@pytest.mark.parametrize(("native", "role"), ROLE_TABLE)
def test_party_roles(native: Any, role: str) -> None:
    frame = {"type": "Message", "index": 3, "utcTime": T, "text": "x", "from": {"type": native}}
    (event,) = decode(frame)
    assert event["sender"] == {"role": role}


DECODE_TABLE: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "gms message",
        {"type": "Message", "index": 3, "utcTime": T, "text": "hi", "from": AGENT},
        {"type": "message", "id": f"{CONV}/3", "content": {"kind": "text", "text": "hi"}},
    ),
    (
        "gms push url",
        {"type": "PushUrl", "index": 4, "utcTime": T, "text": "https://x.io", "from": AGENT},
        {"type": "message", "id": f"{CONV}/4", "content": {"kind": "url", "url": "https://x.io"}},
    ),
    (
        "widget message, `party` and `timestamp` spelling",
        {
            "type": "MessageReceived",
            "index": 5,
            "timestamp": T,
            "party": {"id": 1, "type": "Client", "name": "Bob"},
            "content": {"text": "yo", "type": "text"},
        },
        {
            "type": "message",
            "id": f"{CONV}/6",  # widget index 5 (0-based) is GMS entry 6
            "sender": {"role": "user", "id": "1", "name": "Bob"},
        },
    ),
    (
        "gms entry spelled with `party` (field-name variant)",
        {"type": "Message", "index": 6, "timestamp": T, "text": "x", "party": {"type": "Agent"}},
        {"type": "message", "id": f"{CONV}/6", "sender": {"role": "agent"}, "at": AT},
    ),
    (
        "typing started carries the preview",
        {"type": "TypingStarted", "index": 7, "utcTime": T, "text": "wai", "from": AGENT},
        {"type": "typing", "active": True, "preview": "wai"},
    ),
    (
        "widget agent typing without index has a derived id",
        {"type": "AgentTyping", "timestamp": T, "isTyping": False},
        {
            "type": "typing",
            "active": False,
            "sender": {"role": "agent"},
            "id": derived_id(CONV, "AgentTyping", AT, None, False),
        },
    ),
    (
        "agent connected without party",
        {"type": "AgentConnected", "index": 2, "timestamp": T},
        {"type": "participant_joined", "participant": {"role": "agent"}},
    ),
    (
        "session ended, code 3",
        {"type": "SessionEnded", "timestamp": T, "reason": {"code": 3}},
        {"type": "ended", "reason": "error", "by": "system", "id": derived_id(CONV, "ended")},
    ),
    (
        "chatId on the frame wins over ?conversation=",
        {"type": "Notice", "chatId": "c2", "index": 9, "utcTime": T, "text": "n"},
        {"type": "notice", "conversation_id": "genesys:c2", "id": "genesys:c2/9"},
    ),
    (
        "widget error with an unknown code",
        {"type": "Error", "timestamp": T, "error": {"code": 230}},
        {"type": "error", "code": "VENDOR_ERROR", "message": "genesys error 230"},
    ),
]


@pytest.mark.parametrize(
    ("frame", "expected"), [c[1:] for c in DECODE_TABLE], ids=[c[0] for c in DECODE_TABLE]
)
def test_decode_table(frame: dict[str, Any], expected: dict[str, Any]) -> None:
    (event,) = decode(frame)
    assert {k: event.get(k) for k in expected} == expected


def test_restored_replay_has_the_same_id_as_the_live_entry() -> None:
    live = {"type": "MessageReceived", "index": 4, "timestamp": T, "party": {"type": "Agent"}}
    live["content"] = {"text": "hello"}
    replay = {**live, "restored": True}
    assert decode([live])[0] == decode([replay])[0]


def test_gms_and_widget_end_are_one_event() -> None:
    gms = {"statusCode": 0, "chatId": CHAT, "chatEnded": True, "messages": []}
    widget = {"type": "SessionEnded", "timestamp": T, "reason": {"code": 2}}
    assert decode(gms)[0]["id"] == decode(widget)[0]["id"] == derived_id(CONV, "ended")


def test_gms_error_envelope_becomes_error_events() -> None:
    body = {
        "statusCode": 2,
        "chatId": CHAT,
        "chatEnded": True,
        "errors": [{"code": 50, "advice": "chat session not found"}],
    }
    error, ended = ADAPTER.decode(json.dumps(body).encode()).events
    assert isinstance(error, Error)
    assert (error.code, error.recoverable, error.metadata) == (
        "SESSION_NOT_FOUND",
        False,
        {"vendor_code": 50},
    )
    assert isinstance(ended, Ended)
    assert (ended.reason, ended.by) == ("error", "system")


@pytest.mark.parametrize(
    ("status", "reason", "by"),
    [(0, "agent", "agent"), (2, "error", "system"), (1, "error", "system")],
    ids=["statusCode 0: who left last", "statusCode 2: ended by error", "statusCode 1 too"],
)
def test_chat_ended_by_error_is_not_a_completion(status: int, reason: str, by: str) -> None:
    """DIALECTS.md, genesys: `statusCode: 2` with `chatEnded: true` is an unrecoverable error,
    the chat ended by error (the widget's reason code 3), even when an agent left last."""
    left = {"type": "ParticipantLeft", "index": 9, "utcTime": T, "from": AGENT}
    body = {"statusCode": status, "chatId": CHAT, "chatEnded": True, "messages": [left]}
    events = decode(body)
    assert events[-1]["type"] == "ended"
    assert (events[-1]["reason"], events[-1]["by"]) == (reason, by)
    assert events[-1]["id"] == derived_id(CONV, "ended")


# --- one transcript line, two numberings ----------------------------------------------------
#
# GMS numbers a chat's transcript from 1, the widget from 0 (DIALECTS.md, genesys, "Dedup"; the
# seed: "0-based index of this message in chat session transcript"). The id is the line's GMS
# position: a line that arrives in both forms is one event, two lines are never one.

_GMS_LINE = {"type": "Message", "index": 3, "utcTime": T, "text": "hi", "from": AGENT}
_WIDGET_LINE = {
    "type": "MessageReceived",
    "index": 2,
    "timestamp": T,
    "content": {"text": "hi", "type": "text"},
    "party": {"id": "7", "type": "Agent", "name": "Anna"},
}


def test_one_line_in_both_forms_has_one_id() -> None:
    assert decode(_GMS_LINE) == decode(_WIDGET_LINE) == decode({**_WIDGET_LINE, "index": "2"})
    assert decode(_GMS_LINE)[0]["id"] == f"{CONV}/3"


@pytest.mark.parametrize(
    ("widget", "gms"),
    [
        ({"type": "AgentConnected", "index": 1, "party": AGENT}, {"type": "ParticipantJoined"}),
        ({"type": "AgentDisconnected", "index": 1, "party": AGENT}, {"type": "ParticipantLeft"}),
        ({"type": "AgentTyping", "index": 1, "party": AGENT}, {"type": "TypingStarted"}),
    ],
    ids=lambda f: f["type"],
)
def test_every_widget_line_counts_from_0(widget: dict[str, Any], gms: dict[str, Any]) -> None:
    line = decode({**widget, "timestamp": T})[0]
    entry = decode({**gms, "index": 2, "utcTime": T, "from": AGENT})[0]
    assert line["id"] == entry["id"] == f"{CONV}/2"


def test_a_widget_line_is_never_taken_for_another_gms_entry() -> None:
    """Widget line 3 is GMS entry 4, not GMS entry 3 (the old ids collided there)."""
    assert decode({**_WIDGET_LINE, "index": 3})[0]["id"] == f"{CONV}/4"
    assert decode(_GMS_LINE)[0]["id"] != decode({**_WIDGET_LINE, "index": 3})[0]["id"]


def test_link_and_error_frames_are_no_transcript_lines() -> None:
    """`Interrupted`, `Continued` and `Error` are no lines (the seed gives them no index): an
    `index` they carry keeps them apart, never makes a line's id."""
    for kind in ("Interrupted", "Continued"):
        (event,) = decode({"type": kind, "index": 2, "timestamp": T})
        (other,) = decode({"type": kind, "index": 3, "timestamp": T})
        assert "/~" in event["id"] and event["id"] != other["id"]


@pytest.mark.parametrize(
    "frame",
    [
        {**_GMS_LINE, "index": 0},
        {**_GMS_LINE, "index": "x"},
        {**_GMS_LINE, "index": "1_0"},
        {**_WIDGET_LINE, "index": -1},
        {**_WIDGET_LINE, "index": " 2"},
    ],
    ids=["gms 0", "gms x", "gms 1_0", "widget -1", "widget space"],
)
def test_an_index_that_is_no_position_is_refused(frame: dict[str, Any]) -> None:
    with pytest.raises(DecodeError) as info:
        decode([_GMS_LINE, frame])
    assert (info.value.details["index"], info.value.details["path"]) == (1, "$.index")


def test_gms_retry_status_without_errors_is_a_recoverable_error() -> None:
    body = {"statusCode": 1, "chatId": CHAT, "messages": []}
    (error,) = ADAPTER.decode(json.dumps(body).encode()).events
    assert isinstance(error, Error)
    assert (error.code, error.recoverable) == ("VENDOR_ERROR", True)


def test_one_frame_an_array_and_an_envelope_agree() -> None:
    frame = {"type": "Message", "index": 3, "utcTime": T, "text": "hi", "from": AGENT}
    assert decode(frame) == decode([frame]) == decode({"chatId": CHAT, "messages": [frame]})


# --- errors ---------------------------------------------------------------------------------

BAD_TABLE: list[tuple[str, Any, int, str]] = [
    (
        "text not a string",
        {"type": "Message", "index": 1, "utcTime": T, "text": None, "from": AGENT},
        0,
        "$.text",
    ),
    (
        "from not an object",
        [{"type": "Message", "utcTime": T, "text": "x", "from": "Anna"}],
        0,
        "$.from",
    ),
    ("missing from", {"type": "Message", "utcTime": T, "text": "x"}, 0, "$.from"),
    (
        "type object empty",
        {"type": "Message", "utcTime": T, "text": "x", "from": {"type": {}}},
        0,
        "$.from.type",
    ),
    (
        "party type missing",
        {"type": "MessageReceived", "party": {}, "content": {"text": "x"}},
        0,
        "$.party.type",
    ),
    ("index wrong type", {"type": "Notice", "index": [1], "text": "x", "utcTime": T}, 0, "$.index"),
    ("bool timestamp", {"type": "Notice", "text": "x", "utcTime": True}, 0, "$.utcTime"),
    ("NaN-ish timestamp", {"type": "Notice", "text": "x", "timestamp": "NaN"}, 0, "$.timestamp"),
    ("huge timestamp", {"type": "Notice", "text": "x", "utcTime": 10**30}, 0, "$.utcTime"),
    ("reason not an object", {"type": "SessionEnded", "reason": 2, "timestamp": T}, 0, "$.reason"),
    ("error without code", {"type": "Error", "error": {}, "timestamp": T}, 0, "$.error"),
    ("type not a string", [{"type": 5}], 0, "$.type"),
    ("array of numbers", [1, 2], 0, "$"),
    ("bad third frame", [{"type": "X"}, {"type": "Y"}, {"type": "Notice", "text": 1}], 2, "$.text"),
    ("statusCode wrong", {"statusCode": "zero", "chatId": CHAT, "messages": []}, 0, "$.statusCode"),
    ("transcript not a list", {"transcript": 5, "chatId": CHAT}, 0, "$.transcript"),
    ("null body", None, 0, "$"),
    ("string body", "Message", 0, "$"),
]


@pytest.mark.parametrize(
    ("body", "index", "path"), [c[1:] for c in BAD_TABLE], ids=[c[0] for c in BAD_TABLE]
)
def test_malformed_known_frames(body: Any, index: int, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(body)
    assert (info.value.details["index"], info.value.details["path"]) == (index, path)


@pytest.mark.parametrize("body", [b"", b"{", b"[1,", b"not json", b"\xff"])
def test_not_json(body: bytes) -> None:
    with pytest.raises(MalformedJSON):
        ADAPTER.decode(body, conversation=CHAT)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "type",
        "index",
        "utcTime",
        "timestamp",
        "from",
        "party",
        "text",
        "content",
        "reason",
        "error",
        "isTyping",
        "chatId",
        "messages",
        "statusCode",
        "transcript",
    ]
)
_types = st.sampled_from(
    ["Message", "MessageReceived", "SessionEnded", "Error", "AgentTyping", "Notice"]
)


@settings(max_examples=300, deadline=None, database=None)
@given(frame=st.dictionaries(_keys, _json, max_size=6), kind=_types)
def test_only_gateway_errors_escape(frame: dict[str, Any], kind: str) -> None:
    for body in (frame, {**frame, "type": kind}, [frame]):
        with contextlib.suppress(GatewayError):
            ADAPTER.decode(json.dumps(body).encode(), conversation=CHAT)


# --- vendor error codes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "canonical", "recoverable", "exc"),
    [
        (1, "UNSUPPORTED", False, Unsupported),
        (2, "INVALID_REQUEST", False, RequestError),
        ("3", "INVALID_REQUEST", False, RequestError),
        (50, "SESSION_NOT_FOUND", False, SessionNotFound),
        (51, "VENDOR_ERROR", False, VendorError),
        (52, "VENDOR_ERROR", True, VendorError),
        (100, "VENDOR_ERROR", True, VendorError),
        (101, "VENDOR_ERROR", False, VendorError),
        (150, "VENDOR_ERROR", True, VendorError),
        (201, "VENDOR_ERROR", False, VendorError),
        ("oops", "VENDOR_ERROR", False, VendorError),
    ],
)
def test_error_codes(code: Any, canonical: str, recoverable: bool, exc: type[GatewayError]) -> None:
    assert error_code(code) == (canonical, recoverable)
    error = command_error(code, "advice")
    assert type(error) is exc
    assert error.details["vendor_code"] == code


def test_events_are_canonical_structs() -> None:
    frame = {"type": "MessageReceived", "timestamp": T, "party": {"type": "Agent"}}
    (event,) = ADAPTER.decode(
        json.dumps({**frame, "content": {"text": "u", "type": "url"}}).encode(), conversation=CHAT
    ).events
    assert isinstance(event, Message)
    assert event.content == Url(url="u")
    (event,) = ADAPTER.decode(
        json.dumps({**frame, "content": {"text": "t"}}).encode(), conversation=CHAT
    ).events
    assert isinstance(event, Message)
    assert event.content == Text(text="t")


# --- forms ----------------------------------------------------------------------------------


def test_the_end_id_is_derived_id() -> None:
    for conv in ("genesys:c1", "genesys:", "genesys:\x1f/~ünï"):
        assert ended(conv, AT, "user", "user").id == derived_id(conv, "ended")


def test_an_entry_with_a_messages_field_is_not_an_envelope() -> None:
    decoded = ADAPTER.decode(b'{"type": "Nickname", "messages": []}', conversation=CHAT)
    assert (decoded.events, decoded.ignored) == ([], 1)


def test_a_nested_messages_key_does_not_make_an_envelope() -> None:
    with pytest.raises(DecodeError) as info:
        ADAPTER.decode(b'{"data": {"messages": []}}', conversation=CHAT)
    assert info.value.details["path"] == "$"


# --- frames without a time ------------------------------------------------------------------

UNTIMED = [
    {"type": "AgentTyping", "isTyping": True},
    {"type": "Interrupted"},
    {"type": "Continued"},
    {"type": "Error", "error": {"code": 100, "description": "busy"}},
    {"type": "MessageReceived", "content": {"text": "hi"}, "party": {"type": "Agent"}},
    {"type": "Notice", "text": "please hold", "utcTime": ""},
    [{"type": "AgentConnected", "party": {"name": "Anna", "id": 7}}, {"type": "AgentTyping"}],
    {"statusCode": 2, "chatId": CHAT, "errors": [{"code": 100, "advice": "busy"}]},
    {
        "statusCode": 2,
        "chatId": CHAT,
        "messages": [{"type": "AgentTyping"}],
        "errors": [{"code": 52}],
    },
]


@pytest.mark.parametrize("body", UNTIMED, ids=lambda b: json.dumps(b)[:40])
def test_untimed_frames_get_ids_that_do_not_depend_on_the_receive_time(
    body: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body re-posted later decodes to the same ids (so the hub dedups it); only `at`, the
    receive time, differs."""

    def decode_at(now: str) -> list[dict[str, Any]]:
        monkeypatch.setattr(model, "clock", lambda: now)
        return decode(body)

    first = decode_at("2030-01-01T00:00:00.000Z")
    again = decode_at("2030-01-01T00:05:00.000Z")
    assert first and [e["id"] for e in first] == [e["id"] for e in again]
    assert [e["at"] for e in first] != [e["at"] for e in again]
    assert len({e["id"] for e in first}) == len(first)


def test_timed_index_less_frames_still_differ_by_time() -> None:
    typing = {"type": "AgentTyping", "isTyping": True}
    (one,) = decode({**typing, "timestamp": T})
    (two,) = decode({**typing, "timestamp": T + 1000})
    assert one["id"] != two["id"]
