"""visitor_widget codec: fixtures, mapping tables, malformed input. Pure: no I/O."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.visitor_widget import VisitorWidgetAdapter
from gateway import model
from gateway.errors import DecodeError, GatewayError, MalformedJSON

FIXTURES = Path(__file__).parents[2] / "fixtures" / "visitor_widget"
CASES = sorted(p.name.removesuffix(".expected.json") for p in FIXTURES.glob("*.expected.json"))
adapter = VisitorWidgetAdapter()
C = "c1"


def _decode(body: Any, conversation: str | None = None) -> list[dict[str, Any]]:
    decoded = adapter.decode(json.dumps(body).encode(), conversation=conversation)
    return [msgspec.to_builtins(e) for e in decoded.events]


def _row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "m1",
        "type": "message",
        "subType": "agent",
        "chatId": C,
        "createdAt": "2024-03-05T10:15:30.120Z",
        "content": {"type": "text", "text": "hi"},
    }
    row.update(kw)
    return row


def _received(**kw: Any) -> dict[str, Any]:
    return {"event": "chat.message_received", "data": {"chatId": C, "message": _row(**kw)}}


@pytest.mark.parametrize("case", CASES)
def test_fixture(case: str) -> None:
    body = (FIXTURES / f"{case}.json").read_bytes()
    expected = json.loads((FIXTURES / f"{case}.expected.json").read_text())
    if "error" in expected:
        with pytest.raises(GatewayError) as info:
            adapter.decode(body, conversation=expected["conversation"])
        assert {"code": info.value.code, **info.value.details} == expected["error"]
    else:
        decoded = adapter.decode(body, conversation=expected["conversation"])
        assert [msgspec.to_builtins(e) for e in decoded.events] == expected["events"]
        assert decoded.ignored == expected["ignored"]


def test_every_event_name_has_a_fixture() -> None:
    from adapters.visitor_widget.decode import SPEC

    seen = set()
    for path in FIXTURES.glob("*.json"):
        seen |= {name for name in SPEC.known if f'"{name}"' in path.read_text()}
    assert seen == SPEC.known


@pytest.mark.parametrize(
    ("sub_type", "extra", "sender"),
    [
        ("contact", {"visitorId": "v1"}, {"role": "user", "id": "v1"}),
        ("agent", {"agentId": "a1"}, {"role": "agent", "id": "a1"}),
        (
            "trigger",
            {"trigger": {"id": "t1", "name": "Hi"}},
            {"role": "bot", "id": "t1", "name": "Hi"},
        ),
        ("trigger", {"trigger": None}, {"role": "bot"}),
        ("system", {}, {"role": "system"}),
        ("something_new", {}, {"role": "system"}),
    ],
)
def test_roles(sub_type: str, extra: dict[str, Any], sender: dict[str, Any]) -> None:
    (event,) = _decode(_received(subType=sub_type, **extra))
    assert event["sender"] == sender


@pytest.mark.parametrize(
    ("created_at", "at"),
    [
        ("2024-03-05T10:15:30.120Z", "2024-03-05T10:15:30.120Z"),
        ("2024-03-05T10:15:30Z", "2024-03-05T10:15:30.000Z"),
        ("2024-03-05T12:15:30.5+02:00", "2024-03-05T10:15:30.500Z"),
        ("2024-03-05T10:15:30", "2024-03-05T10:15:30.000Z"),
        (1709633730, "2024-03-05T10:15:30.000Z"),
        (1709633730.25, "2024-03-05T10:15:30.250Z"),
        (1709633730250, "2024-03-05T10:15:30.250Z"),
        ("1709633730", "2024-03-05T10:15:30.000Z"),
        ("1709633730250", "2024-03-05T10:15:30.250Z"),
    ],
)
def test_timestamp_forms(created_at: Any, at: str) -> None:
    (event,) = _decode(_received(createdAt=created_at))
    assert event["at"] == at


@pytest.mark.parametrize(
    ("status", "canonical"), [("pending", "queued"), ("open", "active"), ("closed", "completed")]
)
def test_chat_status(status: str, canonical: str) -> None:
    body = {
        "event": "initialized",
        "at": 1709633730,
        "data": {"visitor": {"id": "v1"}, "chat": {"id": C, "status": status, "messages": []}},
    }
    (event,) = _decode(body)
    assert (event["type"], event["status"]) == ("status", canonical)


@pytest.mark.parametrize(
    ("close_type", "reason", "by"),
    [
        ("agent_close", "agent", "agent"),
        ("contact_close", "user", "user"),
        ("visitor_close", "user", "user"),
        ("inactivity", "inactivity", "system"),
        ("system", "completed", "system"),
        (None, "completed", "system"),
    ],
)
def test_close_types(close_type: str | None, reason: str, by: str) -> None:
    body = {
        "event": "chat.closed",
        "at": 1709633730,
        "data": {"chatId": C, "closeType": close_type},
    }
    (event,) = _decode(body)
    assert (event["type"], event["reason"], event["by"]) == ("ended", reason, by)


def test_same_frame_same_ids() -> None:
    body = {
        "event": "chat.agent_typing",
        "at": 1709633730,
        "data": {"chatId": C, "typing": {"is": True}},
    }
    assert _decode(body) == _decode(body)
    other = {**body, "at": 1709633731}
    assert _decode(body)[0]["id"] != _decode(other)[0]["id"]


TIMELESS = [
    {"event": "chat.agent_typing", "data": {"chatId": C, "typing": {"is": True}}},
    {"event": "chat.contact_read", "data": {"chatId": C, "lastReadAt": None, "byId": "v1"}},
    {"event": "chat.closed", "data": {"chatId": C, "closeType": "agent_close"}},
    {"event": "chat.agent_joined", "data": {"chatId": C, "agent": {"id": "a1"}}},
    {"event": "chat.agent_left", "data": {"chatId": C, "agent": {"id": "a1"}}},
    {"event": "chat.agent_assigned", "data": {"chatId": C, "assigned": {"id": "a1"}}},
    {"event": "chat.agent_unassigned", "data": {"chatId": C, "unassigned": {"id": "a1"}}},
    {"event": "chat.rated", "data": {"chatId": C, "rating": {"value": 4, "text": None}}},
    {"event": "chat.deleted", "data": {"chatId": C}},
    {"event": "account.updated", "data": {"status": "offline"}},
    {"event": "account.status_updated", "data": "online"},
    {"event": "server.error", "data": {"message": "boom", "code": 500}},
    {
        "event": "initialized",
        "data": {
            "visitor": {"id": "v1"},
            "account": {"status": "online"},
            "chat": {"id": C, "status": "open"},
        },
    },
    _received(createdAt=None),
]


@pytest.mark.parametrize("body", TIMELESS, ids=lambda b: b["event"])
def test_timeless_frames_reposted_get_the_same_ids(
    body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame with no time of its own is stamped with the receive time, but its ids do not
    depend on it: the same body posted again is deduplicated."""
    from gateway.codec import to_at

    clock = iter(range(1_700_000_000_000, 1_800_000_000_000, 1000))

    monkeypatch.setattr(model, "clock", lambda: to_at(next(clock)))  # ticks on every call
    first, again = _decode(body, conversation=C), _decode(body, conversation=C)
    assert [e["at"] for e in first] != [e["at"] for e in again]  # received at other times
    assert [e["id"] for e in first] == [e["id"] for e in again]
    # … while a frame that does carry a time keeps it in its derived ids
    timed = [_decode({**body, "at": at}, conversation=C)[0]["id"] for at in (1, 2)]
    if body["event"] not in (
        "initialized",
        "chat.message_received",
        "chat.agent_joined",
        "chat.agent_assigned",
        "chat.deleted",  # a chat is deleted once: its id is the fact alone
    ):
        assert timed[0] != timed[1]


