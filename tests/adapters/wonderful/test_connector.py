"""The wonderful connector against the emulated platform: its chat WebSocket (the public
integration notes' wire) and our REST paths, over real HTTP and WebSocket on loopback."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import pytest

from adapters.wonderful.connector import WonderfulConnector
from adapters.wonderful.emulator import GREETING, Emulator
from adapters.wonderful.errors import platform_error
from gateway.errors import GatewayError, RequestError, SessionNotFound, VendorError
from gateway.model import (
    End,
    Ended,
    Error,
    Event,
    File,
    Forward,
    Image,
    Link,
    Message,
    Participant,
    Send,
    SetTyping,
    Start,
    Status,
    Text,
)
from tests.adapters.wonderful.conftest import Make, history_read, texts
from tests.support import Inbound

Collect = Callable[[Any], Inbound]
Live = Callable[[], Awaitable[tuple[WonderfulConnector, Inbound, str]]]


def start(**fields: Any) -> Start:
    participant = Participant(from_="+1234567890", from_type="phone")
    return Start(dialect="wonderful", participant=participant, **fields)


@pytest.fixture
def live(make: Make, collect: Collect) -> Live:
    """`await live()`: a started session's connector, its inbound collected, its native id."""

    async def live() -> tuple[WonderfulConnector, Inbound, str]:
        connector = make()
        await connector.open(start())
        return connector, collect(connector), connector.conversation_id.removeprefix("wonderful:")

    return live


def said(text: str) -> Callable[[list[Event]], bool]:
    return lambda events: text in texts(events)


def links(events: list[Event]) -> list[tuple[Any, ...]]:
    return [
        (e.state, e.will_retry, e.attempt, e.max_attempts, e.missed)
        for e in events
        if isinstance(e, Link)
    ]


def ended(events: list[Event]) -> bool:
    return any(isinstance(e, Ended) for e in events)


async def test_start_converse_and_echo(emulator: Emulator, make: Make, collect: Collect) -> None:
    connector = make()
    opened = await connector.open(start(agent_id="agent-7", metadata={"customer_id": "c-1"}))
    sid = connector.conversation_id.removeprefix("wonderful:")
    assert isinstance(opened[0], Status)
    assert opened[0].status == "active"
    assert any(isinstance(e, Link) and e.state == "up" for e in opened)
    [handshake] = emulator.received
    assert (handshake.path, handshake.auth) == ("/api/v1/agents/agent-7/chat", "x-api-key")
    assert emulator.sessions[sid].agent_id == "agent-7"
    inbound = collect(connector)
    await inbound.until(said(GREETING))  # the init went before: the socket keeps order
    assert emulator.sessions[sid].metadata == {
        "from": "+1234567890",
        "from_type": "phone",
        "from_number": "+1234567890",
        "locale": "en-US",
        "customer_id": "c-1",
    }

    everything = [*opened]
    [sent] = await connector.send(
        Send(conversation=connector.conversation_id, content=Text("hello"))
    )
    assert isinstance(sent, Message)
    assert sent.sender.role == "user"
    await inbound.until(said("echo: hello"))
    everything += inbound.events
    assert texts(everything) == [GREETING, "hello", "echo: hello"]
    greeting = next(e for e in everything if isinstance(e, Message))
    assert greeting.sender.role == "bot"
    # the echo of the user's message carries exactly the id `send` returned: it dedups
    user_ids = {e.id for e in everything if isinstance(e, Message) and e.sender.role == "user"}
    assert user_ids == {sent.id}
    echo = next(e for e in inbound.events if e.id == sent.id)
    assert echo == sent  # whichever the hub stores first, the log reads the same
    assert emulator.sessions[sid].received == [{"type": "message", "text": "hello"}]


@pytest.mark.parametrize(
    ("options", "auth"),
    [
        ({}, "x-api-key"),  # an API key: the server-side header by default
        ({"ws_auth": "subprotocol"}, "apikey"),
        ({"api_key": "", "token": "test-key"}, "token"),  # a token alone: as a browser does
        ({"api_key": "", "token": "test-key", "ws_auth": "header"}, "bearer"),
    ],
)
async def test_socket_auth_is_an_option(
    emulator: Emulator, make: Make, options: dict[str, str], auth: str
) -> None:
    connector = make(**options)
    await connector.open(start())
    assert emulator.received[0].auth == auth


def test_a_bad_ws_auth_option_is_refused(make: Make) -> None:
    with pytest.raises(RequestError) as caught:
        make(ws_auth="cookie")
    assert caught.value.details["parameter"] == "ws_auth"


