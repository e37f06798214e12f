"""The connector's output published to the real (memory) hub, as the sessions layer does it:
the user's echo is stored once, and a reconnect plus a takeover leave the log whole."""

from __future__ import annotations

from adapters.signalwire.emulator import Emulator
from gateway.hub import Hub
from gateway.model import Link, Message, Send, Text
from tests.adapters.signalwire.conftest import ADDR, START, Factory
from tests.support import Inbound, stored


async def said(hub: Hub, conversation: str) -> list[tuple[str, str]]:
    """(role, text) of the text messages the hub holds for `conversation`."""
    return [
        (e.sender.role, e.content.text)
        for e in await stored(hub, conversation)
        if isinstance(e, Message) and isinstance(e.content, Text)
    ]


async def test_sent_message_and_its_echo_are_stored_once(make: Factory, memory_hub: Hub) -> None:
    hub = memory_hub
    connector = make()
    await hub.publish(await connector.open(START))
    inbound = Inbound(connector, publish_to=hub)
    sent = await connector.send(Send(conversation=connector.conversation_id, content=Text("hi")))
    published = await hub.publish(sent)
    await inbound.until(lambda _: "echo: hi" in inbound.texts())
    assert await said(hub, connector.conversation_id) == [
        ("agent", "Hi! How can I help?"),
        ("user", "hi"),
        ("agent", "echo: hi"),
    ]
    assert published[0].id == sent[0].id  # whichever of the two came first, one stored event


async def test_reconnect_and_takeover_leave_the_log_whole(
    make: Factory, memory_hub: Hub, emulator: Emulator
) -> None:
    hub = memory_hub
    first = make()
    await hub.publish(await first.open(START))
    inbound = Inbound(first, publish_to=hub)
    await inbound.until(lambda _: len(inbound.texts()) == 1)
    emulator.refuse_connections = True
    await emulator.drop_connections()
    await inbound.until(
        lambda _: any(isinstance(e, Link) and e.state == "retrying" for e in inbound.events)
    )
    await emulator.agent_says(ADDR, "while down")
    emulator.refuse_connections = False
    await inbound.until(lambda _: "while down" in inbound.texts())
    snapshot = first.snapshot()
    await first.close()
    await emulator.agent_says(ADDR, "between owners")

    second = make()
    await hub.publish(await second.resume(snapshot))
    takeover = Inbound(second, publish_to=hub)
    await emulator.agent_says(ADDR, "new owner")
    await takeover.until(lambda _: "new owner" in takeover.texts())
    assert [text for _, text in await said(hub, second.conversation_id)] == [
        "Hi! How can I help?",
        "while down",
        "between owners",
        "new owner",
    ]
