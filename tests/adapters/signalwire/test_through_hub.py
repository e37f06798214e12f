"""The connector's output published to the real (memory) hub, as the sessions layer does it:
the user's echo is stored once, and a reconnect plus a takeover leave the log whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.signalwire.connector import SignalWireConnector
from adapters.signalwire.emulator import Emulator
from gateway.hub import Hub, create_hub
from gateway.model import Link, Message, Send, Text, event_decoder
from tests.adapters.signalwire.conftest import ADDR, START, Factory
from tests.support import Inbound


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = create_hub("memory://")
    await hub.start()
    yield hub
    await hub.close()


class Publisher(Inbound):
    """`Inbound` that publishes every batch to the hub before the test sees it."""

    def __init__(self, connector: SignalWireConnector, hub: Hub) -> None:
        self.hub = hub
        super().__init__(connector)

    async def _run(self, connector: Any) -> None:
        try:
            async for batch in connector.inbound():
                await self.hub.publish(batch)
                self.events.extend(batch)
                self._changed.set()
        finally:
            self._changed.set()


async def stored(hub: Hub, conversation: str) -> list[tuple[str, str]]:
    events = [event_decoder.decode(payload) for _, payload in await hub.read(conversation)]
    return [
        (e.sender.role, e.content.text)
        for e in events
        if isinstance(e, Message) and isinstance(e.content, Text)
    ]


async def test_sent_message_and_its_echo_are_stored_once(make: Factory, hub: Hub) -> None:
    connector = make()
    await hub.publish(await connector.open(START))
    inbound = Publisher(connector, hub)
    sent = await connector.send(Send(conversation=connector.conversation_id, content=Text("hi")))
    published = await hub.publish(sent)
    await inbound.until(lambda _: "echo: hi" in inbound.texts())
    assert await stored(hub, connector.conversation_id) == [
        ("agent", "Hi! How can I help?"),
        ("user", "hi"),
        ("agent", "echo: hi"),
    ]
    assert published[0].id == sent[0].id  # whichever of the two came first, one stored event


async def test_reconnect_and_takeover_leave_the_log_whole(
    make: Factory, hub: Hub, emulator: Emulator
) -> None:
    first = make()
    await hub.publish(await first.open(START))
    inbound = Publisher(first, hub)
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
    takeover = Publisher(second, hub)
    await emulator.agent_says(ADDR, "new owner")
    await takeover.until(lambda _: "new owner" in takeover.texts())
    assert [text for _, text in await stored(hub, second.conversation_id)] == [
        "Hi! How can I help?",
        "while down",
        "between owners",
        "new owner",
    ]