async def test_start_needs_an_agent(make: Make) -> None:
    with pytest.raises(RequestError, match="agent"):
        await make(agent_id="").open(start())


async def test_a_media_send_retried_after_a_lost_answer_is_delivered_once(
    emulator: Emulator, make: Make, collect: Collect
) -> None:
    connector = make()
    await connector.open(start(ref="s-retry"))
    conv = connector.conversation_id
    sid = conv.removeprefix("wonderful:")
    inbound = collect(connector)
    emulator.lose_answers(2)  # the platform takes it, then the answer is lost, twice
    once, twice = Image(url="https://x/once.png"), Image(url="https://x/twice.png")
    [sent] = await connector.send(Send(conversation=conv, content=once, ref="m1"))
    [unreffed] = await connector.send(Send(conversation=conv, content=twice))
    assert emulator.sessions[sid].received == [
        {"type": "image", "mediaUrl": "https://x/once.png"},
        {"type": "image", "mediaUrl": "https://x/twice.png"},
    ]
    await emulator.agent_says(sid, "got them")  # the turn's end: the history is read
    await inbound.until(said("got them"))
    history = [f"{conv}/{m['eventId']}" for m in emulator.sessions[sid].messages]
    assert history[1:3] == [sent.id, unreffed.id]
    delivered = [e.id for e in inbound.events]
    assert delivered.count(sent.id) <= 1 and delivered.count(unreffed.id) <= 1
    posts = [r for r in emulator.received if r.path.endswith("/messages")]
    keys = [r.key for r in posts]
    assert len(posts) == 4  # the first send tried three times, the second once
    assert keys[0] == keys[1] == keys[2] != keys[3]
    assert keys[3] is not None  # no ref: a fresh key per command, kept over its retries


async def test_a_file_the_agent_sends_comes_from_the_history_at_its_turn_s_end(
    emulator: Emulator, live: Live
) -> None:
    _, inbound, sid = await live()
    data = {"type": "document", "mediaUrl": "https://x/invoice.pdf", "fileName": "invoice.pdf"}
    line = await emulator.agent_sends(sid, data)  # no transcript: only `turn_ended`
    await inbound.until(lambda events: any(e.id.endswith(line) for e in events))
    [file] = [e for e in inbound.events if e.id.endswith(line)]
    assert isinstance(file, Message)
    assert file.sender.role == "bot"
    assert file.content == File(url="https://x/invoice.pdf", file_name="invoice.pdf")


async def test_agent_messages_arrive_in_order(emulator: Emulator, live: Live) -> None:
    _, inbound, sid = await live()
    for n in range(5):
        await emulator.agent_says(sid, f"m{n}")
    await emulator.agent_says(sid, "a human here", speaker="human_agent")
    await inbound.until(said("a human here"))
    assert [t for t in inbound.texts() if t.startswith("m")] == ["m0", "m1", "m2", "m3", "m4"]
    assert [e for e in inbound.events if isinstance(e, Message)][-1].sender.role == "agent"


async def test_image_and_document_reach_the_platform(emulator: Emulator, make: Make) -> None:
    connector = make()
    await connector.open(start())
    conv = connector.conversation_id
    [image] = await connector.send(Send(conversation=conv, content=Image(url="https://x/a.png")))
    assert isinstance(image, Message)
    assert image.content == Image(url="https://x/a.png")
    sid = conv.removeprefix("wonderful:")
    assert emulator.sessions[sid].received == [{"type": "image", "mediaUrl": "https://x/a.png"}]


async def test_user_says_bye_and_the_agent_ends(live: Live) -> None:
    connector, inbound, _ = await live()
    await connector.send(Send(conversation=connector.conversation_id, content=Text("bye")))
    await inbound.finished()
    last = inbound.events[-1]
    assert isinstance(last, Ended)
    assert (last.reason, last.by) == ("completed", None)  # `communication_ended` says no more
    assert "Goodbye!" in inbound.texts()


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (lambda conv: End(conversation=conv), "user"),
        (lambda conv: Forward(conversation=conv, destination="support-team"), "forwarded"),
    ],
)
async def test_end_and_forward(command: Callable[[str], Any], reason: str, live: Live) -> None:
    connector, inbound, _ = await live()
    [done] = await connector.send(command(connector.conversation_id))
    await inbound.finished()
    last = inbound.events[-1]
    assert isinstance(last, Ended)
    assert (last.reason, last.by) == (reason, "user")
    assert done == last  # the socket's `communication_ended` is the end we asked for