def test_status_id_is_stable_across_reconnects() -> None:
    """`initialized` after every reconnect repeats the chat status: same id, so it dedups."""

    def status_at(at: int) -> str:
        chat = {"id": C, "status": "open"}
        body = {"event": "initialized", "at": at, "data": {"visitor": {"id": "v1"}, "chat": chat}}
        return str(_decode(body)[0]["id"])

    assert status_at(1) == status_at(2)


AGENT = {"id": "a1", "nickname": "Jana", "fullname": "Jana Nováková"}
BOSS = {"id": "a9", "nickname": "Eva", "fullname": "Eva Dvořáková"}
AGENT_FRAMES = [
    ("chat.agent_joined", {"agent": AGENT}, "agent_join", {"agentId": "a1"}, {}),
    ("chat.agent_left", {"agent": AGENT}, "agent_leave", {"agentId": "a1"}, {}),
    (
        "chat.agent_assigned",
        {"assigned": AGENT, "assignedBy": BOSS},
        "agent_assign",
        {"assigned": "a1", "assignedBy": "a9"},
        {"assigned_by": "a9"},
    ),
    (
        "chat.agent_unassigned",
        {"unassigned": AGENT, "unassignedBy": BOSS},
        "agent_unassign",
        {"unassigned": "a1", "unassignedBy": "a9"},
        {"unassigned_by": "a9"},
    ),
]


