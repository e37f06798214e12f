"""The wonderful codec: fixtures, data tables of native → canonical, and decode robustness."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.wonderful import WonderfulAdapter
from gateway.codec import to_at
from gateway.errors import DecodeError, GatewayError, MalformedJSON
from gateway.model import event_encoder

FIXTURES = Path(__file__).parents[2] / "fixtures" / "wonderful"
CASES = sorted(
    p.name.removesuffix(".json") for p in FIXTURES.glob("*.json") if ".expected" not in p.name
)
adapter = WonderfulAdapter()
SID = "s-1"
AT = "2024-02-02T13:00:00.000Z"


def decode(body: Any, conversation: str | None = None) -> list[dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return [
        msgspec.json.decode(event_encoder.encode(e))
        for e in adapter.decode(raw, conversation=conversation).events
    ]


def message(data: dict[str, Any], speaker: str = "agent", **extra: Any) -> dict[str, Any]:
    native = {"eventId": "e1", "sessionId": SID, "speaker": speaker, "data": data, "timestamp": AT}
    return {"type": "message", "data": {**native, **extra}}


def test_every_case_has_an_expected_file() -> None:
    assert CASES
    for case in CASES:
        assert (FIXTURES / f"{case}.expected.json").exists(), case


@pytest.mark.parametrize("case", CASES)
def test_fixture(case: str) -> None:
    body = (FIXTURES / f"{case}.json").read_bytes()
    expected = json.loads((FIXTURES / f"{case}.expected.json").read_text())
    if "error" in expected:
        with pytest.raises(GatewayError) as caught:
            adapter.decode(body, conversation=expected["conversation"])
        error = caught.value
        assert error.code == expected["error"]["code"]
        assert {k: error.details.get(k) for k in expected["error"] if k != "code"} == {
            k: v for k, v in expected["error"].items() if k != "code"
        }
        return
    decoded = adapter.decode(body, conversation=expected["conversation"])
    events = [msgspec.json.decode(event_encoder.encode(e)) for e in decoded.events]
    for event in events:
        event.pop("seq", None)
    assert events == expected["events"]
    assert decoded.ignored == expected["ignored"]


SPEAKERS = [
    ("user", "user"),
    ("customer", "user"),  # the backend's word for the SDK's `user`: both, everywhere
    ("agent", "bot"),
    ("human_agent", "agent"),
    ("system", "system"),
]


@pytest.mark.parametrize(("speaker", "role"), SPEAKERS)
def test_speaker_roles(speaker: str, role: str) -> None:
    [event] = decode(message({"type": "text", "text": "hi"}, speaker))
    assert event["sender"] == {"role": role}


def transcript(**data: Any) -> dict[str, Any]:
    """A chat-WebSocket line as the public integration notes show it (§4b)."""
    line = {
        "id": "l1",
        "communication_id": SID,
        "speaker": "agent",
        "text": "hi",
        "created_at": 1706612345000,
        "start_time": 1706612345000,
        "end_time": 1706612345500,
        "tool_details": None,
        "is_eot": False,
    }
    return {"type": "transcript", "data": {**line, **data}}


@pytest.mark.parametrize(("speaker", "role"), SPEAKERS)
def test_transcript_speaker_roles(speaker: str, role: str) -> None:
    [event] = decode(transcript(speaker=speaker))
    assert (event["sender"], event["id"]) == ({"role": role}, f"wonderful:{SID}/l1")


@pytest.mark.parametrize(
    ("data", "at"),
    [
        ({}, "2024-01-30T10:59:05.000Z"),  # the notes' epoch milliseconds
        ({"created_at": 1706612345}, "2024-01-30T10:59:05.000Z"),
        ({"created_at": "2024-01-30T10:59:05.123Z"}, "2024-01-30T10:59:05.123Z"),
        ({"start_time": None, "end_time": None, "is_eot": None}, "2024-01-30T10:59:05.000Z"),
        ({"text": ""}, "2024-01-30T10:59:05.000Z"),
    ],
)
def test_transcript_variants(data: dict[str, Any], at: str) -> None:
    [event] = decode(transcript(**data))
    assert event["at"] == at


def test_a_transcript_decodes_like_its_history_line() -> None:
    """The same line streamed and recovered: the same id, time, sender and content."""
    line = transcript(speaker="customer", text="Order #12345")
    history = message({"type": "text", "text": "Order #12345"}, "customer", eventId="l1")
    history["data"]["timestamp"] = 1706612345000
    [live], [recovered] = decode(line), decode(history)
    assert live == recovered


def test_the_raw_session_and_a_recovered_one_are_one_status() -> None:
    [up] = decode({"type": "start", "event": "start", "communication_id": SID})
    recovered = {"sessionId": SID, "status": "in-progress", "messages": [], "createdAt": AT}
    [status] = decode(recovered)
    assert (up["type"], up["status"], up["id"]) == ("status", "active", status["id"])


def test_communication_ended_is_the_session_s_one_end() -> None:
    [raw] = decode({"type": "communication_ended"}, SID)
    [sdk] = decode({"type": "ended", "data": {"reason": "completed"}, "timestamp": AT}, SID)
    assert (raw["type"], raw["reason"], raw["id"]) == ("ended", "completed", sdk["id"])


URL = "https://example.com/f"


@pytest.mark.parametrize(
    ("data", "content"),
    [
        ({"type": "text", "text": ""}, {"kind": "text", "text": ""}),
        ({"type": "image", "mediaUrl": URL}, {"kind": "image", "url": URL}),
        (
            {"type": "document", "mediaUrl": URL, "fileName": "a.pdf"},
            {"kind": "file", "url": URL, "file_name": "a.pdf"},
        ),
        ({"type": "voice", "mediaUrl": URL}, {"kind": "audio", "url": URL, "voice": True}),
        ({"type": "audio", "mediaUrl": URL}, {"kind": "audio", "url": URL}),  # voice false: default
        (
            {"type": "location", "latitude": 1, "longitude": -2.5},
            {"kind": "location", "latitude": 1.0, "longitude": -2.5},
        ),
        (
            {"type": "action", "action": {"type": "end", "metadata": {"k": 1}}},
            {"kind": "action", "action": "end"},
        ),
    ],
)
def test_content_kinds(data: dict[str, Any], content: dict[str, Any]) -> None:
    [event] = decode(message(data))
    assert event["content"] == content


@pytest.mark.parametrize(
    ("data", "reason", "by"),
    [
        ({"reason": "completed", "endedBy": "user"}, "user", "user"),
        ({"reason": "completed", "endedBy": "agent"}, "agent", "agent"),
        ({"reason": "completed", "endedBy": "system"}, "completed", "system"),
        ({"reason": "completed"}, "completed", None),
        ({"reason": "forwarded", "endedBy": "user"}, "forwarded", "user"),
        ({"reason": "error", "endedBy": "system"}, "error", "system"),
    ],
)
def test_end_reasons(data: dict[str, Any], reason: str, by: str | None) -> None:
    [event] = decode({"type": "ended", "data": data, "timestamp": AT}, SID)
    assert (event["reason"], event.get("by")) == (reason, by)


def test_message_metadata_is_kept() -> None:
    [event] = decode(message({"type": "text", "text": "x"}, metadata={"order_id": "1", "n": [1]}))
    assert event["metadata"] == {"order_id": "1", "n": [1]}


def test_a_message_s_own_session_wins_over_the_parameter() -> None:
    [event] = decode(message({"type": "text", "text": "x"}), conversation="other")
    assert event["conversation_id"] == "wonderful:s-1"
    assert event["id"] == "wonderful:s-1/e1"


def test_one_frame_decodes_alike_alone_in_an_array_and_in_an_envelope() -> None:
    frame = message({"type": "text", "text": "x"})
    alone = decode(frame)
    assert decode([frame]) == alone
    assert decode({"events": [frame]}) == alone


def test_reposting_a_frame_without_native_id_gives_the_same_id() -> None:
    frame = {
        "type": "error",
        "data": {"code": "PII_MASKING_ENABLED", "message": "m"},
        "timestamp": AT,
    }
    assert decode(frame, SID) == decode(frame, SID)
    other = {**frame, "timestamp": "2024-02-02T13:00:01.000Z"}
    assert decode(other, SID)[0]["id"] != decode(frame, SID)[0]["id"]


def test_the_envelope_session_applies_to_its_frames() -> None:
    body = {"sessionId": "env", "events": [{"type": "ended", "data": {"reason": "error"}}]}
    [event] = decode(body, conversation="param")
    assert event["conversation_id"] == "wonderful:env"


@pytest.mark.parametrize(
    ("body", "index", "path"),
    [
        (message({"type": "text", "text": 5}), 0, "$.data.data.text"),
        (message({"type": "video", "mediaUrl": URL}), 0, "$.data.data.type"),
        (message({"type": "document"}), 0, "$.data.data.mediaUrl"),
        (message({"type": "location", "latitude": 1}), 0, "$.data.data.longitude"),
        (message({"type": "action"}), 0, "$.data.data.action"),
        (message({"type": "text", "text": "x"}, timestamp=True), 0, "$.data.timestamp"),
        (
            message({"type": "text", "text": "x"}, timestamp="2024-02-30T13:00:00.000Z"),
            0,
            "$.data.timestamp",
        ),
        (message({"type": "text", "text": "x"}, timestamp=1e30), 0, "$.data.timestamp"),
        (message({"type": "text", "text": "x"}, eventId=None), 0, "$.data.eventId"),
        ([{"type": "ended", "data": {"reason": "completed"}}, {"type": "ended"}], 1, "$"),
        (
            [{"type": "connected", "data": {"sessionId": SID, "connectedAt": "noon"}}],
            0,
            "$.data.connectedAt",
        ),
        ({"type": "reconnecting", "data": {"attempt": "1", "maxAttempts": 5}}, 0, "$.data.attempt"),
        ({"type": "error", "data": {"code": "X"}}, 0, "$.data"),
        ({"sessionId": SID, "status": "paused", "messages": []}, 0, "$.status"),
        (
            {
                "sessionId": SID,
                "status": "completed",
                "messages": [message({"type": "image"})["data"]],
            },
            0,
            "$.messages[0].data.mediaUrl",
        ),
        ("just a string", 0, "$"),
        ([1], 0, "$"),
    ],
)
def test_malformed_known_frames(body: Any, index: int, path: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(body, SID)
    assert (caught.value.details["index"], caught.value.details["path"]) == (index, path)


def test_not_json() -> None:
    with pytest.raises(MalformedJSON):
        adapter.decode(b'{"type": "message"', conversation=None)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


WRONG: list[Any] = [None, True, 0, -1.5, 1e300, "", "x", "1706878800", [], {}, [{}]]


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("bad_")])
def test_no_other_exception_escapes_decode(case: str) -> None:
    """Every value anywhere in every fixture, replaced by every wrong type: decode either
    succeeds or raises a `GatewayError` (never a `KeyError`, `TypeError`, `ValueError` ...)."""
    body = json.loads((FIXTURES / f"{case}.json").read_text())
    for path in _paths(body)[1:]:
        for value in WRONG:
            mutated = copy.deepcopy(body)
            node = mutated
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            with contextlib.suppress(GatewayError):
                adapter.decode(json.dumps(mutated).encode(), conversation=SID)


@pytest.mark.parametrize("value", ["1969-12-31T23:59:59.999Z", "0001-01-01T00:00:00+00:00"])
def test_core_to_at_refuses_a_time_before_1970(value: str) -> None:
    with pytest.raises(DecodeError):
        decode(message({"type": "text", "text": "x"}, timestamp=value))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b" ",
        b"[",
        b"[]",
        b"{}",
        b"null",
        b"[null]",
        b'{"events": []}',
        b'{"events": {}}',
        b'{"events": [], "sessionId": 5}',
        b'{"events": [], "sessionId": null}',
        b'{"events": [{"type": "presence"}], "type": "x"}',
        b'{"type": null}',
        b'{"type": 5}',
        b'{"type": "typing"} ',
        b'{"sessionId": "s", "status": "completed"}',
        b'{"sessionId": "s", "status": "completed", "events": []}',
        b'[{"type": "ended", "data": {"reason": "error"}}, {"type": "typing"}, 7]',
        b'[{"type": "ended", "data": {"reason": "error"}, "timestamp": "noon"}, {"type": 1}]',
        b'[{"type": "ended", "data": {"reason": "error"}}] x',
        b"\t[]",
        # Frames of an array or envelope.
        b'[{"type": "ended"}]',
        b'[{"type": "ended", "data": null}]',
        b'[{"type": "message"}]',
        b'[{"type": "message", "data": 5}]',
        b'[{"type": "message", "data": {"eventId": "e"}}]',
        b'[{"type": ["message"]}]',
        b'[{"type": null, "data": {}}]',
        b"[{}]",
        b'[{"type": "typing", "timestamp": true}]',
        b'[{"type": "typing", "sessionId": 5}, {"type": "presence", "data": 1}]',
        b'[{"type": "ended", "data": {"reason": "error"}, "sessionId": 7}]',
        b'[{"type": "ended", "data": {"reason": "error"}, "sessionId": ""}]',
        b'[{"type": "ended", "data": {"reason": "error"}, "sessionId": "f"}]',
        b'[{"type": "ended", "data": {"reason": "error"}, "timestamp": "2024-02-30T13:00:00Z"}]',
        b'{"sessionId": "env", "events": [{"type": "ended", "data": {"reason": "nope"}}]}',
        b'{"sessionId": "env", "events": [{"type": "reconnecting"}]}',
        b'{"events": [{"type": "typing", "timestamp": {}}]}',
        # Frames opening with `sessionId`, as an envelope or a ChatSession does.
        b'{"sessionId":"s","type":"ended","data":{"reason":"error"},"timestamp":1706878800}',
        b'{"sessionId":"s","type":"message","data":{"eventId":"e","sessionId":"t",'
        b'"speaker":"user","data":{"type":"text","text":"hi"},"timestamp":1706878800}}',
        b'{"sessionId":"s","type":"typing"}',
        b'{"sessionId":"s","type":"ended"}',
        b'{"sessionId":"s","type":"ended","data":{"reason":"nope"}}',
        b'{"sessionId":"","type":"ended","data":{"reason":"error"}}',
        b'{"sessionId":"s","type":"connected","data":{"sessionId":"s","connectedAt":"noon"}}',
        b'{"sessionId":"s","status":"completed","messages":[],"type":"ended"}',
        b'{"sessionId":5,"events":[]}',
        b'{"sessionId":"s"}',
    ],
)
def test_odd_bodies_decode_or_raise_a_declared_error(body: bytes) -> None:
    with contextlib.suppress(GatewayError):
        adapter.decode(body, conversation=SID)


_TEXT_FRAME = message({"type": "text", "text": "hi"})
_ENDED_FRAME = {"type": "ended", "data": {"reason": "error", "endedBy": "agent"}, "timestamp": AT}


@pytest.mark.parametrize(
    "body",
    [
        _TEXT_FRAME,
        _ENDED_FRAME,
        [_TEXT_FRAME],
        [{"type": "typing"}, _ENDED_FRAME],
        {"sessionId": SID, "events": [_TEXT_FRAME, _ENDED_FRAME]},
    ],
)
@pytest.mark.parametrize("spoil", ["bad_utf8", "deep"])
def test_bad_utf8_and_deep_nesting_in_a_known_frame_are_malformed_json(
    body: Any, spoil: str
) -> None:
    """Bad UTF-8 and deep nesting anywhere in a body are `MalformedJSON`: in a lone frame, or
    in a frame of an array or envelope."""
    encoded = json.dumps(body, separators=(",", ":")).encode()
    marker = b'"agent"' if b'"agent"' in encoded else b'"hi"'
    spoiled = b'"\xff"' if spoil == "bad_utf8" else b"[" * 3000 + b"]" * 3000
    with pytest.raises(MalformedJSON):
        adapter.decode(encoded.replace(marker, spoiled, 1), conversation=SID)


@pytest.mark.parametrize(
    "value",
    [
        "2024-02-02T13:00:00.99xZ",
        "2024-02-02T13:00:00.9999Z",
        "2024-02-02T13:00:00,000Z",
        "2024-02-02T13:00:00.000z",
        "2024-02-02T13:00:00.\u0661\u0662\u0663Z",
        "2024-02-30T13:00:00.000Z",
        "2024-02-02T24:00:00.000Z",
        "1969-12-31T23:59:59.000Z",
    ],
)
def test_remembered_seconds_let_through_only_what_to_at_accepts(value: str) -> None:
    """`to_at` remembers the seconds of the canonical times it has checked: after one good
    time in that second, any other value still gets `to_at`'s own answer in a message."""
    for seen in ("2024-02-02T13:00:00.001Z", "2024-02-30T13:00:00.001Z", value[:19] + ".000Z"):
        with contextlib.suppress(DecodeError):
            decode(message({"type": "text", "text": "x"}, timestamp=seen))
    try:
        expected: Any = to_at(value)
    except ValueError:
        expected = DecodeError
    try:
        [event] = decode(message({"type": "text", "text": "x"}, timestamp=value))
        got: Any = event["at"]
    except DecodeError:
        got = DecodeError
    assert got == expected
