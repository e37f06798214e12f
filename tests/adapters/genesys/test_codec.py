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
from adapters.genesys.errors import command_error, error_code
from gateway import model
from gateway.adapter import Decoded
from gateway.codec import derived_id, to_at
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
    from adapters.genesys.native import ENTRY_TYPES

    seen: set[str] = set()
    for case in CASES:
        if case.startswith("bad_"):
            continue
        body = json.loads((FIXTURES / f"{case}.json").read_text())
        frames = body if isinstance(body, list) else body.get("messages", body.get("transcript"))
        frames = frames if frames is not None else [body]
        seen |= {f["type"] for f in frames}
    assert seen >= ENTRY_TYPES


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


def test_fast_path_and_generic_path_agree() -> None:
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


# --- the fast path and the exact path --------------------------------------------------------
#
# `decode` decodes a body typed in one pass and falls back to the exact path (untyped parse,
# one `convert` per frame) whenever anything is off; the exact path alone names errors. These
# tests hold the two to the same output: events, ignored count, and error code, message,
# index and path.


def _outcome(run: Any) -> Any:
    """What a decode gives: its events and ignored count, or its error in full."""
    try:
        decoded = run()
    except GatewayError as exc:
        return ("error", type(exc), exc.code, str(exc), exc.details)
    return ([msgspec.to_builtins(e) for e in decoded.events], decoded.ignored)


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """One current time for both paths (frames without a time are given it)."""

    now = "2030-01-01T00:00:00.000Z"
    monkeypatch.setattr(model, "clock", lambda: now)


def _exact(body: bytes, conversation: str | None) -> Any:
    from adapters.genesys import decode as decoder
    from gateway.codec import loads

    return _outcome(lambda: decoder._decode_generic(loads(body), conversation))


def _fast(body: bytes, conversation: str | None) -> Any:
    return _outcome(lambda: ADAPTER.decode(body, conversation=conversation))