@pytest.mark.parametrize(
    ("event", "agents", "kind", "data", "metadata"), AGENT_FRAMES, ids=[f[0] for f in AGENT_FRAMES]
)
def test_agent_frame_and_its_row_make_one_event(
    event: str, agents: dict[str, Any], kind: str, data: dict[str, Any], metadata: dict[str, Any]
) -> None:
    """`chat.agent_*` names the agent as an object (`agent`, `assigned`, `unassigned`; the
    nickname, else `fullname`, is its name); its event row names it by id in `content.data`
    (the row's own `agentId` is null, smartsupp-sdk-websocket src/types.ts). Both make the
    same event, with the same id, so the row in a later `initialized` deduplicates."""
    row = _row(
        id="m9",
        type="event",
        subType="system",
        agentId=None,
        content={"type": kind, "text": None, "data": data},
    )
    frame = _decode({"event": event, "data": {"chatId": C, **agents, "message": row}})[-1]
    from_row = _decode({"event": "chat.message_received", "data": {"chatId": C, "message": row}})
    assert frame["id"] == from_row[0]["id"] == f"visitor_widget:{C}/m9"
    assert frame["participant"] == {"role": "agent", "id": "a1", "name": "Jana"}
    assert from_row[0]["participant"] == {"role": "agent", "id": "a1"}
    assert frame.get("metadata", {}) == from_row[0].get("metadata", {}) == metadata
    nameless = _decode({"event": event, "data": {"chatId": C, **agents}}, C)[-1]["participant"]
    assert nameless == {"role": "agent", "id": "a1", "name": "Jana"}
    full = {
        k: {"id": "a1", "fullname": "Jana Nováková"} if v is AGENT else v for k, v in agents.items()
    }
    assert _decode({"event": event, "data": {"chatId": C, **full}})[-1]["participant"] == {
        "role": "agent",
        "id": "a1",
        "name": "Jana Nováková",
    }


def test_event_row_agent_falls_back_to_the_row() -> None:
    """A row whose `content.data` names no agent keeps its own `agentId` (older rows)."""
    row = _row(type="event", subType="system", agentId="a2", content={"type": "agent_leave"})
    (event,) = _decode({"event": "chat.message_received", "data": {"chatId": C, "message": row}})
    assert event["participant"] == {"role": "agent", "id": "a2"}


@pytest.mark.parametrize(
    ("close", "reason", "by", "metadata"),
    [
        ({"closeType": "agent_close", "agentId": "a1"}, "agent", "agent", {"agent_id": "a1"}),
        ({"closeType": "visitor_close"}, "user", "user", {}),
        (None, "completed", "system", {}),
    ],
)
def test_chat_close_row(
    close: dict[str, Any] | None, reason: str, by: str, metadata: dict[str, Any]
) -> None:
    """`chat_close` rows (subType system) carry `closeType` and, for an agent's close, the
    `agentId` in `content.data` (src/types.ts `MessageEventContent.ChatClose`)."""
    content = {"type": "chat_close", "text": None, "data": close}
    row = _row(type="event", subType="system", agentId=None, content=content)
    (event,) = _decode({"event": "chat.closed", "data": {"chatId": C, "message": row}})
    assert (event["reason"], event["by"], event.get("metadata", {})) == (reason, by, metadata)


def test_rated_without_its_row() -> None:
    body = {"event": "chat.rated", "at": 1, "data": {"chatId": C, "rating": {"value": 3}}}
    (event,) = _decode(body)
    assert (event["type"], event["text"], event["metadata"]) == (
        "notice",
        "Chat rated 3",
        {"rating": 3},
    )


def test_rated_frame_decides_over_its_row() -> None:
    """The frame's `rating` is the authority; the row's own (stale) data is not repeated."""
    row = _row(id="m7", subType="system", content={"type": "rate_form", "data": {"value": 1}})
    body = {"event": "chat.rated", "data": {"chatId": C, "rating": {"value": 5}, "message": row}}
    form, notice = _decode(body)
    assert (form["type"], form["id"]) == ("form", f"visitor_widget:{C}/m7")
    assert (notice["id"], notice["metadata"]) == (f"visitor_widget:{C}/m7/rating", {"rating": 5})


