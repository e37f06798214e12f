"""The connector's output published to the real (memory) hub, as the sessions layer does it:
the user's echo is stored once, and a reconnect plus a takeover leave the log whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import pytest

from adapters.wonderful.emulator import Emulator
from gateway.hub import Hub, create_hub
from gateway.model import Event, Link, Message, Participant, Send, Start, Text, event_decoder
from tests.adapters.wonderful.conftest import Make, texts
from tests.support import Inbound

START = Start(
    dialect="wonderful", participant=Participant(from_="u@example.com", from_type="email")
)


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = create_hub("memory://")
    await hub.start()
    yield hub
    await hub.close()


class Publisher(Inbound):
    """`Inbound` that publishes every batch to the hub before the test sees it."""

    def __init__(self, connector: Any, hub: Hub) -> None:
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


async def stored_texts(hub: Hub, conversation: str) -> list[tuple[str, str]]:
    rows = await hub.read(conversation)
    events: Sequence[Event] = [event_decoder.decode(payload) for _, payload in rows]
    return [
        (e.sender.role, e.content.text)
        for e in events
        if isinstance(e, Message) and isinstance(e.content, Text)
    ]


def restored(events: list[Event]) -> bool:
    return any(isinstance(e, Link) and e.state == "restored" for e in events)


async def test_echo_is_stored_once_and_takeover_loses_nothing(
    emulator: Emulator, make: Make, hub: Hub
) -> None:
    first = make()
    await hub.publish(await first.open(START))
    conv = first.conversation_id
    sid = conv.removeprefix("wonderful:")
    inbound = Publisher(first, hub)
    try:
        # the echo may reach the hub before or after the send's answer: it is stored once
        [sent] = await first.send(Send(conversation=conv, content=Text("hello")))
        await hub.publish([sent])
        await inbound.until(lambda events: "echo: hello" in texts(events))
        await emulator.drop_connections()
        await inbound.until(restored)
        state = msgspec.json.decode(msgspec.json.encode(first.snapshot()))  # persisted as JSON
        await first.close()
        await inbound.finished()
    finally:
        await inbound.stop()

    await emulator.agent_says(sid, "while nobody owned it")
    second = make()
    await hub.publish(await second.resume(state))
    await second.send(Send(conversation=conv, content=Text("bye")))
    await Publisher(second, hub).finished()

    history = [
        ("user" if m["speaker"] == "customer" else "bot", m["data"]["text"])
        for m in emulator.sessions[sid].messages
    ]
    assert await stored_texts(hub, conv) == history
    assert history.count(("user", "hello")) == 1
