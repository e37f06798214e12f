"""The shared decode pipeline (gateway.decoding), on a small dialect of the test's own: forms,
unknown names, errors and where they point, connector isolation, conversation context."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import pytest

from gateway import decoding
from gateway.context import ConversationContext
from gateway.decoding import Envelope, Refused, Scope, Spec
from gateway.errors import DecodeError, MalformedJSON, RequestError
from gateway.model import Error, Event, Message, Notice, ParticipantJoined, Party, Role, Text


class Said(msgspec.Struct, tag_field="type", tag="said", frozen=True):
    id: str
    party: str
    text: str
    chat: str | None = None


class Joined(msgspec.Struct, tag_field="type", tag="joined", frozen=True):
    party: str
    role: Role
    chat: str | None = None


class Tick(msgspec.Struct, tag_field="type", tag="tick", frozen=True):
    pass


class Batch(msgspec.Struct, frozen=True):
    items: list[msgspec.Raw]
    chat: str | None = None


Frame = Said | Joined | Tick


def build(frame: Frame, scope: Scope) -> Iterable[Event]:
    common = {"conversation_id": scope.conversation_id, "dialect": "toy", "at": scope.received_at}
    match frame:
        case Said():
            if frame.text == "refuse me":
                raise Refused("no such thing", "$.text")
            role = scope.context().role_of(frame.party) or "agent"
            sender = Party(role=role, id=frame.party)
            yield Message(
                id=f"{scope.conversation_id}/{frame.id}",
                sender=sender,
                content=Text(frame.text),
                **common,
            )
        case Joined():
            scope.learn(roles={frame.party: frame.role})
            yield ParticipantJoined(
                id=scope.event_id("joined", frame.party),
                participant=Party(role=frame.role, id=frame.party),
                **common,
            )
        case Tick():
            return


def conversation(frame: Frame, scope: Scope) -> str | None:
    envelope_chat = scope.envelope.chat if scope.envelope is not None else None
    return getattr(frame, "chat", None) or envelope_chat or scope.conversation


SPEC: Spec[Frame] = Spec(
    dialect="toy",
    frame=Frame,
    tag="type",
    build=build,
    conversation=conversation,
    envelopes=(Envelope("items", Batch, frames="items"),),
    silent=frozenset({"tick"}),
    contextual=True,
)


def said(n: int, text: str = "hi", party: str = "p1", chat: str | None = "c1") -> dict[str, object]:
    frame: dict[str, object] = {"type": "said", "id": f"m{n}", "party": party, "text": text}
    if chat:
        frame["chat"] = chat
    return frame


def body(value: object) -> bytes:
    return msgspec.json.encode(value)


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(said(1), id="one frame"),
        pytest.param([said(1)], id="an array"),
        pytest.param({"items": [said(1, chat=None)], "chat": "c1"}, id="the envelope, its chat"),
    ],
)
def test_every_form_decodes_to_the_same_event(form: object) -> None:
    (event,) = decoding.decode(SPEC, body(form)).events
    assert isinstance(event, Message) and (event.id, event.conversation_id) == (
        "toy:c1/m1",
        "toy:c1",
    )


def test_unknown_names_are_counted_silent_ones_are_not_and_neither_is_fatal() -> None:
    decoded = decoding.decode(
        SPEC, body([{"type": "new-thing", "x": 1}, {"type": "tick"}, said(1)])
    )
    assert (len(decoded.events), decoded.ignored) == (1, 1)


@pytest.mark.parametrize(
    ("frames", "index", "path"),
    [
        (
            [said(1), {"type": "said", "id": "m2", "party": "p", "text": 5, "chat": "c"}],
            1,
            "$.text",
        ),
        ([said(1), said(2, text="refuse me")], 1, "$.text"),
        ([{"no": "type"}], 0, "$"),
        (["not an object"], 0, "$"),
    ],
)
def test_a_bad_known_frame_fails_the_batch_naming_index_and_path(
    frames: list[object], index: int, path: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decoding.decode(SPEC, body(frames))
    assert (caught.value.details["index"], caught.value.details["path"]) == (index, path)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"type": "said", ', id="not JSON"),
        pytest.param(
            b'[{"type": "unknown", "x": "\xff"}]', id="bad UTF-8 in a frame skipped unread"
        ),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="too deep"),
    ],
)
def test_a_body_that_is_not_json_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedJSON):
        decoding.decode(SPEC, raw)


def test_a_frame_with_no_conversation_asks_for_the_parameter() -> None:
    with pytest.raises(RequestError) as caught:
        decoding.decode(SPEC, body(said(1, chat=None)))
    assert caught.value.details["parameter"] == "conversation"
    assert (
        decoding.decode(SPEC, body(said(1, chat=None)), conversation="c9").events[0].conversation_id
        == "toy:c9"
    )


def test_isolated_a_bad_frame_becomes_an_error_event_and_its_neighbours_live() -> None:
    frames = [said(1), {"type": "said", "id": 7}, said(3, text="refuse me"), said(4)]
    decoded = decoding.decode(SPEC, body(frames), conversation="c1", isolate=True)
    assert [e.id for e in decoded.events if isinstance(e, Message)] == ["toy:c1/m1", "toy:c1/m4"]
    errors = [e for e in decoded.events if isinstance(e, Error)]
    assert [e.metadata["index"] for e in errors] == [1, 2]
    assert [e.metadata["path"] for e in errors] == ["$.id", "$.text"]
    assert all(e.conversation_id == "toy:c1" and e.code == "INVALID_FRAME" for e in errors)
    assert decoded.rejected == 2
    again = decoding.decode(SPEC, body(frames), conversation="c1", isolate=True)
    assert [e.id for e in again.events] != [] and len({e.id for e in decoded.events}) == 4


def test_what_one_frame_teaches_the_next_sees_and_comes_out_learned() -> None:
    decoded = decoding.decode(
        SPEC,
        body(
            [
                said(1, party="bot-7"),
                {"type": "joined", "party": "bot-7", "role": "bot", "chat": "c1"},
                said(2, party="bot-7"),
            ]
        ),
    )
    roles = [e.sender.role for e in decoded.events if isinstance(e, Message)]
    assert roles == ["agent", "bot"]
    assert decoded.learned == {"toy:c1": ConversationContext(roles={"bot-7": "bot"})}


def test_stored_contexts_reach_the_builder_between_the_two_phases() -> None:
    parsed = decoding.parse(SPEC, body([said(1, party="me"), said(2, party="bot-7", chat="c2")]))
    assert parsed.conversations == {"toy:c1", "toy:c2"}
    stored = {
        "toy:c1": ConversationContext(own_address="me"),
        "toy:c2": ConversationContext(roles={"bot-7": "bot"}),
    }
    decoded = decoding.build(parsed, stored)
    assert [e.sender.role for e in decoded.events if isinstance(e, Message)] == ["user", "bot"]
    assert decoded.learned == {}


def test_a_bad_envelope_names_its_path() -> None:
    with pytest.raises(DecodeError) as caught:
        decoding.decode(SPEC, body({"items": "nope"}))
    assert caught.value.details["path"] == "$.items"


def test_an_envelope_may_stand_for_events_of_its_own() -> None:
    """`Envelope.after` builds last, with the decoded envelope and the body's events so far
    (genesys: a GMS reply's status and end)."""

    def closing(batch: Batch, scope: Scope, events: list[Event]) -> Iterable[Event]:
        conv = f"toy:{batch.chat}"
        yield Notice(
            id=f"{conv}/after",
            kind="info",
            text=f"{len(events)} before",
            conversation_id=conv,
            dialect="toy",
            at=scope.received_at,
        )

    spec = Spec(
        dialect="toy",
        frame=Frame,
        tag="type",
        build=build,
        conversation=conversation,
        envelopes=(Envelope("items", Batch, frames="items", after=closing),),
    )
    events = decoding.decode(spec, body({"items": [said(1), said(2)], "chat": "c1"})).events
    assert [e.id for e in events] == ["toy:c1/m1", "toy:c1/m2", "toy:c1/after"]
    assert isinstance(events[-1], Notice) and events[-1].text == "2 before"
    assert [e.id for e in decoding.decode(spec, body([said(1)])).events] == ["toy:c1/m1"]
