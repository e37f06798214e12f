"""`OwnedSession` on its own: a connector whose command ends the session (as genesys's
`disconnect` does) must leave the record `ended` before the `ended` event is seen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from gateway.codec import derived_id
from gateway.hub import create_hub
from gateway.model import Command, End, Ended, Event
from gateway.sessions.owned import OwnedSession
from gateway.sessions.record import SessionRecord
from gateway.sessions.store import MemoryStore

CONV = "loopback:ends-on-command"


class EndsOnCommand:
    """A connector whose `End` command returns the `ended` event (as genesys's disconnect does) and whose
    poll has not yet seen the end."""

    conversation_id = CONV

    def snapshot(self) -> dict[str, Any]:
        return {"chat_id": "ends-on-command"}

    async def inbound(self) -> AsyncIterator[Sequence[Event]]:
        await asyncio.Event().wait()
        yield []  # pragma: no cover

    async def send(self, command: Command) -> Sequence[Event]:
        return [
            Ended(
                id=derived_id(CONV, "ended"),
                conversation_id=CONV,
                dialect="loopback",
                at="2026-01-01T00:00:00.000Z",
                reason="user",
                by="user",
            )
        ]

    async def close(self) -> None:
        pass


async def test_an_ended_event_returned_by_a_command_marks_the_session_ended() -> None:
    hub, store = create_hub("memory://"), MemoryStore()
    await hub.start()
    record = SessionRecord(conversation_id=CONV, dialect="loopback")
    await store.save(record)
    session = OwnedSession(
        record,
        EndsOnCommand(),  # type: ignore[arg-type]
        hub,
        store,
        lease_ttl=10,
        idle_s=60,
        ended_ttl=60,
        on_done=lambda _: None,
    )
    try:
        await session.execute(End(conversation=CONV))
        assert [e.__struct_config__.tag for e in await _published(hub)] == ["ended"]
        saved = await store.load(CONV)
        assert saved is not None and saved.status == "ended"
    finally:
        await hub.close()


async def _published(hub: Any) -> list[Event]:
    from gateway.model import event_decoder

    return [event_decoder.decode(payload) for _, payload in await hub.read(CONV)]