def _fixture(case: str) -> tuple[bytes, str | None]:
    expected = json.loads((FIXTURES / f"{case}.expected.json").read_text())
    return (FIXTURES / f"{case}.json").read_bytes(), expected["conversation"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.usefixtures("frozen_now")
def test_fast_and_exact_paths_agree_on_every_fixture(case: str) -> None:
    body, conversation = _fixture(case)
    try:
        compact = msgspec.json.encode(msgspec.json.decode(body))
    except msgspec.DecodeError:  # bad_json
        compact = body
    for form in (body, compact, b"\n  " + compact):  # as stored (pretty), minified, indented
        assert _fast(form, conversation) == _exact(form, conversation)


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("bad_")])
def test_valid_fixtures_never_take_the_exact_path(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path covers every valid form (arrays, envelopes with unknown entries, widget
    transcripts, single entries), minified as platforms send them."""
    from adapters.genesys import decode as decoder

    body, conversation = _fixture(case)
    expected = _exact(body, conversation)
    compact = msgspec.json.encode(msgspec.json.decode(body))

    def refuse(raw: Any, conversation: str | None) -> Decoded:
        raise AssertionError("took the exact path")

    monkeypatch.setattr(decoder, "_decode_generic", refuse)
    assert _fast(compact, conversation) == expected


_MESSAGE = {"type": "Message", "index": 3, "utcTime": T, "text": "hi", "from": AGENT}
_WIDGET = {
    "type": "MessageReceived",
    "index": 4,
    "timestamp": T,
    "content": {"text": "yo", "type": {"url": True}},
    "party": {"id": 2, "type": {"agent": True}, "name": "Anna"},
}
_VALUES: list[Any] = [
    None, True, 0, -1, 1, T, 10**11, 10**11 + 1000, 253_402_300_799_999, 253_402_300_800_000,
    10**30, 1.5, float(T), "", "x", "Agent", "url", str(T), "2015-05-28T20:31:40.250Z",
    "2015-05-28T22:31:41+02:00", [], [1], {}, {"agent": True}, {"type": "Client"},
]  # fmt: skip
_KEYS = [
    "type", "index", "utcTime", "timestamp", "from", "party", "text", "content", "reason",
    "error", "isTyping", "chatId", "sessionId", "restored",
]  # fmt: skip


def _mutations(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """`frame` with each of its keys dropped, and each key set to each odd value."""
    out = [{k: v for k, v in frame.items() if k != drop} for drop in frame]
    out += [{**frame, key: value} for key in _KEYS for value in _VALUES]
    return out


def _bodies(frame: dict[str, Any]) -> list[Any]:
    """`frame` alone, in arrays (with known and unknown neighbours), and in every container."""
    unknown = {"type": "Nickname", "index": 1, "utcTime": T}
    return [
        frame,
        [frame],
        [_MESSAGE, frame],
        [unknown, frame],
        {"chatId": CHAT, "messages": [frame]},
        {"statusCode": 0, "chatId": CHAT, "chatEnded": True, "messages": [unknown, frame]},
        {"statusCode": 2, "messages": [frame], "errors": [{"code": 50}]},
        {"chatId": CHAT, "transcript": [frame]},
        {"sessionId": CHAT, "transcript": [unknown, frame], "messages": [5]},
    ]


@pytest.mark.parametrize("base", [_MESSAGE, _WIDGET], ids=["gms", "widget"])
@pytest.mark.usefixtures("frozen_now")
def test_fast_and_exact_paths_agree_on_mutated_frames(base: dict[str, Any]) -> None:
    for frame in _mutations(base):
        for body in _bodies(frame):
            raw = msgspec.json.encode(body)
            for conversation in (CHAT, None):
                assert _fast(raw, conversation) == _exact(raw, conversation), raw


_WIDGET_AGENT = {"id": 2, "type": "Agent", "name": "Anna"}
_EVERY_TYPE: list[dict[str, Any]] = [
    {"type": "PushUrl", "index": 4, "utcTime": T, "text": "https://x.io", "from": AGENT},
    {"type": "Notice", "index": 5, "utcTime": T, "text": "please hold"},
    {"type": "ParticipantJoined", "index": 1, "utcTime": T, "from": AGENT},
    {"type": "ParticipantLeft", "index": 9, "utcTime": T, "from": AGENT, "text": "bye"},
    {"type": "TypingStarted", "index": 6, "utcTime": T, "text": "typ", "from": AGENT},
    {"type": "TypingStopped", "utcTime": T, "from": AGENT},
    {"type": "AgentConnected", "index": 1, "timestamp": T, "party": _WIDGET_AGENT},
    {"type": "AgentDisconnected", "timestamp": T, "party": _WIDGET_AGENT},
    {"type": "AgentTyping", "isTyping": False, "timestamp": T, "party": {"id": 2}},
    {"type": "SessionEnded", "reason": {"code": 2, "description": "x"}, "timestamp": T},
    {"type": "Interrupted", "timestamp": T},
    {"type": "Continued", "index": 8, "timestamp": T},
    {"type": "Error", "error": {"code": 100, "description": "busy"}, "timestamp": T},
    {"type": "FileUploaded", "index": 7, "utcTime": T, "text": "f.pdf", "from": AGENT},
]
"""A frame of every other entry type, and one of a type we do not know."""


def test_the_handlers_are_the_entry_types() -> None:
    from adapters.genesys.entries import _HANDLERS
    from adapters.genesys.native import ENTRY_TYPES

    assert set(_HANDLERS) == ENTRY_TYPES
    assert {f["type"] for f in [_MESSAGE, _WIDGET, *_EVERY_TYPE]} >= ENTRY_TYPES


@pytest.mark.parametrize("base", _EVERY_TYPE, ids=lambda f: f["type"])
@pytest.mark.usefixtures("frozen_now")
def test_fast_and_exact_paths_agree_on_mutated_frames_of_every_type(base: dict[str, Any]) -> None:
    """The fast path reads every entry as an `AnyEntry`, which holds the fields of all types
    and requires none but `type`: each type's own rules must still hold (a required field
    absent or null, another type's field of an odd value, an unknown type's odd fields)."""
    for frame in _mutations(base):
        for body in _bodies(frame)[:6]:  # the frame alone, in arrays, in an envelope
            raw = msgspec.json.encode(body)
            for conversation in (CHAT, None):
                assert _fast(raw, conversation) == _exact(raw, conversation), raw


def test_the_end_id_is_derived_id() -> None:
    """`entries.ended` adds a constant to the conversation: `derived_id`'s id, for any."""
    from adapters.genesys.entries import ended

    for conv in ("genesys:c1", "genesys:", "genesys:\x1f/~ünï"):
        assert ended(conv, AT, "user", "user").id == derived_id(conv, "ended")


def test_cached_epoch_seconds_never_serve_epoch_seconds() -> None:
    """`events_of` takes a cached second as proof that an int is epoch ms in range; an int of
    epoch seconds (up to 1e11) never shares a second with one, even next to the threshold."""
    from adapters.genesys.entries import events_of
    from adapters.genesys.native import AnyEntry

    for stamp in (100_000_001_000, 100_000_001_999, 100_000_000_999, 100_000_000_000, 100_000_001):
        (event,) = events_of([AnyEntry(type="Notice", text="x", utcTime=stamp)], CHAT).events
        assert event.at == to_at(stamp)


