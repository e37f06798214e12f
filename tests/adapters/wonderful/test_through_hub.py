"""The connector's output published to the real (memory) hub, as the sessions layer does it:
the user's echo is stored once, and a reconnect plus a takeover leave the log whole."""

from __future__ import annotations

import msgspec

from adapters.wonderful.emulator import Emulator
from gateway.hub import Hub
from gateway.model import Event, Link, Message, Participant, Send, Start, Text
from tests.adapters.wonderful.conftest import Make, texts
from tests.support import Inbound, stored

START = Start(
    dialect="wonderful", participant=Participant(from_="u@example.com", from_type="email")
)


async def stored_texts(hub: Hub, conversation: str) -> list[tuple[str, str]]:
    events = await stored(hub, conversation)
    return [
        (e.sender.role, e.content.text)
        for e in events
        if isinstance(e, Message) and isinstance(e.content, Text)
    ]


def restored(events: list[Event]) -> bool:
    return any(isinstance(e, Link) and e.state == "restored" for e in events)


async def test_echo_is_stored_once_and_takeover_loses_nothing(
    emulator: Emulator, make: Make, memory_hub: Hub
) -> None:
    hub = memory_hub
    first = make()
    await hub.publish(await first.open(START))
    conv = first.conversation_id
    sid = conv.removeprefix("wonderful:")
    inbound = Inbound(first, publish_to=hub)
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
    await Inbound(second, publish_to=hub).finished()

    history = [
        ("user" if m["speaker"] == "customer" else "bot", m["data"]["text"])
        for m in emulator.sessions[sid].messages
    ]
    assert await stored_texts(hub, conv) == history
    assert history.count(("user", "hello")) == 1
