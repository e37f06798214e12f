"""The connector against the platform emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.server_events.connector import ServerEventsConnector
from gateway.errors import NotFound, RequestError, SessionNotFound, VendorError
from gateway.model import (
    Availability,
    End,
    Ended,
    Error,
    Image,
    Link,
    MarkRead,
    Message,
    Participant,
    ParticipantJoined,
    Party,
    Receipt,
    Send,
    SetTyping,
    Start,
    Status,
    Text,
    Typing,
)
from gateway.vendor_http import VendorHttp
from tests.adapters.server_events.conftest import TENANT
from tests.support import Inbound

START = Start(dialect="server_events", participant=Participant(from_="Ann", name="Ann"))
Connect = Callable[..., ServerEventsConnector]


def links_of(inbound: Inbound) -> list[Link]:
    return [e for e in inbound.events if isinstance(e, Link)]


def texts(events: list[Any]) -> list[str]:
    return [
        e.content.text for e in events if isinstance(e, Message) and isinstance(e.content, Text)
    ]


async def started(
    connect: Connect, collect: Any, **options: str
) -> tuple[ServerEventsConnector, Any]:
    connector = connect(**options)
    await connector.open(START)
    inbound = collect(connector)
    await inbound.until(lambda events: "Hello!" in texts(events))
    return connector, inbound


async def test_open_then_the_agent_joins_and_greets(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector = connect()
    opened = await connector.open(START)
    assert [type(e) for e in opened] == [Availability, Status]
    assert opened[0].online is True
    assert opened[1].status == "queued"
    chat_id = connector.snapshot()["chat_id"]
    assert connector.conversation_id == f"server_events:{chat_id}"
    inbound = collect(connector)
    await inbound.until(lambda events: "Hello!" in texts(events))
    status, joined, greeting = inbound.events[:3]
    assert isinstance(status, Status)
    assert status.status == "active"
    assert isinstance(joined, ParticipantJoined)
    assert joined.participant.name == "Alice"
    assert isinstance(greeting, Message)
    assert greeting.sender == Party(role="agent", id="agent-1")  # the role the join announced
    # every agent message is acknowledged as delivered
    await platform.emulator.until(
        lambda: any(
            e["event"] == "chat_session_message_delivered"
            for e in platform.emulator.received(chat_id)
        )
    )


async def test_the_agent_messages_of_one_poll_are_acknowledged_in_one_request(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector, inbound = await started(connect, collect)
    chat_id = connector.snapshot()["chat_id"]
    emulator = platform.emulator
    path = f"/clientweb/api/v2/chats/{chat_id}/events"

    def delivered() -> list[str]:
        received = emulator.received(chat_id)
        return [e["ref_msg_id"] for e in received if e["event"] == "chat_session_message_delivered"]

    await emulator.until(lambda: len(delivered()) == 1)  # the greeting's
    posts = sum(1 for request in emulator.requests if request == ("POST", path))
    said = [emulator.agent_says(chat_id, text) for text in ("one", "two", "three")]  # one poll
    await inbound.until(lambda events: "three" in texts(events))
    await emulator.until(lambda: len(delivered()) == 4)
    assert delivered()[1:] == said
    assert sum(1 for request in emulator.requests if request == ("POST", path)) == posts + 1


async def test_a_sent_message_is_echoed_under_the_same_id_and_answered(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector, inbound = await started(connect, collect)
    conv = connector.conversation_id
    (sent,) = await connector.send(Send(conversation=conv, content=Text("hi there")))
    assert isinstance(sent, Message)
    assert sent.sender.role == "user"
    await inbound.until(lambda events: "echo: hi there" in texts(events))
    chat_id = connector.snapshot()["chat_id"]
    (received,) = [
        e for e in platform.emulator.received(chat_id) if e["event"] == "chat_session_message"
    ]
    assert sent.id == f"{conv}/{received['msg_id']}"
    mine = [e for e in inbound.events if isinstance(e, Message) and e.sender.role == "user"]
    assert [e.id for e in mine] == [sent.id]  # the echo, once, under the id send returned
    after = inbound.events[inbound.events.index(mine[0]) :]
    kinds = [(type(e).__name__, getattr(e, "active", None)) for e in after]
    assert kinds == [
        ("Message", None),
        ("Receipt", None),
        ("Typing", True),
        ("Typing", False),
        ("Message", None),
    ]
    receipt = after[1]
    assert isinstance(receipt, Receipt)
    assert receipt.message_id == sent.id
    assert receipt.status == "read"
    assert receipt.sender.role == "agent"


async def test_typing_and_read_receipts_reach_the_platform(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector, inbound = await started(connect, collect)
    conv = connector.conversation_id
    greeting = next(e for e in inbound.events if isinstance(e, Message))
    assert await connector.send(SetTyping(conversation=conv, active=True)) == []
    assert await connector.send(SetTyping(conversation=conv, active=False)) == []
    (receipt,) = await connector.send(MarkRead(conversation=conv, up_to=greeting.id))
    assert isinstance(receipt, Receipt)
    assert receipt.message_id == greeting.id
    (implicit,) = await connector.send(MarkRead(conversation=conv))  # the last agent message
    assert implicit.id == receipt.id
    chat_id = connector.snapshot()["chat_id"]
    sent = [e["event"] for e in platform.emulator.received(chat_id)]
    assert sent[-4:] == [
        "chat_session_typing",
        "chat_session_not_typing",
        "chat_session_message_read",
        "chat_session_message_read",
    ]
    native_id = greeting.id.rpartition("/")[2]
    assert platform.emulator.received(chat_id)[-1]["ref_msg_id"] == native_id


async def test_user_end_finishes_inbound_with_ended_by_user(connect: Connect, collect: Any) -> None:
    connector, inbound = await started(connect, collect)
    assert await connector.send(End(conversation=connector.conversation_id)) == []
    await inbound.finished()  # inbound() finishes after the Ended event
    ended = inbound.events[-1]
    assert isinstance(ended, Ended)
    assert (ended.reason, ended.by) == ("user", "user")
    assert connector.snapshot()["ended"] is True


async def test_bye_makes_the_agent_end_the_session(connect: Connect, collect: Any) -> None:
    connector, inbound = await started(connect, collect)
    await connector.send(Send(conversation=connector.conversation_id, content=Text("bye")))
    await inbound.finished()
    assert texts(inbound.events)[-1] == "Goodbye!"
    ended = inbound.events[-1]
    assert isinstance(ended, Ended)
    assert ended.reason == "completed"


async def test_platform_end_session(connect: Connect, collect: Any, platform: Any) -> None:
    connector, inbound = await started(connect, collect)
    platform.emulator.end_session(connector.snapshot()["chat_id"])
    await inbound.finished()
    assert isinstance(inbound.events[-1], Ended)
    late = Send(conversation=connector.conversation_id, content=Text("late"))
    with pytest.raises(RequestError) as ended:  # it knows: the platform is not asked
        await connector.send(late)
    assert ended.value.code == "SESSION_ENDED"
    resumed = connect()  # another replica resuming it learns the end from the history
    await resumed.resume(connector.snapshot())
    with pytest.raises(RequestError) as again:
        await resumed.send(late)
    assert again.value.code == "SESSION_ENDED"


async def test_agent_messages_arrive_in_order(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector, inbound = await started(connect, collect)
    chat_id = connector.snapshot()["chat_id"]
    for i in range(20):
        platform.emulator.agent_says(chat_id, f"m{i}")
    await inbound.until(lambda events: "m19" in texts(events))
    assert texts(inbound.events)[1:] == [f"m{i}" for i in range(20)]


async def test_forced_reconnect_reports_link_events_and_loses_nothing(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector, inbound = await started(connect, collect)
    chat_id = connector.snapshot()["chat_id"]
    await platform.emulator.until(
        lambda: platform.emulator.chats[chat_id].polls == 1
    )  # a poll is held
    platform.emulator.drop_connections(fail_next=2)
    platform.emulator.agent_says(chat_id, "said while the link was down")
    await inbound.until(
        lambda events: any(isinstance(e, Link) and e.state == "restored" for e in events)
    )
    links = links_of(inbound)
    assert [(e.state, e.attempt) for e in links] == [
        ("down", None),
        ("retrying", 1),
        ("retrying", 2),
        ("retrying", 3),
        ("restored", None),
    ]
    assert links[-1].missed == 1
    assert links[1].max_attempts == 5
    restored_at = inbound.events.index(links[-1])
    assert texts(inbound.events[restored_at:]) == ["said while the link was down"]
    platform.emulator.agent_says(chat_id, "after")
    await inbound.until(lambda events: "after" in texts(events))
    assert texts(inbound.events) == ["Hello!", "said while the link was down", "after"]
    ids = [e.id for e in inbound.events]
    assert len(ids) == len(set(ids))


async def test_giving_up_ends_the_session(connect: Connect, collect: Any, platform: Any) -> None:
    connector, inbound = await started(connect, collect, max_attempts="2")
    await platform.emulator.until(
        lambda: platform.emulator.chats[connector.snapshot()["chat_id"]].polls == 1
    )
    platform.emulator.drop_connections(fail_next=100)
    await inbound.finished()
    links = links_of(inbound)
    assert [(e.state, e.will_retry) for e in links][-1] == ("down", False)
    assert isinstance(inbound.events[-1], Ended)
    assert inbound.events[-1].reason == "error"


async def test_resume_from_a_snapshot_continues_without_loss(
    connect: Connect, collect: Any, platform: Any
) -> None:
    first, inbound = await started(connect, collect)
    chat_id = first.snapshot()["chat_id"]
    snapshot = first.snapshot()
    await first.close()  # this replica goes away; the chat stays open
    await inbound.finished()
    platform.emulator.agent_says(chat_id, "while nobody polled")
    second = connect()
    fetched = await second.resume(snapshot)
    assert second.conversation_id == first.conversation_id
    assert "while nobody polled" in texts(list(fetched))
    assert {e.id for e in inbound.events} <= {e.id for e in fetched}  # the hub dedups these
    resumed = collect(second)
    (sent,) = await second.send(Send(conversation=second.conversation_id, content=Text("again")))
    await resumed.until(lambda events: "echo: again" in texts(events))
    assert "while nobody polled" not in texts(resumed.events)  # already returned by resume
    assert [e.id for e in resumed.events if isinstance(e, Message) and e.sender.role == "user"] == [
        sent.id
    ]
    agent = next(e for e in resumed.events if isinstance(e, Message) and e.sender.role != "user")
    assert agent.sender == Party(role="agent", id="agent-1")  # roles survive the takeover
    assert second.snapshot()["roles"] == {"agent-1": "agent"}


async def test_close_stops_a_held_poll(connect: Connect, collect: Any, platform: Any) -> None:
    connector, inbound = await started(connect, collect)
    await platform.emulator.until(
        lambda: platform.emulator.chats[connector.snapshot()["chat_id"]].polls == 1
    )
    await connector.close()
    await inbound.finished()  # inbound() returns: no error, no cancellation
    assert not inbound.task.cancelled()
    assert inbound.task.exception() is None


async def test_a_cancel_of_the_polling_task_is_not_taken_for_close(
    connect: Connect, collect: Any, platform: Any
) -> None:
    """The sessions layer cancels the task iterating `inbound()` and closes the connector: the
    poll runs in that task, and the outer cancel still ends it cancelled, close() or not."""
    connector, inbound = await started(connect, collect)
    await platform.emulator.until(
        lambda: platform.emulator.chats[connector.snapshot()["chat_id"]].polls == 1
    )
    inbound.task.cancel()
    await connector.close()  # before the task ran again: its poll is cut twice
    with pytest.raises(asyncio.CancelledError):
        await inbound.task
    assert inbound.task.cancelled()


async def test_inbound_refuses_a_second_iteration(connect: Connect, collect: Any) -> None:
    connector, _ = await started(connect, collect)
    with pytest.raises(RuntimeError):
        await anext(aiter(connector.inbound()))


async def test_a_chat_the_platform_forgot_ends(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector, inbound = await started(connect, collect)
    del platform.emulator.chats[connector.snapshot()["chat_id"]]
    platform.emulator.drop_connections()  # the held poll fails; the next one finds no chat
    await inbound.finished()
    assert isinstance(inbound.events[-1], Ended)
    assert inbound.events[-1].reason == "error"


async def test_file_upload_then_send(
    connect: Connect, collect: Any, platform: Any, http: aiohttp.ClientSession
) -> None:
    connector, inbound = await started(connect, collect)
    file_id = await connector.upload(b"\x89PNG...", "cat.png", "image/png")
    content = Image(file_id=file_id, file_name="cat.png")
    (sent,) = await connector.send(Send(conversation=connector.conversation_id, content=content))
    await inbound.until(lambda events: any(e.id == sent.id for e in events))
    echo = next(e for e in inbound.events if e.id == sent.id)
    assert isinstance(echo, Message)
    assert isinstance(echo.content, Image)
    assert echo.content.url == connector.file_url(file_id)
    auth = {"Authorization": 'MOBILE-API-140-327-PLAIN appId="test-app", clientId="x"'}
    async with http.get(echo.content.url, headers=auth) as response:
        assert response.status == 200
        assert await response.read() == b"\x89PNG..."


async def test_a_file_the_platform_does_not_have(connect: Connect, collect: Any) -> None:
    connector, _ = await started(connect, collect)
    content = Image(file_id="nope")
    with pytest.raises(NotFound) as info:
        await connector.send(Send(conversation=connector.conversation_id, content=content))
    assert info.value.details["vendor_code"] == "5502"


@pytest.mark.parametrize(
    ("options", "code", "vendor_code"),
    [
        ({"app_id": "wrong"}, "VENDOR_AUTH", "3000"),
        ({"tenant_url": "other"}, "VENDOR_AUTH", "1000"),
    ],
)
async def test_platform_refusals_map_to_gateway_errors(
    connect: Connect, options: dict[str, str], code: str, vendor_code: str
) -> None:
    with pytest.raises(VendorError) as info:
        await connect(**options).open(START)
    assert info.value.code == code
    assert info.value.details["vendor_code"] == vendor_code


async def test_resume_of_an_unknown_chat(connect: Connect) -> None:
    with pytest.raises(SessionNotFound):
        await connect().resume({"chat_id": "no-such-chat"})
    with pytest.raises(RequestError):
        await connect().resume({})


async def test_unreachable_platform(vendor_http: VendorHttp) -> None:
    from adapters.server_events import ServerEventsAdapter
    from gateway.adapter import DialectSettings

    settings = DialectSettings(url="http://127.0.0.1:9/clientweb/api/v1", options={"app_id": "a"})
    with pytest.raises(VendorError) as info:
        await ServerEventsAdapter().connector(settings, vendor_http).open(START)
    assert info.value.code == "VENDOR_UNAVAILABLE"


async def test_typing_event_roles(connect: Connect, collect: Any) -> None:
    connector, inbound = await started(connect, collect)
    await connector.send(Send(conversation=connector.conversation_id, content=Text("x")))
    await inbound.until(lambda events: "echo: x" in texts(events))
    assert {e.sender.role for e in inbound.events if isinstance(e, Typing)} == {"agent"}


async def test_a_malformed_batch_is_reported_and_the_session_goes_on(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector, inbound = await started(connect, collect)
    chat_id = connector.snapshot()["chat_id"]
    platform.emulator.push(chat_id, "chat_session_message", msg_id="bad", msg=42)
    await inbound.until(lambda events: any(isinstance(e, Error) for e in events))
    platform.emulator.agent_says(chat_id, "still here")
    await inbound.until(lambda events: "still here" in texts(events))
    (error,) = [e for e in inbound.events if isinstance(e, Error)]
    assert error.code == "INVALID_FRAME"
    assert error.recoverable is False  # that frame will not come again


async def test_a_failed_session_ends(connect: Connect, collect: Any, platform: Any) -> None:
    connector, inbound = await started(connect, collect)
    platform.emulator.push(connector.snapshot()["chat_id"], "chat_session_status", state="failed")
    await inbound.finished()
    status, ended = inbound.events[-2:]
    assert isinstance(status, Status)
    assert status.status == "failed"
    assert isinstance(ended, Ended)
    assert ended.reason == "error"


async def test_bad_options_are_request_errors(connect: Connect) -> None:
    with pytest.raises(RequestError) as info:
        connect(backoff_s="soon")
    assert info.value.details == {"parameter": "backoff_s"}
    with pytest.raises(RequestError) as info:
        connect(max_upload="a lot")
    assert info.value.details == {"parameter": "max_upload"}


async def test_a_file_sent_by_url_is_fetched_and_uploaded(
    connect: Connect, collect: Any, platform: Any, aiohttp_server: Any
) -> None:
    async def png(_: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG-by-url", content_type="image/png")

    files = web.Application()
    files.router.add_get("/pics/dog.png", png)
    source = await aiohttp_server(files)
    connector, inbound = await started(connect, collect)
    content = Image(url=str(source.make_url("/pics/dog.png")))
    (sent,) = await connector.send(Send(conversation=connector.conversation_id, content=content))
    await inbound.until(lambda events: any(e.id == sent.id for e in events))
    (file_id, (data, name, mime)), *_ = platform.emulator.files.items()
    assert (data, name, mime) == (b"\x89PNG-by-url", "dog.png", "image/png")
    echo = next(e for e in inbound.events if e.id == sent.id)
    assert isinstance(echo.content, Image)
    assert echo.content.file_id == file_id
    missing = Image(url=str(source.make_url("/pics/none.png")))
    with pytest.raises(RequestError):
        await connector.send(Send(conversation=connector.conversation_id, content=missing))


async def test_requests_use_v2_with_a_fresh_nonce_on_every_poll(
    connect: Connect, collect: Any, platform: Any
) -> None:
    """The mobile SDKs' wire: `/clientweb/api/v2/...?tenantUrl=<t>&nonce=<epoch ms>` (Android
    `network/URLProvider.kt`), so no proxy answers a poll from its cache."""
    connector, inbound = await started(connect, collect)
    chat_id = connector.snapshot()["chat_id"]
    platform.emulator.agent_says(chat_id, "one more")
    await inbound.until(lambda events: "one more" in texts(events))
    emulator = platform.emulator
    polls = [
        query
        for (method, path), query in zip(emulator.requests, emulator.queries, strict=True)
        if (method, path) == ("GET", f"/clientweb/api/v2/chats/{chat_id}/events")
    ]
    assert len(polls) >= 2
    assert all(q["tenantUrl"] == TENANT for q in polls)
    nonces = [int(q["nonce"]) for q in polls]
    assert nonces == sorted(nonces)  # the current epoch milliseconds, poll after poll
    assert abs(nonces[-1] - time.time() * 1000) < 60_000
    assert all(path.startswith("/clientweb/api/v2/") for _, path in emulator.requests)


@pytest.mark.parametrize(
    ("url", "api", "files"),
    [
        (
            "https://h.example",
            "https://h.example/clientweb/api/v2/",
            "https://h.example/clientweb/file/",
        ),
        (
            "https://h.example/",
            "https://h.example/clientweb/api/v2/",
            "https://h.example/clientweb/file/",
        ),
        (
            "https://h.example/clientweb/api",
            "https://h.example/clientweb/api/v2/",
            "https://h.example/clientweb/file/",
        ),
        (
            "https://h.example/clientweb/api/v1",
            "https://h.example/clientweb/api/v1/",
            "https://h.example/clientweb/file/",
        ),
    ],
)
def test_the_api_base(url: str, api: str, files: str) -> None:
    from adapters.server_events.connector import _api_base

    assert _api_base(url) == (api, files)


async def test_the_upload_part_name_is_an_option(connect: Connect, platform: Any) -> None:
    connector = connect(upload_field="attachment")
    await connector.open(START)
    with pytest.raises(VendorError) as refused:  # the emulator wants Android's name
        await connector.upload(b"abc", "a.txt", "text/plain")
    assert refused.value.details["vendor_code"] == "5003"
    platform.emulator.upload_field = "attachment"
    file_id = await connector.upload(b"abc", "a.txt", "text/plain")
    assert platform.emulator.files[file_id][0] == b"abc"


async def test_a_bad_frame_does_not_take_its_poll_batch_down(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector, inbound = await started(connect, collect)
    chat_id = connector.snapshot()["chat_id"]
    chats = platform.emulator.chats[chat_id]
    await platform.emulator.until(lambda: chats.polls == 1)
    # pushed in one go: one poll answers all three
    platform.emulator.push(chat_id, "chat_session_location", latitude="north", longitude="1")
    platform.emulator.push(
        chat_id, "chat_session_location", msg_id="l1", latitude="52.52", longitude="13.405"
    )
    platform.emulator.agent_says(chat_id, "after the bad one")
    await inbound.until(lambda events: "after the bad one" in texts(events))
    (located,) = [e for e in inbound.events if isinstance(e, Message) and e.id.endswith("/l1")]
    assert (located.content.latitude, located.content.longitude) == (52.52, 13.405)  # type: ignore[union-attr]
    await inbound.until(lambda events: any(isinstance(e, Error) for e in events))
    (error,) = [e for e in inbound.events if isinstance(e, Error)]
    assert error.code == "INVALID_FRAME"
    assert "$.latitude" in error.message


async def test_a_scenario_party_stays_a_bot_in_later_polls_and_after_a_takeover(
    connect: Connect, collect: Any, platform: Any
) -> None:
    connector, inbound = await started(connect, collect)
    chat_id = connector.snapshot()["chat_id"]
    platform.emulator.push(
        chat_id, "chat_session_party_joined", party_id="sc-1", display_name="Bot", type="scenario"
    )
    await inbound.until(lambda events: sum(isinstance(e, ParticipantJoined) for e in events) == 2)
    platform.emulator.push(
        chat_id, "chat_session_message", party_id="sc-1", msg_id="b1", msg="beep"
    )
    await inbound.until(lambda events: "beep" in texts(events))
    (said,) = [e for e in inbound.events if isinstance(e, Message) and e.id.endswith("/b1")]
    assert said.sender == Party(role="bot", id="sc-1")
    snapshot = connector.snapshot()
    assert snapshot["roles"] == {"agent-1": "agent", "sc-1": "bot"}
    await connector.close()
    platform.emulator.push(chat_id, "chat_session_typing", party_id="sc-1")
    second = connect()
    await second.resume({"chat_id": chat_id, "roles": {"sc-1": "bot"}})
    resumed = collect(second)
    platform.emulator.push(
        chat_id, "chat_session_message", party_id="sc-1", msg_id="b2", msg="boop"
    )
    await resumed.until(lambda events: "boop" in texts(events))
    (again,) = [e for e in resumed.events if isinstance(e, Message) and e.id.endswith("/b2")]
    assert again.sender == Party(role="bot", id="sc-1")


async def test_a_snapshot_of_parties_still_resumes(connect: Connect, collect: Any) -> None:
    """Snapshots written before roles were the conversation's context carried Parties."""
    first, _ = await started(connect, collect)
    chat_id = first.snapshot()["chat_id"]
    second = connect()
    old = {"chat_id": chat_id, "parties": {"agent-1": {"role": "bot", "id": "agent-1"}}}
    await second.resume(old)
    assert second.snapshot()["roles"] == {"agent-1": "agent"}  # history's join announced agent
    with pytest.raises(RequestError):
        await connect().resume({"chat_id": chat_id, "roles": {"x": "wizard"}})