def test_deleted_chat_ends_it() -> None:
    body = {"event": "chat.deleted", "data": {"chatId": C}}
    (event,) = _decode(body)
    assert (event["type"], event["reason"], event["by"]) == ("ended", "completed", "system")


MALFORMED = [
    (_received(content={"type": "text", "text": None}), 0, "$.data.message.content.text"),
    (_received(createdAt="not a time"), 0, "$.data.message.createdAt"),
    (_received(createdAt="2024-13-45T10:15:30.120Z"), 0, "$.data.message.createdAt"),
    (_received(createdAt=1e30), 0, "$.data.message.createdAt"),
    (_received(createdAt=True), 0, "$.data.message.createdAt"),
    (_received(attachments=None), 0, "$.data.message.attachments"),
    (
        _received(attachments=[{"type": "image", "size": "big"}]),
        0,
        "$.data.message.attachments[0].size",
    ),
    (_received(id=None), 0, "$.data.message.id"),
    (_received(type="note"), 0, "$.data.message.type"),
    ({"event": "chat.message_received", "data": {"chatId": C}}, 0, "$.data"),
    ({"event": "chat.message_received"}, 0, "$"),
    (
        {"event": "chat.contact_read", "data": {"chatId": C, "lastReadAt": {}}},
        0,
        "$.data.lastReadAt",
    ),
    (
        {"event": "chat.agent_typing", "at": "soon", "data": {"chatId": C, "typing": {"is": True}}},
        0,
        "$.at",
    ),
    ({"event": "chat.agent_joined", "data": {"chatId": C, "agent": "Jana"}}, 0, "$.data.agent"),
    ({"event": "chat.agent_assigned", "data": {"chatId": C, "agent": {}}}, 0, "$.data"),
    (
        {"event": "chat.agent_unassigned", "data": {"chatId": C, "unassigned": 1}},
        0,
        "$.data.unassigned",
    ),
    (
        {"event": "chat.rated", "data": {"chatId": C, "rating": {"value": "5"}}},
        0,
        "$.data.rating.value",
    ),
    ({"event": "chat.deleted", "data": None}, 0, "$.data"),
    (
        _received(type="event", content={"type": "agent_join", "data": "a1"}),
        0,
        "$.data.message.content.data",
    ),
    (
        _received(type="event", content={"type": "agent_assign", "data": {"assigned": 5}}),
        0,
        "$.data.message.content.data.assigned",
    ),
    (
        _received(content={"type": "upload", "data": {"url": "u", "size": "big"}}),
        0,
        "$.data.message.content.data.size",
    ),
    (
        _received(content={"type": "upload", "data": {"type": "file"}}),
        0,
        "$.data.message.content.data.url",
    ),
    ({"event": "account.updated", "data": {"status": "away"}}, 0, "$.data.status"),
    ({"event": "server.error", "data": {"code": 500}}, 0, "$.data"),
    ({"event": "initialized", "data": {"visitor": None}}, 0, "$.data.visitor"),
    ([_received(), {"event": 5}], 1, "$.event"),
    ([_received(), None], 1, "$"),
    ({"events": [_received(), _received(chatId=1)]}, 1, "$.data.message.chatId"),
]


@pytest.mark.parametrize(("body", "index", "path"), MALFORMED)
def test_malformed_known_frames(body: Any, index: int, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        adapter.decode(json.dumps(body).encode(), conversation=C)
    assert (info.value.details["index"], info.value.details["path"]) == (index, path)


@pytest.mark.parametrize("body", [b"", b"{", b"[1,", b"nope", b"\xff\xfe"])
def test_not_json(body: bytes) -> None:
    with pytest.raises(MalformedJSON):
        adapter.decode(body)


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b"[]",
        b'{"events": []}',
        b'{"event": "visitor.updated"}',
        b"[[]]",
        b'"x"',
        b"3",
        b"null",
    ],
)
def test_odd_bodies_never_escape(body: bytes) -> None:
    with contextlib.suppress(GatewayError):
        adapter.decode(body, conversation=C)


