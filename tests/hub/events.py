"""Canonical events the hub tests publish."""

from __future__ import annotations

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
