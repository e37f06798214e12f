"""The genesys connector against the emulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestServer

from adapters.genesys.connector import GenesysConnector
from adapters.genesys.emulator import Emulator
from gateway.adapter import Connector, DialectSettings
from gateway.codec import derived_id
from gateway.errors import RequestError, SessionNotFound, Unsupported, VendorError
from gateway.model import (
    End,
    Ended,
    Error,
    Forward,
    Link,
    MarkRead,
    Message,
    Participant,
    ParticipantLeft,
    Send,
    SetTyping,
    Start,
    Status,
    Text,
    Typing,
    Url,
)
from gateway.vendor_http import VendorHttp
from tests.adapters.genesys.conftest import START, texts
from tests.support import Inbound


def chat_of(connector: Connector) -> str:
    return connector.conversation_id.split(":", 1)[1]


# --- start, messages, echo ------------------------------------------------------------------


async def test_start_requests_a_chat_and_the_agent_joins(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, inbox = session
    chat = chat_of(connector)
    assert connector.conversation_id == f"genesys:{chat}"
    (request,) = [r for r in emulator.received if r.op == "requestChat"]
    assert request.form == {"nickname": "Bob", "subject": "Refund"}  # a form (else a 415)
    joined = inbox.of_type("participant_joined")
    assert [(e.id, e.participant.role) for e in joined] == [
        (f"genesys:{chat}/1", "user"),
        (f"genesys:{chat}/2", "agent"),
    ]
    state = connector.snapshot()
    assert state["chat_id"] == chat
    assert state["position"] == 3
    assert {"user_id", "secure_key", "alias", "claimed"} <= state.keys()


async def test_status_goes_from_queued_to_active_when_the_agent_joins(
    session: tuple[Connector, Inbound], emulator: Emulator, make: Callable[..., Connector]
) -> None:
    connector, inbox = session
    kinds = [(e.__struct_config__.tag, getattr(e, "status", None)) for e in inbox.events]
    assert kinds[:4] == [
        ("status", "queued"),
        ("participant_joined", None),  # the client
        ("participant_joined", None),  # the agent, then:
        ("status", "active"),
    ]
    (active,) = [e for e in inbox.events if isinstance(e, Status) and e.status == "active"]
    assert active.id == derived_id(connector.conversation_id, "status", "active")
    assert connector.snapshot()["active"] is True
    # a second agent, or a takeover re-fetching the join, does not say it again
    chat = chat_of(connector)
    emulator.sessions[chat].transcript.append(
        {
            "type": "ParticipantJoined",
            "index": 99,
            "utcTime": 1432845095000,
            "from": {"nickname": "Sam", "participantId": "AGENT0002", "type": "Agent"},
        }
    )
    await inbox.until(lambda ev: any(e.id.endswith("/99") for e in ev))
    state = {**connector.snapshot(), "position": 1}
    fetched = await make().resume(state)
    assert not [e for e in fetched if isinstance(e, Status)]
    fresh = await make().resume({**state, "active": False})  # an older snapshot
    assert [e.id for e in fresh if isinstance(e, Status)] == [active.id]  # the hub dedups it


async def test_send_returns_the_id_its_echo_carries(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, inbox = session
    chat = chat_of(connector)
    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Text(text="hello"))
    )
    assert isinstance(sent, Message)
    assert sent.sender.role == "user"
    assert sent.id == f"genesys:{chat}/3"
    assert emulator.ops(chat, "send")[0]["message"] == "hello"
    events = await inbox.until(lambda ev: "echo: hello" in texts(ev))
    echoes = [e for e in events if isinstance(e, Message) and e.content == Text(text="hello")]
    assert [e.id for e in echoes] == [sent.id]
    assert echoes[0] == sent  # identical, so the hub's dedup is exact
    after = events[events.index(echoes[0]) :]
    assert [type(e).__name__ for e in after] == ["Message", "Typing", "Message"]


@pytest.mark.parametrize("returns_transcript", [True, False])
async def test_two_identical_texts_get_two_ids(
    make: Callable[..., Connector],
    emulator: Emulator,
    inbounds: list[Inbound],
    returns_transcript: bool,
) -> None:
    emulator.send_returns_transcript = returns_transcript
    connector = make()
    await connector.open(START)
    conv = connector.conversation_id
    first = await connector.send(Send(conversation=conv, content=Text(text="same")))
    second = await connector.send(Send(conversation=conv, content=Text(text="same")))
    assert first[0].id != second[0].id
    inbox = Inbound(connector)
    inbounds.append(inbox)
    events = await inbox.until(lambda ev: texts(ev).count("echo: same") == 2)
    assert sorted(
        {e.id for e in events if isinstance(e, Message) and e.sender.role == "user"}
    ) == sorted([first[0].id, second[0].id])


async def test_agent_messages_arrive_in_order(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, inbox = session
    for i in range(6):
        await emulator.agent_says(chat_of(connector), f"m{i}")
    events = await inbox.until(lambda ev: "m5" in texts(ev))
    assert texts(events, "agent") == [f"m{i}" for i in range(6)]


async def test_url_message(session: tuple[Connector, Inbound], emulator: Emulator) -> None:
    connector, inbox = session
    url = "https://example.com/order/1"
    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Url(url=url))
    )
    assert isinstance(sent, Message)
    assert sent.content == Url(url=url)
    assert emulator.ops(chat_of(connector), "send")[0]["messageType"] == "url"
    await inbox.until(lambda ev: f"echo: {url}" in texts(ev))


# --- typing ---------------------------------------------------------------------------------


async def test_typing_both_ways(session: tuple[Connector, Inbound], emulator: Emulator) -> None:
    connector, inbox = session
    chat, conv = chat_of(connector), connector.conversation_id
    assert await connector.send(SetTyping(conversation=conv, preview="I ne")) == []
    assert await connector.send(SetTyping(conversation=conv, active=False)) == []
    assert emulator.ops(chat, "startTyping")[0]["message"] == "I ne"
    assert len(emulator.ops(chat, "stopTyping")) == 1
    await emulator.agent_typing(chat)
    events = await inbox.until(lambda ev: sum(isinstance(e, Typing) for e in ev) == 3)
    typing = [(e.sender.role, e.active, e.preview) for e in events if isinstance(e, Typing)]
    assert typing == [("user", True, "I ne"), ("user", False, None), ("agent", True, None)]


async def test_read_and_forward_are_unsupported(session: tuple[Connector, Inbound]) -> None:
    connector, _ = session
    with pytest.raises(Unsupported):
        await connector.send(MarkRead(conversation=connector.conversation_id))
    with pytest.raises(Unsupported):
        await connector.send(Forward(conversation=connector.conversation_id, destination="x"))


# --- the end --------------------------------------------------------------------------------


async def test_user_ends_the_session(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, inbox = session
    (ended,) = await connector.send(End(conversation=connector.conversation_id))
    assert isinstance(ended, Ended)
    assert (ended.reason, ended.by) == ("user", "user")
    assert len(emulator.ops(chat_of(connector), "disconnect")) == 1
    await inbox.finished()
    events = inbox.events
    assert events[-1].id == ended.id
    assert isinstance(events[-2], ParticipantLeft)
    assert events[-2].participant.role == "user"
    with pytest.raises(RequestError) as info:
        await connector.send(
            Send(conversation=connector.conversation_id, content=Text(text="late"))
        )
    assert (info.value.code, info.value.details["vendor_code"]) == ("SESSION_ENDED", 50)


@pytest.mark.parametrize("how", ["bye", "end_session"])
async def test_agent_ends_the_session(
    session: tuple[Connector, Inbound], emulator: Emulator, how: str
) -> None:
    connector, inbox = session
    if how == "bye":
        await connector.send(Send(conversation=connector.conversation_id, content=Text(text="bye")))
    else:
        await emulator.end_session(chat_of(connector))
    await inbox.finished()
    events = inbox.events
    assert isinstance(events[-1], Ended)
    assert (events[-1].reason, events[-1].by) == ("agent", "agent")
    assert isinstance(events[-2], ParticipantLeft)
    assert events[-2].participant.role == "agent"


async def test_close_releases_without_ending(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, inbox = session
    await connector.close()
    await inbox.finished()
    assert emulator.ops(chat_of(connector), "disconnect") == []
    assert not emulator.sessions[chat_of(connector)].ended


# --- reconnects, retries, alias, resume -----------------------------------------------------


async def test_dropped_polls_give_link_events_and_lose_nothing(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, inbox = session
    chat = chat_of(connector)
    emulator.drop_connections(2)
    await emulator.agent_says(chat, "during the outage")
    events = await inbox.until(lambda ev: "during the outage" in texts(ev))
    links = [(e.state, e.attempt, e.will_retry) for e in events if isinstance(e, Link)]
    assert links == [
        ("down", None, True),
        ("retrying", 1, None),
        ("retrying", 2, None),
        ("restored", 2, None),
    ]
    restored = inbox.of_type("link")[-1]
    assert restored.missed == 1
    assert events.index(restored) == len(events) - 2  # restored, then what it fetched
    assert inbox.of_type("link")[1].max_attempts == 4
    assert len({e.id for e in events}) == len(events)


async def test_status_code_1_is_retried(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, inbox = session
    emulator.fail_next(1, status_code=1, code=100)
    await emulator.agent_says(chat_of(connector), "after retry")
    events = await inbox.until(lambda ev: "after retry" in texts(ev))
    assert [e.state for e in events if isinstance(e, Link)] == ["down", "retrying", "restored"]


async def test_gives_up_after_max_attempts(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    _, inbox = session
    emulator.drop_connections(100)
    await inbox.finished()
    events = inbox.events
    last = events[-1]
    assert isinstance(last, Link)
    assert (last.state, last.will_retry) == ("down", False)
    assert [e.attempt for e in inbox.of_type("link") if e.state == "retrying"] == [1, 2, 3, 4]


async def test_alias_changes_are_followed(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, inbox = session
    chat = chat_of(connector)
    new_alias = emulator.move_session(chat)
    async with asyncio.timeout(5):
        await emulator.wait_until(lambda: connector.snapshot()["alias"] == new_alias)
    await emulator.agent_says(chat, "from the new node")
    await inbox.until(lambda ev: "from the new node" in texts(ev))
    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Text(text="ok"))
    )
    assert emulator.ops(chat, "send")[-1]["alias"] == new_alias
    assert isinstance(sent, Message)
    assert not inbox.of_type("error")


async def test_a_retried_command_takes_the_latest_alias(
    make: Callable[..., Connector], emulator: Emulator
) -> None:
    """GMS moves the chat and refuses a send with statusCode 1 ("retry"), its reply naming the
    new `alias`: the retry goes with that alias (the old one is honoured for one request only,
    so a retry with it would be refused)."""
    connector = make()
    await connector.open(START)  # no inbound: no poll picks the new alias up first
    chat = chat_of(connector)
    old = connector.snapshot()["alias"]
    new = emulator.move_session(chat)
    emulator.fail_next(1, status_code=1)
    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Text(text="moved"))
    )
    assert [f["alias"] for f in emulator.ops(chat, "send")] == [old, new]
    assert isinstance(sent, Message)


async def test_resume_from_a_snapshot_continues_without_loss(
    make: Callable[..., Connector], emulator: Emulator, inbounds: list[Inbound]
) -> None:
    first = make()
    await first.open(START)
    chat = chat_of(first)
    inbox = Inbound(first)
    inbounds.append(inbox)
    await emulator.agent_says(chat, "before")
    await inbox.until(lambda ev: "before" in texts(ev))
    state = first.snapshot()
    await first.close()
    await inbox.finished()
    await emulator.agent_says(chat, "while nobody polls")

    second = make()
    fetched = await second.resume(state)
    assert second.conversation_id == first.conversation_id
    assert texts(list(fetched)) == ["while nobody polls"]
    inbox2 = Inbound(second)
    inbounds.append(inbox2)
    await emulator.agent_says(chat, "after")
    events = await inbox2.until(lambda ev: "after" in texts(ev))
    seen = inbox.events + list(fetched) + events
    assert texts(seen, "agent") == ["before", "while nobody polls", "after"]
    (sent,) = await second.send(Send(conversation=second.conversation_id, content=Text(text="hi")))
    await inbox2.until(lambda ev: any(e.id == sent.id for e in ev))


# --- errors ---------------------------------------------------------------------------------


async def test_resume_of_an_unknown_chat(make: Callable[..., Connector]) -> None:
    connector = make()
    state = {"chat_id": "NOPE", "user_id": "u", "secure_key": "k", "alias": "117", "position": 1}
    with pytest.raises(SessionNotFound) as info:
        await connector.resume(state)
    assert info.value.details["vendor_code"] == 50
    with pytest.raises(SessionNotFound):
        await make().resume({})


async def test_a_vanished_chat_ends_the_inbound(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, inbox = session
    del emulator.sessions[chat_of(connector)]
    await inbox.finished()
    events = inbox.events
    error, ended = events[-2:]
    assert isinstance(error, Error)
    assert (error.code, error.metadata) == ("SESSION_NOT_FOUND", {"vendor_code": 50})
    assert isinstance(ended, Ended)
    assert ended.reason == "error"


@pytest.mark.parametrize("status_code", [2, 1])
async def test_a_chat_gms_ends_by_error_ends_by_error(
    session: tuple[Connector, Inbound], emulator: Emulator, status_code: int
) -> None:
    """A poll answered statusCode 2 with `chatEnded: true` (DIALECTS.md: unrecoverable, the chat
    ended by error) publishes the error, then `ended` reason `error`, and the inbound ends; a
    statusCode 1 ("retry") that says the chat ended is not retried either."""
    connector, inbox = session
    emulator.fail_session(chat_of(connector), code=100, status_code=status_code)
    await inbox.finished()
    assert not inbox.of_type("link")  # no retry
    error, ended = inbox.events[-2:]
    assert isinstance(error, Error)
    assert (error.code, error.metadata) == ("VENDOR_ERROR", {"vendor_code": 100})
    assert not error.recoverable  # code 100 is, but not when the chat ended
    assert isinstance(ended, Ended)
    assert (ended.reason, ended.by) == ("error", "system")
    assert ended.id == derived_id(connector.conversation_id, "ended")


async def test_a_bad_entry_of_a_poll_is_an_error_and_its_neighbours_live(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    """A platform's poll cannot be re-sent: a bad entry becomes an `error` event naming it, the
    entries around it are published, and the cursor moves past it (reported once)."""
    connector, inbox = session
    chat = chat_of(connector)
    transcript = emulator.sessions[chat].transcript
    bad = {"type": "Message", "index": len(transcript) + 1, "utcTime": 1432845095000}
    transcript.append({**bad, "text": None, "from": {"type": "Agent", "participantId": 2}})
    await emulator.agent_says(chat, "after the bad one")
    events = await inbox.until(lambda ev: "after the bad one" in texts(ev))
    (error,) = [e for e in events if isinstance(e, Error)]
    assert (error.code, error.metadata["path"]) == ("INVALID_FRAME", "$.text")
    await emulator.agent_says(chat, "later")
    events = await inbox.until(lambda ev: "later" in texts(ev))
    assert len([e for e in events if isinstance(e, Error)]) == 1


async def test_command_errors_are_mapped(
    session: tuple[Connector, Inbound], emulator: Emulator
) -> None:
    connector, _ = session
    conv = connector.conversation_id
    emulator.fail_next(1, status_code=2, code=52)
    with pytest.raises(VendorError) as info:
        await connector.send(Send(conversation=conv, content=Text(text="x")))
    assert info.value.details["vendor_code"] == 52
    emulator.fail_next(1, status_code=2, code=3)
    with pytest.raises(RequestError):
        await connector.send(SetTyping(conversation=conv))
    emulator.fail_next(2, status_code=1, code=100)  # retried, then accepted
    (sent,) = await connector.send(Send(conversation=conv, content=Text(text="y")))
    assert isinstance(sent, Message)


async def test_open_errors(
    make: Callable[..., Connector], gms: TestServer, vendor_http: VendorHttp
) -> None:
    with pytest.raises(RequestError):
        await make().open(Start(dialect="genesys", participant=Participant(from_="")))
    wrong = DialectSettings(url=str(gms.make_url("/genesys/2/chat/elsewhere")))
    with pytest.raises(RequestError) as info:
        await GenesysConnector(wrong, vendor_http).open(START)
    assert info.value.details["vendor_code"] == 3


async def test_api_key(make: Callable[..., Connector], emulator: Emulator) -> None:
    emulator.api_key = "s3cret"
    with pytest.raises(VendorError) as info:
        await make().open(START)
    assert info.value.details["vendor_code"] == 401
    connector = make(apikey="s3cret")
    assert isinstance((await connector.open(START))[0], Status)


async def test_unreachable_platform(vendor_http: VendorHttp) -> None:
    settings = DialectSettings(
        url="http://127.0.0.1:9/genesys/2/chat/x", options={"max_attempts": "1"}
    )
    with pytest.raises(VendorError):
        await GenesysConnector(settings, vendor_http).open(START)


def test_settings_are_checked(vendor_http: VendorHttp) -> None:
    with pytest.raises(RequestError):
        GenesysConnector(DialectSettings(), vendor_http)
    with pytest.raises(RequestError):
        GenesysConnector(
            DialectSettings(url="http://x", options={"poll_interval_s": "soon"}), vendor_http
        )
