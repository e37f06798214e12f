"""What a conversation knows that no single frame carries, kept with the conversation.

A frame names a party by id; whether that id is the customer, a bot or a human agent is
sometimes said only once, elsewhere: in the `party_joined` frame that announced it (server_events
scenario parties are bots), or by configuration (the gateway's own SignalWire address is the
customer's side). Decoding a frame with its conversation's context, not with whatever the
current request or connector happens to hold, is what makes a webhook POST and a connector map
the same frame to the same event.

The hub keeps one `ConversationContext` per conversation (both engines, with the same bound as
the conversation's log); decoding reads it before and records what it learned after.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

import msgspec

from gateway.model import Role


class ConversationContext(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A conversation's context. Empty (`ConversationContext()`) for one never seen."""

    own_address: str | None = None
    """The gateway's own address (participant id) in this conversation, where the dialect has
    one: lines from it are the customer's (role `user`)."""
    roles: dict[str, Role] = {}
    """Party id → the role that party announced (joining, or its first typed frame)."""

    def merge(self, learned: ConversationContext) -> ConversationContext:
        """This context with `learned` laid over it: a newly known own address replaces the old
        one, and a party's newest announced role wins."""
        if not learned.roles and learned.own_address in (None, self.own_address):
            return self
        return ConversationContext(
            own_address=learned.own_address or self.own_address,
            roles={**self.roles, **learned.roles} if learned.roles else self.roles,
        )

    def role_of(self, party: str | None) -> Role | None:
        """The role context gives `party`: `user` for the own address, an announced role, or
        None when context says nothing about it."""
        if party is None:
            return None
        if party == self.own_address:
            return "user"
        return self.roles.get(party)


EMPTY = ConversationContext()


class ContextStore(Protocol):
    """Where contexts are kept (the hub: `Hub.contexts`, `Hub.remember`)."""

    async def contexts(self, conversations: Collection[str]) -> dict[str, ConversationContext]:
        """The context of each conversation named (`EMPTY` for one with none)."""
        ...

    async def remember(self, learned: Mapping[str, ConversationContext]) -> None:
        """Lay each context over the stored one (`ConversationContext.merge`)."""
        ...
