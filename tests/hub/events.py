"""Canonical events the hub tests publish."""

from __future__ import annotations

import asyncio

from gateway.model import Ended, Message, Party, Text

AT = "2024-01-01T00:00:00.000Z"


def message(conv: str, n: int, text: str | None = None) -> Message:
    """The `n`th message of `conv` (id `<conv>/<n>`)."""
    return Message(
        id=f"{conv}/{n}",
        conversation_id=conv,
        dialect="t",
        at=AT,
        sender=Party(role="agent"),
        content=Text(text or f"m{n}"),
    )


def ended(conv: str) -> Ended:
    """The `ended` event of `conv`: the hub starts the conversation's expiry with it."""
    return Ended(id=f"{conv}/end", conversation_id=conv, dialect="t", at=AT, reason="completed")


class Collect:
    """A sink that records what it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[str, int, bytes]] = []
        self.changed = asyncio.Event()

    def deliver(self, conversation: str, seq: int, payload: bytes) -> None:
        self.got.append((conversation, seq, payload))
        self.changed.set()

    async def drained(self) -> None:
        pass

    def restarted(self, conversation: str, epoch: str) -> None:
        self.got.append((conversation, -1, epoch.encode()))

    def seqs(self, conversation: str) -> list[int]:
        return [s for c, s, _ in self.got if c == conversation]

    async def until(self, count: int, conversation: str) -> list[int]:
        async with asyncio.timeout(5):
            while len(self.seqs(conversation)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.seqs(conversation)
