"""The genesys connector on GMS's CometD notifications (`adapters/genesys/cometd.py`) against the
emulator's CometD endpoint, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.genesys import GenesysAdapter
from adapters.genesys.cometd import endpoints, operation
from adapters.genesys.emulator import Emulator
from gateway.adapter import Connector, DialectSettings, NativeRequest
from gateway.errors import RequestError, VendorError
from gateway.model import End, Ended, Error, Link, Message, Send, Text
from gateway.vendor_http import VendorHttp
from tests.adapters.genesys.conftest import START, opened, texts
from tests.support import Inbound


@pytest.fixture
def cometd(make: Callable[..., Connector]) -> Callable[..., Connector]:
    return lambda **options: make(transport="cometd", **options)


def chat_of(connector: Connector) -> str:
    return connector.conversation_id.split(":", 1)[1]


def ids(events: list[object]) -> list[str]:
    return [e.id for e in events if isinstance(e, Message)]


async def test_start_send_reply_and_end_over_cometd(
    cometd: Callable[..., Connector], emulator: Emulator, inbounds: list[Inbound]
) -> None:
    connector = cometd()
    inbox = await opened(connector, inbounds)
    chat = chat_of(connector)
    (request,) = [r for r in emulator.received if r.op == "requestChat"]
    assert request.form == {"operation": "requestChat", "nickname": "Bob", "subject": "Refund"}
    assert len(emulator.cometd.clients) == 1  # one Bayeux client holds this chat

    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Text(text="hello"))
    )
    assert isinstance(sent, Message)
    assert sent.id == f"genesys:{chat}/3"  # its transcript index, as the notification's copy
    events = await inbox.until(lambda ev: "echo: hello" in texts(ev))
    assert ids(events).count(sent.id) == 1
    assert [r.form for r in emulator.received if r.op == "send"] == [
        {"operation": "sendMessage", "secureKey": emulator.sessions[chat].secure_key}
        | {"message": "hello", "messageType": "text"}
    ]
    assert not [r for r in emulator.received if r.op == "refresh"]  # pushed, never polled

    (end,) = await connector.send(End(conversation=connector.conversation_id))
    assert isinstance(end, Ended)
    await inbox.finished()
    assert any(isinstance(e, Ended) for e in inbox.events)
    assert emulator.sessions[chat].ended
    with pytest.raises(RequestError) as refused:
        await connector.send(Send(conversation=connector.conversation_id, content=Text(text="x")))
    assert refused.value.code == "SESSION_ENDED"
    await connector.close()
    assert not emulator.cometd.clients  # `/meta/disconnect`: GMS forgets the client now


async def test_notifications_on_a_publish_reply_are_not_lost(
    cometd: Callable[..., Connector], emulator: Emulator, inbounds: list[Inbound]
) -> None:
    emulator.cometd.deliver_on_any_reply = True  # the publish's reply carries our own entry
    connector = cometd()
    inbox = await opened(connector, inbounds)
    (sent,) = await connector.send(
        Send(conversation=connector.conversation_id, content=Text(text="hello"))
    )
    events = await inbox.until(lambda ev: "echo: hello" in texts(ev))
    assert ids(events).count(sent.id) == 1
    assert texts(events) == ["hello", "echo: hello"]


async def test_the_agent_ending_it_is_pushed_and_later_commands_refused(
    cometd: Callable[..., Connector], emulator: Emulator, inbounds: list[Inbound]
) -> None:
    connector = cometd()
    inbox = await opened(connector, inbounds)
    await emulator.end_session(chat_of(connector))
    await inbox.finished()
    (ended,) = [e for e in inbox.events if isinstance(e, Ended)]
    assert ended.by == "agent"
    with pytest.raises(RequestError) as refused:
        await connector.send(Send(conversation=connector.conversation_id, content=Text(text="x")))
    assert refused.value.code == "SESSION_ENDED"


async def test_150_chats_over_cometd_all_start_and_every_reply_arrives(
    cometd: Callable[..., Connector], emulator: Emulator, inbounds: list[Inbound]
) -> None:
    emulator.reply_delay = 0.05
    connectors = [cometd() for _ in range(150)]
    inboxes = await asyncio.gather(*(opened(c, inbounds) for c in connectors))
    assert len({c.conversation_id for c in connectors}) == 150
    assert len(emulator.cometd.clients) == 150
    await asyncio.gather(
        *(
            c.send(Send(conversation=c.conversation_id, content=Text(text=f"n{i}")))
            for i, c in enumerate(connectors)
        )
    )
    for i, inbox in enumerate(inboxes):
        await inbox.until(lambda ev, i=i: f"echo: n{i}" in texts(ev, "agent"))


async def test_each_client_sends_its_own_cookies_only(
    cometd: Callable[..., Connector], emulator: Emulator, inbounds: list[Inbound]
) -> None:
    # The endpoint sets a `BAYEUX_BROWSER` cookie at each handshake, as Jetty's CometD does; one
    # cookie sent by two clients would be one browser, allowed one held poll.
    for connector in (cometd(), cometd()):
        await opened(connector, inbounds)
    first, second = emulator.cometd.clients.values()
    assert first.browsers_seen == {first.browser}
    assert second.browsers_seen == {second.browser}


async def test_a_dropped_link_handshakes_again_and_loses_or_repeats_no_line(
    cometd: Callable[..., Connector], emulator: Emulator, inbounds: list[Inbound]
) -> None:
    connector = cometd()
    inbox = await opened(connector, inbounds)
    chat = chat_of(connector)
    await emulator.agent_says(chat, "before")
    await inbox.until(lambda ev: "before" in texts(ev))
    emulator.cometd.drop_links()  # a GMS node restarts: the held connect drops, clients go
    await emulator.agent_says(chat, "during the outage")
    events = await inbox.until(
        lambda ev: any(isinstance(e, Link) and e.state == "restored" for e in ev)
    )
    await inbox.until(lambda ev: "during the outage" in texts(ev))
    await emulator.agent_says(chat, "after it")
    events = await inbox.until(lambda ev: "after it" in texts(ev))
    assert texts(events, "agent") == ["before", "during the outage", "after it"]
    every = [e.id for e in events if not isinstance(e, Link)]
    assert len(every) == len(set(every))  # the replay from `position` repeats nothing
    states = [e.state for e in events if isinstance(e, Link)]
    assert states[0] == "down" and states[-1] == "restored"
    (asked,) = [r.form for r in emulator.received if r.op == "requestNotifications"]
    assert asked["transcriptPosition"] == "4"  # the client, the agent, "before": from 4
    assert len(emulator.cometd.clients) == 1  # the new client; the dropped one is forgotten


async def test_resume_asks_for_the_transcript_from_its_position(
    cometd: Callable[..., Connector], emulator: Emulator, inbounds: list[Inbound]
) -> None:
    first = cometd()
    await (await opened(first, inbounds)).stop()  # the first replica goes away
    chat = chat_of(first)
    await emulator.agent_says(chat, "missed by the first replica")
    state = first.snapshot()
    assert state["position"] == 3
    taken = cometd()
    assert await taken.resume(state) == []  # the notifications come through inbound()
    inbox = Inbound(taken)
    inbounds.append(inbox)
    events = await inbox.until(lambda ev: "missed by the first replica" in texts(ev))
    assert [e.id for e in events if isinstance(e, Message)] == [f"genesys:{chat}/3"]


async def test_a_chat_gms_no_longer_knows_ends_by_error(
    cometd: Callable[..., Connector], emulator: Emulator, inbounds: list[Inbound]
) -> None:
    first = cometd()
    await (await opened(first, inbounds)).stop()
    taken = cometd()
    await taken.resume({**first.snapshot(), "secure_key": "not-a-key"})
    inbox = Inbound(taken)
    inbounds.append(inbox)
    await inbox.finished()
    error, ended = inbox.events
    assert isinstance(error, Error)
    assert (error.code, error.recoverable) == ("SESSION_NOT_FOUND", False)
    assert isinstance(ended, Ended)
    assert ended.reason == "error"


async def test_a_gms_without_cometd_is_refused_at_start_naming_the_fallback(
    aiohttp_server: Callable[..., object], vendor_http: VendorHttp
) -> None:
    app = web.Application()  # a GMS whose chat service has no notification mode: no /cometd
    server: TestServer = await aiohttp_server(app)  # type: ignore[misc]
    url = str(server.make_url("/genesys/2/chat/support"))
    connector = GenesysAdapter().connector(DialectSettings(url=url, options={}), vendor_http)
    with pytest.raises(VendorError, match="GATEWAY_GENESYS_TRANSPORT=polling"):
        await connector.open(START)


def test_the_transport_option_is_checked(vendor_http: VendorHttp) -> None:
    url = "https://gms.example.com/genesys/2/chat/support"
    with pytest.raises(RequestError, match="GATEWAY_GENESYS_TRANSPORT"):
        GenesysAdapter().connector(
            DialectSettings(url=url, options={"transport": "ws"}), vendor_http
        )
    with pytest.raises(RequestError, match="names no GMS chat service"):
        GenesysAdapter().connector(
            DialectSettings(url="https://gms.example.com/chat", options={}), vendor_http
        )


def test_endpoints_and_operations_follow_the_service_url() -> None:
    assert endpoints("https://gms.example.com/mobile/genesys/2/chat/customer-support/") == (
        "https://gms.example.com/mobile/genesys/cometd",
        "/service/chatV2/customer-support",
    )
    start = NativeRequest(form={"nickname": "Bob", "userData[Order]": "7"})
    assert operation(start) == {
        "operation": "requestChat",
        "nickname": "Bob",
        "userData": {"Order": "7"},
    }
    typing = NativeRequest(path="/C1/startTyping", form={"secureKey": "k", "alias": "117"})
    assert operation(typing) == {"operation": "startTyping", "secureKey": "k"}
