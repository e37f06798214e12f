"""Many signalwire sessions of one subscriber on one Relay socket (`adapters/signalwire/link.py`),
against the emulator, which (as the platform) sends a subscriber's socket the events of all its
conversations: real HTTP and WebSockets on loopback."""

from __future__ import annotations

import asyncio

from adapters.signalwire.connector import SignalWireConnector
from adapters.signalwire.emulator import Emulator
from adapters.signalwire.link import RelayLinks
from gateway.errors import VendorError
from gateway.model import Message, Participant, Send, Start, Text
from gateway.vendor_http import VendorHttp
from tests.adapters.signalwire.conftest import Factory
from tests.support import Inbound

SESSIONS = 200
GREETING = "Hi! How can I help?"


def _start(i: int) -> Start:
    return Start(dialect="signalwire", participant=Participant(from_="Ann"), agent_id=f"agent-{i}")


async def _open_many(
    make: Factory, n: int, first: int = 0, **options: str
) -> list[SignalWireConnector]:
    connectors = [make(**options) for _ in range(n)]
    await asyncio.gather(*(c.open(_start(first + i)) for i, c in enumerate(connectors)))
    return connectors


async def test_many_sessions_share_one_socket_and_each_gets_only_its_own(
    make: Factory, emulator: Emulator, vendor_http: VendorHttp
) -> None:
    connectors = await _open_many(make, SESSIONS)
    inbounds = [Inbound(c, timeout=30) for c in connectors]
    # one socket, one signalwire.connect, for all of them
    assert emulator.sockets == 1
    assert len(emulator.connects) == 1
    assert len(RelayLinks.of(vendor_http)) == 1

    sent = await asyncio.gather(
        *(
            c.send(Send(conversation=c.conversation_id, content=Text(f"hello {i}")))
            for i, c in enumerate(connectors)
        )
    )
    for i, (c, (echo,)) in enumerate(zip(connectors, sent, strict=True)):
        assert isinstance(echo, Message)
        assert (echo.conversation_id, echo.content) == (c.conversation_id, Text(f"hello {i}"))
    for i, inbound in enumerate(inbounds):
        await inbound.until(lambda _, i=i, inbound=inbound: f"echo: hello {i}" in inbound.texts())
    for i, (c, inbound) in enumerate(zip(connectors, inbounds, strict=True)):
        # exactly its own conversation's messages, each once, in order
        assert inbound.texts() == [GREETING, f"hello {i}", f"echo: hello {i}"]
        assert {e.conversation_id for e in inbound.events} == {c.conversation_id}
    # every conversation event went out once, on the one socket, and was acknowledged once
    assert emulator.pushed == 3 * SESSIONS
    await emulator.wait_for(lambda: len(emulator.acks) == 3 * SESSIONS)
    assert len(set(emulator.acks)) == len(emulator.acks)

    # the platform drops the socket: one reconnect, resuming the one client session, for all
    await emulator.drop_connections()
    await emulator.agent_says("agent-7", "while away")
    for inbound in inbounds:
        await inbound.until(
            lambda events: any(getattr(e, "state", None) == "restored" for e in events)
        )
    assert len(emulator.connects) == 2
    _, again = emulator.connects
    assert again["protocol"] and "authorization_state" in again
    assert emulator.sockets == 1
    for i, inbound in enumerate(inbounds):
        states = [link.state for link in inbound.of_type("link")]
        assert states == ["down", "retrying", "restored"]
        assert inbound.texts().count("while away") == (1 if i == 7 else 0)
    await asyncio.gather(*(emulator.agent_says(f"agent-{i}", f"back {i}") for i in range(SESSIONS)))
    for i, inbound in enumerate(inbounds):
        await inbound.until(lambda _, i=i, inbound=inbound: inbound.texts()[-1:] == [f"back {i}"])

    # the last session to close closes the socket
    for c in connectors[:-1]:
        await c.close()
    assert emulator.sockets == 1
    await connectors[-1].close()
    await emulator.wait_for(lambda: emulator.sockets == 0)
    assert len(RelayLinks.of(vendor_http)) == 0
    for inbound in inbounds:
        await inbound.finished()


async def test_a_lost_link_ends_every_session_on_it(make: Factory, emulator: Emulator) -> None:
    connectors = await _open_many(make, 5, max_attempts="2")
    inbounds = [Inbound(c) for c in connectors]
    emulator.refuse_connections = True
    await emulator.drop_connections()
    for inbound in inbounds:
        await inbound.finished()
        states = [(link.state, link.will_retry) for link in inbound.of_type("link")]
        assert states == [("down", True), ("retrying", None), ("retrying", None), ("down", False)]
    # a new start after the outage makes a new link
    emulator.refuse_connections = False
    await make().open(_start(99))
    assert emulator.sockets == 1


async def test_concurrent_starts_share_one_connect_and_its_refusal(
    make: Factory, emulator: Emulator
) -> None:
    results = await asyncio.gather(
        *(make(token="wrong").open(_start(i)) for i in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, VendorError) for r in results)
    assert {r.code for r in results if isinstance(r, VendorError)} == {"VENDOR_UNAUTHORIZED"}
    assert len(emulator.connects) == 1
    await make().open(_start(1))  # the refused link is gone: a good token connects anew
    assert len(emulator.connects) == 2


async def test_each_subscriber_has_its_own_socket(make: Factory, emulator: Emulator) -> None:
    emulator.tokens["other-token"] = "subscriber-2"
    mine = await _open_many(make, 3)
    theirs = await _open_many(make, 3, first=3, token="other-token")
    assert emulator.sockets == 2
    for c in mine + theirs:
        inbound = Inbound(c)
        await inbound.until(lambda _, inbound=inbound: inbound.texts() == [GREETING])
    subscribers = [emulator.conversations[f"agent-{i}"].subscriber for i in range(6)]
    assert subscribers == ["subscriber-1"] * 3 + ["subscriber-2"] * 3


async def test_an_event_before_its_session_attaches_waits_for_it(
    make: Factory, emulator: Emulator
) -> None:
    """The platform may push a conversation's event before the join that names it is answered
    (the newer join's group id is only known from that answer): the link keeps events of
    conversations no session holds, for one that attaches."""
    keeper = make()  # keeps the link up
    await keeper.open(_start(0))
    gone = make()
    await gone.open(_start(1))
    await gone.close()
    await emulator.agent_says("agent-1", "while nobody held it")
    await emulator.wait_for(lambda: len(emulator.acks) >= 3)  # two greetings, and this one
    again = make()
    await again.open(_start(1))  # the conversation exists: the platform greets no more
    inbound = Inbound(again)
    await inbound.until(lambda _: inbound.texts() == ["while nobody held it"])


async def test_a_second_session_of_a_live_conversation_leaves_the_first_its_events(
    make: Factory, emulator: Emulator
) -> None:
    """Joining by address can land a start in a conversation already live here (the sessions
    layer then keeps the running session and closes the new one): both get its events while
    both live, and closing the new one leaves the running one its route."""
    running = make()
    await running.open(_start(1))
    inbound = Inbound(running)
    extra = make()
    await extra.open(_start(1))
    assert extra.conversation_id == running.conversation_id
    extra_inbound = Inbound(extra)
    await emulator.agent_says("agent-1", "to both")
    await extra_inbound.until(lambda _: "to both" in extra_inbound.texts())
    await extra.close()
    await emulator.agent_says("agent-1", "still here")
    await inbound.until(lambda _: inbound.texts() == [GREETING, "to both", "still here"])