def test_wrong_types_everywhere_raise_decode_error() -> None:
    """Replace every leaf of a rich frame with values of wrong types: only DecodeError escapes."""
    base = json.loads((FIXTURES / "initialized.json").read_text())
    wrong = [None, 1, 1.5, "x", True, [], {}]

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [prefix]
        if isinstance(node, dict):
            for k, v in node.items():
                out += paths(v, (*prefix, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out += paths(v, (*prefix, i))
        return out

    for path in paths(base)[1:]:
        for value in wrong:
            frame = json.loads(json.dumps(base))
            node = frame
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = value
            with contextlib.suppress(DecodeError):
                adapter.decode(json.dumps(frame).encode())


@pytest.mark.parametrize(
    ("ack", "code", "recoverable"),
    [
        (
            {"message": "Connection not initialized", "type": "auth_error", "code": 403},
            "VENDOR_ERROR",
            True,
        ),
        (
            {"message": "Invalid account key", "type": "auth_error", "code": 401},
            "VENDOR_ERROR",
            True,
        ),
        (
            {"message": "Visitor not found", "type": "not_found", "code": 404},
            "SESSION_NOT_FOUND",
            False,
        ),
        ({"message": "gone", "code": "404"}, "SESSION_NOT_FOUND", False),
        (
            {"message": "Message text is empty", "type": "bad_request", "code": 400},
            "INVALID_REQUEST",
            False,
        ),
        ({"message": "bad", "code": 422}, "INVALID_REQUEST", False),
        ({"message": "Internal failure"}, "VENDOR_ERROR", True),
    ],
)
def test_error_acks(ack: dict[str, Any], code: str, recoverable: bool) -> None:
    from adapters.visitor_widget.errors import error_of
    from adapters.visitor_widget.native import ServerErrorData

    exc = error_of(msgspec.convert(ack, ServerErrorData))
    assert (exc.code, exc.recoverable, exc.message) == (code, recoverable, ack["message"])
    assert exc.details.get("vendor_code") == ack.get("code")


# ---------------------------------------------------------------------------------------------
# Body forms and mutations of every fixture


def _mutations(frame: Any) -> list[Any]:
    """`frame` with each of its leaves (and subtrees) replaced by values of other types."""

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [prefix]
        if isinstance(node, dict):
            for k, v in node.items():
                found += paths(v, (*prefix, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                found += paths(v, (*prefix, i))
        return found

    out = []
    for path in paths(frame)[1:]:
        for value in (None, 1, 1.5, "x", "", True, [], {}):
            mutated = json.loads(json.dumps(frame))
            node = mutated
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = value
            out.append(mutated)
    return out


FRAME_CASES = [
    c
    for c in CASES
    if not c.startswith("bad_")
    and isinstance(json.loads((FIXTURES / f"{c}.json").read_text()), dict)
    and "events" not in json.loads((FIXTURES / f"{c}.json").read_text())
]


@pytest.mark.parametrize("case", FRAME_CASES)
def test_every_body_form_and_mutation(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every one-frame fixture decodes the same as a frame, in an array, in the envelope and
    beside an unknown event; and with any part replaced by a value of another type it decodes
    or is refused with a `GatewayError` (nothing else escapes), in a batch at that index."""
    monkeypatch.setattr(model, "clock", lambda: "2024-01-01T00:00:00.000Z")  # no drift
    frame = json.loads((FIXTURES / f"{case}.json").read_text())
    conversation = json.loads((FIXTURES / f"{case}.expected.json").read_text())["conversation"]
    unknown = {"event": "visitor.updated", "data": {"name": "Ann"}}
    alone = adapter.decode(json.dumps(frame).encode(), conversation=conversation)
    for body, ignored in (([frame], 0), ({"events": [frame]}, 0), ([unknown, frame], 1)):
        decoded = adapter.decode(json.dumps(body).encode(), conversation=conversation)
        assert (decoded.events, decoded.ignored) == (alone.events, ignored)
    for mutated in _mutations(frame):
        try:
            adapter.decode(json.dumps([frame, mutated]).encode(), conversation=conversation)
        except DecodeError as exc:
            assert exc.details["index"] == 1
        except GatewayError:
            pass


@pytest.mark.parametrize("url", [None, ""])
def test_attachment_without_url_is_an_invalid_frame(url: str | None) -> None:
    """Not the canonical model's `ValueError`: a `DecodeError` naming the field."""
    body = _received(content={"type": "upload"}, attachments=[{"type": "file", "url": url}])
    with pytest.raises(DecodeError) as info:
        adapter.decode(json.dumps(body).encode())
    assert info.value.details["path"] == "$.data.message.attachments[0].url"


def _body_forms(frame: dict[str, Any]) -> list[bytes]:
    """A frame as every body form (minified, as platforms send it)."""
    unknown = {"event": "visitor.updated", "data": {"name": "Ann"}}
    forms: list[Any] = [frame, [frame, frame], {"events": [frame]}, [unknown, frame]]
    return [json.dumps(f, separators=(",", ":")).encode() for f in forms]


@pytest.mark.parametrize(
    "frame",
    [
        _received(),
        {"event": "chat.agent_typing", "at": 1, "data": {"chatId": C, "typing": {"is": True}}},
    ],
    ids=["message", "typing"],
)
def test_bad_utf8_and_deep_nesting_in_every_body_form(frame: dict[str, Any]) -> None:
    """Bad UTF-8 inside a string and nesting too deep, in any frame of any body form, are
    `MalformedJSON`."""
    for body in _body_forms(frame):
        spot = body.rindex(b'"chatId":"') + len(b'"chatId":"')
        deep = b"[" * 3000 + b"]" * 3000
        for bad in (
            body[:spot] + b"\xff" + body[spot:],
            body[: spot - 1] + deep + body[spot + len(C) + 1 :],
        ):
            with pytest.raises(MalformedJSON):
                adapter.decode(bad, conversation=C)
    # Deep nesting where the Structs take anything (`content.data`).
    anything = _received(content={"type": "text", "text": "hi", "data": "DEEP"})
    for body in _body_forms(anything):
        with pytest.raises(MalformedJSON, match="nested too deeply"):
            adapter.decode(body.replace(b'"DEEP"', b"[" * 3000 + b"]" * 3000), conversation=C)


def test_an_invalid_field_in_a_batch_names_its_frame() -> None:
    """A batch whose later frame has a time `to_at` refuses is refused whole, naming that
    frame by its position in the body and the field's path."""
    bad = _received(createdAt="not a time")
    unknown = {"event": "visitor.updated"}
    for body, index in (
        ([_received(), bad], 1),
        ({"events": [_received(), _received(), bad]}, 2),
        ([unknown, bad], 1),
    ):
        with pytest.raises(DecodeError) as info:
            adapter.decode(json.dumps(body).encode(), conversation=C)
        assert (info.value.details["index"], info.value.details["path"]) == (
            index,
            "$.data.message.createdAt",
        )


@pytest.mark.parametrize("at", [None, 1709633730, 1709633730.25, "2024-03-05T10:15:30.000Z"])
@pytest.mark.parametrize("agent", [None, "a1"])
def test_derived_ids_are_derived_id_of_their_parts(at: Any, agent: str | None) -> None:
    """Derived ids are `derived_id` of the parts that make the event: the same frame always
    gets the same id (these ids are in the logs of conversations already stored)."""
    from gateway.codec import derived_id, to_at

    conv = f"visitor_widget:{C}"
    key = "" if at is None else to_at(at)
    typing = {"chatId": C, "agentId": agent, "typing": {"is": False}}
    frames: list[tuple[dict[str, Any], str]] = [
        (
            {"event": "chat.agent_typing", "at": at, "data": typing},
            derived_id(conv, "typing", key, agent, False),
        ),
        (
            {"event": "chat.contact_read", "at": at, "data": {"chatId": C, "lastReadAt": None}},
            derived_id(conv, "read", key, None),
        ),
        (
            {"event": "chat.closed", "at": at, "data": {"chatId": C}},
            derived_id(conv, "closed", key, None),
        ),
        (
            {"event": "chat.agent_left", "at": at, "data": {"chatId": C, "agent": {"id": agent}}},
            derived_id(conv, "left", key, agent),
        ),
        (
            {"event": "account.updated", "at": at, "data": {"status": "online"}},
            derived_id(conv, "availability", "online", key),
        ),
        (
            {"event": "server.error", "at": at, "data": {"message": "m", "code": 500}},
            derived_id(conv, "error", key, 500, None, None, "m"),
        ),
    ]
    for frame, expected in frames:
        assert _decode(frame, conversation=C)[0]["id"] == expected, frame["event"]
    joined = {"event": "chat.agent_joined", "at": at, "data": {"chatId": C, "agent": {"id": agent}}}
    status, participant = _decode(joined)
    assert status["id"] == derived_id(conv, "status", "open")
    assert participant["id"] == derived_id(conv, "joined", key, agent)