async def test_the_platform_ends_the_session(emulator: Emulator, live: Live) -> None:
    _, inbound, sid = await live()
    await emulator.end_session(sid)
    await inbound.finished()
    last = inbound.events[-1]
    assert isinstance(last, Ended)
    assert (last.reason, last.by) == ("completed", None)


async def test_a_masked_echo_still_acknowledges_its_send(emulator: Emulator, live: Live) -> None:
    emulator.mask_pii = True
    connector, inbound, _ = await live()
    card = Text("my card is 4111111111111111")
    [sent] = await connector.send(Send(conversation=connector.conversation_id, content=card))
    assert isinstance(sent, Message)
    assert sent.content == Text("my card is [redacted]")  # the line as the platform keeps it
    await inbound.until(said("echo: my card is [redacted]"))
    assert [e for e in inbound.events if e.id == sent.id] == [sent]


async def test_a_bad_socket_frame_is_an_error_event_and_the_session_goes_on(
    emulator: Emulator, live: Live
) -> None:
    connector, inbound, sid = await live()
    await emulator.send_raw(sid, "not json")
    await emulator.send_raw(sid, '{"type": "transcript", "data": {"id": "x"}}')
    await emulator.agent_says(sid, "still here")
    await inbound.until(said("still here"))
    errors = [e for e in inbound.events if isinstance(e, Error)]
    assert [(e.code, e.conversation_id) for e in errors] == [
        ("MALFORMED_JSON", connector.conversation_id),
        ("INVALID_FRAME", connector.conversation_id),
    ]
    assert errors[1].metadata == {"index": 0, "path": "$.data"}


async def test_reconnect_reports_the_link_and_loses_nothing(
    emulator: Emulator, make: Make, collect: Collect
) -> None:
    connector = make()
    opened = await connector.open(start())
    inbound = collect(connector)
    sid = connector.conversation_id.removeprefix("wonderful:")
    await inbound.until(lambda events: GREETING in texts([*opened, *events]))
    await history_read(emulator)  # the greeting's turn is over: the outage's line is missed
    emulator.hold_connections()
    await emulator.drop_connections(refuse_next=2)
    await emulator.agent_says(sid, "while you were away")  # nobody listens: only the history has it
    await inbound.until(lambda events: (("retrying", None, 3, 5, None)) in links(events))
    emulator.release_connections()
    await inbound.until(lambda events: any(link[0] == "restored" for link in links(events)))
    assert links(inbound.events) == [
        ("down", True, None, None, None),
        ("retrying", None, 1, 5, None),
        ("retrying", None, 2, 5, None),
        ("retrying", None, 3, 5, None),
        ("restored", None, None, None, 1),
    ]
    await emulator.agent_says(sid, "live again")
    await inbound.until(said("live again"))
    assert texts([*opened, *inbound.events]) == [GREETING, "while you were away", "live again"]


async def test_a_normal_close_is_the_session_s_end(emulator: Emulator, live: Live) -> None:
    """The notes: an intentional close (1000) means the session ended normally: no reconnect."""
    _, inbound, _ = await live()
    await inbound.until(said(GREETING))
    await emulator.drop_connections(code=1000)
    await inbound.finished()
    assert links(inbound.events) == []
    last = inbound.events[-1]
    assert isinstance(last, Ended)
    assert (last.reason, last.by) == ("completed", None)


async def test_gives_up_after_max_attempts(
    emulator: Emulator, make: Make, collect: Collect
) -> None:
    connector = make(max_attempts="2")
    await connector.open(start())
    inbound = collect(connector)
    await emulator.drop_connections(refuse_next=10)
    await inbound.finished()
    assert links(inbound.events)[-3:] == [
        ("retrying", None, 1, 2, None),
        ("retrying", None, 2, 2, None),
        ("down", False, None, None, None),
    ]


async def test_resume_from_a_snapshot_continues_without_loss(
    emulator: Emulator, make: Make, collect: Collect
) -> None:
    first = make()
    opened = await first.open(start())
    inbound = collect(first)
    sid = first.conversation_id.removeprefix("wonderful:")
    await first.send(Send(conversation=first.conversation_id, content=Text("one")))
    await inbound.until(said("echo: one"))
    state = first.snapshot()
    await first.close()
    await inbound.finished()
    await emulator.agent_says(sid, "said to nobody")

    second = make()
    resumed = await second.resume(state)
    assert second.conversation_id == first.conversation_id
    assert texts(list(resumed)) == ["said to nobody"]  # from the position on, nothing before
    later = collect(second)
    await emulator.agent_says(sid, "after the takeover")
    await later.until(said("after the takeover"))
    delivered = {e.id for e in [*opened, *inbound.events, *resumed, *later.events]}
    history = {f"wonderful:{sid}/{m['eventId']}" for m in emulator.sessions[sid].messages}
    assert history <= delivered