_CONTAINERS: list[Any] = [
    {},
    {"chatId": CHAT},
    {"type": None, "messages": []},
    {"type": "Message", "messages": [], "text": "x", "from": AGENT},
    {"messages": None},
    {"messages": [], "statusCode": "0"},
    {"messages": [], "statusCode": 1},
    {"messages": [], "chatEnded": 1},
    {"messages": [_MESSAGE], "nextPosition": None, "chatId": ""},
    {"nextPosition": 4, "chatId": CHAT},
    {"chatEnded": False},
    {"statusCode": 2, "chatId": CHAT, "errors": [{"code": "x", "advice": None}]},
    {"statusCode": 2, "chatId": CHAT, "errors": None},
    {"statusCode": 0, "chatId": CHAT, "messages": [{"type": 5}]},
    {"statusCode": 0, "chatId": CHAT, "messages": [{"type": "Message"}]},
    {"statusCode": 0, "chatId": CHAT, "messages": [1]},
    {"transcript": None},
    {"transcript": [], "chatId": 5},
    {"transcript": [_MESSAGE], "sessionId": None},
    {"transcript": [{"type": "Nickname"}], "statusCode": "bad"},
    {"transcript": [_MESSAGE], "alias": [], "chatId": CHAT},
    {"chatId": CHAT, "messages": [_MESSAGE, {"type": "SessionEnded", "timestamp": "x"}]},
    {"chatId": CHAT, "messages": [_MESSAGE], "messages ": 1},
    {"data": {"messages": []}},
    {"type": "Message", "text": "a", "text ": 5, "from": AGENT, "utcTime": T},
    {"type": "Message", "text": 5, "from": AGENT, "utcTime": T} | {"text": "dup"},
]


@pytest.mark.parametrize("body", _CONTAINERS, ids=lambda b: json.dumps(b)[:50])
@pytest.mark.usefixtures("frozen_now")
def test_fast_and_exact_paths_agree_on_odd_objects(body: Any) -> None:
    raw = msgspec.json.encode(body)
    for conversation in (CHAT, None):
        assert _fast(raw, conversation) == _exact(raw, conversation)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"Message","text":5,"text":"dup","from":{"type":"Agent"},"utcTime":1}',
        b'{"type":"Message","text":"dup","text":5,"from":{"type":"Agent"},"utcTime":1}',
        b'[{"type":"Message","type":"Nickname","text":"x","from":{"type":"Agent"}}]',
        b'{"messages":[],"messages":5}',
        b'{"messages":5,"messages":[]}',
        b'{"transcript":[],"type":null}',
        b"[]",
        b"{}",
        b"[{}]",
        b' [{"type":"Notice","text":"x","chatId":"c"}] ',
        b'{"type":"Notice","text":"x","chatId":"c"} x',
        b'[{"type":"Notice","text":"x\\"messages\\"","chatId":"c"}]',
        b'{"type":"Notice","text":"]}","chatId":"c","x":[]}',
        b"[" * 2000 + b"]" * 2000,
    ],
)
@pytest.mark.usefixtures("frozen_now")
def test_fast_and_exact_paths_agree_on_odd_json(raw: bytes) -> None:
    for conversation in (CHAT, None):
        assert _fast(raw, conversation) == _exact(raw, conversation)


@pytest.mark.parametrize(
    "stamp",
    [
        100_000_000_999, 100_000_001_000, 100_000_001_001, 1_432_845_095_000, 1_432_845_095_999,
        4_102_444_800_000, 253_402_300_799_999, 253_402_300_800_000, 99_999_999_999,
    ],
)  # fmt: skip
def test_epoch_ms_fast_path_is_to_at(stamp: int) -> None:
    """`events_of` formats GMS epoch milliseconds itself; it must be `to_at`, to the byte."""
    from adapters.genesys.entries import events_of
    from adapters.genesys.native import AnyEntry

    try:
        expected = to_at(stamp)
    except ValueError:
        with pytest.raises(ValueError, match="timestamp"):
            events_of([AnyEntry(type="Notice", text="x", utcTime=stamp)], CHAT)
        return
    for offset in (0, 1, 499, 999):
        if to_at(stamp - offset) != to_at(stamp) and offset:
            expected = to_at(stamp - offset)
        (event,) = events_of(
            [AnyEntry(type="Notice", text="x", utcTime=stamp - offset)], CHAT
        ).events
        assert event.at == to_at(stamp - offset)
    assert expected


@settings(max_examples=300, deadline=None, database=None)
@given(ms=st.integers(min_value=0, max_value=253_402_300_799_999 + 10))
def test_epoch_ms_fast_path_is_to_at_everywhere(ms: int) -> None:
    from adapters.genesys.entries import events_of
    from adapters.genesys.native import AnyEntry

    try:
        expected = to_at(ms)
    except ValueError:
        with pytest.raises(ValueError, match="timestamp"):
            events_of([AnyEntry(type="Notice", text="x", utcTime=ms)], CHAT)
        return
    (event,) = events_of([AnyEntry(type="Notice", text="x", utcTime=ms)], CHAT).events
    assert event.at == expected


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