async def test_resume_a_completed_session_gives_history_and_ends(
    emulator: Emulator, make: Make, collect: Collect
) -> None:
    first = make()
    await first.open(start())
    sid = first.conversation_id.removeprefix("wonderful:")
    await emulator.end_session(sid)
    second = make()
    events = await second.resume({"session_id": sid, "position": 0})
    assert isinstance(events[0], Status)
    assert events[0].status == "completed"
    assert isinstance(events[-1], Ended)
    await collect(second).finished()


async def test_resume_an_unknown_session(make: Make) -> None:
    with pytest.raises(SessionNotFound):
        await make().resume({"session_id": "no-such-session", "position": 0})


async def test_a_bad_key_is_a_vendor_error(make: Make) -> None:
    with pytest.raises(VendorError) as caught:
        await make(api_key="wrong").open(start())
    assert caught.value.details == {"http_status": 401}  # the handshake is refused


async def test_commands_the_platform_refuses(
    make: Make, emulator: Emulator, collect: Collect
) -> None:
    connector = make()
    await connector.open(start())
    conv = connector.conversation_id
    with pytest.raises(RequestError):
        await connector.send(Send(conversation=conv, content=Text("")))
    with pytest.raises(GatewayError, match="typing"):
        await connector.send(SetTyping(conversation=conv))
    second = make()
    await second.open(start())
    await emulator.end_session(second.conversation_id.removeprefix("wonderful:"))
    with pytest.raises(RequestError) as caught:  # the platform's refusal, over REST
        await second.send(Send(conversation=second.conversation_id, content=Image(url="u")))
    assert caught.value.details["vendor_code"] == "SESSION_ENDED"
    await emulator.end_session(conv.removeprefix("wonderful:"))
    await collect(connector).finished()
    with pytest.raises(RequestError) as caught:  # the connector knows it has ended
        await connector.send(Send(conversation=conv, content=Text("anyone?")))
    assert caught.value.code == "SESSION_ENDED"


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (400, {"error": {"code": "MISSING_PARTICIPANT"}}, RequestError, "MISSING_PARTICIPANT"),
        (
            400,
            {"error": {"code": "INVALID_REQUEST", "message": "m"}},
            RequestError,
            "INVALID_REQUEST",
        ),
        (404, {"error": {"code": "SESSION_NOT_FOUND"}}, SessionNotFound, "SESSION_NOT_FOUND"),
        (404, "not json", SessionNotFound, "SESSION_NOT_FOUND"),
        (409, {"error": {"code": "SESSION_ENDED"}}, RequestError, "SESSION_ENDED"),
        (401, {"error": {"code": "UNAUTHORIZED"}}, VendorError, "VENDOR_ERROR"),
        (429, {}, VendorError, "VENDOR_ERROR"),
        (503, {"error": {"code": "PII_MASKING_ENABLED"}}, VendorError, "VENDOR_ERROR"),
    ],
)
def test_platform_error_mapping(status: int, body: Any, kind: type, code: str) -> None:
    import json

    error = platform_error(status, json.dumps(body).encode())
    assert type(error) is kind
    assert error.code == code


async def test_a_batch_counts_in_the_snapshot_once_the_caller_took_it(
    emulator: Emulator, make: Make
) -> None:
    connector = make()
    opened = await connector.open(start(agent_id="a"))
    sid = connector.conversation_id.removeprefix("wonderful:")
    taken = connector.snapshot()["position"]
    assert taken == len(texts(list(opened)))
    batches = connector.inbound()
    assert isinstance(batches, AsyncGenerator)
    try:
        await emulator.agent_says(sid, "held")
        while "held" not in texts(list(await anext(batches))):
            pass
        # the caller holds "held" (maybe still publishing it): a snapshot now must not skip it
        assert connector.snapshot()["position"] < len(emulator.sessions[sid].messages)
        await emulator.agent_says(sid, "next")
        while "next" not in texts(list(await anext(batches))):
            pass
        assert connector.snapshot()["position"] == len(emulator.sessions[sid].messages) - 1
    finally:
        await batches.aclose()
