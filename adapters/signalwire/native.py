"""SignalWire Call Fabric chat: the native frames we read and write (private to this package).

Three shapes reach decoding (see `docs/dialects/signalwire.md`):

- a JSON-RPC 2.0 event from the Relay WebSocket::

    {"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event",
     "params": {"event_type": "conversation.message", "event_channel": "...",
                "timestamp": 1708192187.7, "is_author": true, "params": {<message row>}}}

- a REST history page ``{"data": [<row>, ...], "links": {"next": "...", "prev": "..."}}``;
- a bare message row (the seed's ``ConversationChatMessage``)::

    {"id": "3c11...", "conversation_id": "9dbe...", "user_id": "cecb...", "ts": 1708192187.67,
     "details": {}, "type": "message", "subtype": "chat" | "log", "text": "..."}

Rows come in two vintages: older ``conversation_id`` + ``user_id``, newer ``group_id`` +
``from_fabric_address_id``; both are accepted. The SDK's types allow a chat row whose ``text``
is null (`@signalwire/core` `types/conversation.ts`, the v4 SDK's `ConversationMessagePayload`)
and an ``event_channel`` that is a string or an array of strings (v4 `EventChannel`).
``conversation.ended`` is OUR OWN invention (the platform documents no end of a chat); the
emulator sends it when the agent closes a conversation.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec

from gateway.model import EndedBy, EndReason

DIALECT = "signalwire"

MESSAGE_EVENTS = frozenset({"conversation.message", "conversation.message.updated"})
EVENT_TYPES = MESSAGE_EVENTS | {"conversation.ended"}
SUBTYPES = frozenset({"chat", "log"})
AUTHORIZATION_STATE = "signalwire.authorization.state"
"""The event that hands the client the opaque state it sends back on a reconnect."""


# The inbound Structs are `gc=False`: made from JSON, they hold no reference cycles, so the
# cyclic collector need not track the many a busy socket decodes.
class _RowFields(msgspec.Struct, kw_only=True, gc=False):
    """A conversation message row's fields but its `id` (`Row`, and a bare row as a `Frame`)."""

    conversation_id: str | None = None  # older API
    user_id: str | None = None  # older API
    ts: float | str | None = None  # float epoch seconds (other forms tolerated)
    details: dict[str, Any] | None = None
    type: str = "message"
    subtype: str = "chat"
    kind: str | None = None
    hidden: bool = False
    text: str | None = None  # null (or absent) on a chat row: a message without text
    metadata: dict[str, Any] | None = None
    user_name: str | None = None
    group_id: str | None = None  # newer API
    from_fabric_address_id: str | None = None  # newer API
    from_address_id: str | None = None  # the SDK's types name this one too
    is_author: bool | None = None  # our own: lets a webhook row say it is the user's

    @property
    def conversation(self) -> str | None:
        return self.conversation_id or self.group_id

    @property
    def sender(self) -> str | None:
        return self.user_id or self.from_fabric_address_id or self.from_address_id

    @property
    def maps(self) -> bool:
        """Whether the row is of a type and subtype we map (a chat message, a call log)."""
        return self.type == "message" and self.subtype in SUBTYPES

    def is_from(self, address: str | None) -> bool:
        """Whether `address` wrote this row (any of the author fields names it)."""
        return address is not None and address in (
            self.user_id,
            self.from_fabric_address_id,
            self.from_address_id,
        )


class Row(_RowFields, kw_only=True, gc=False):
    """One conversation message row (REST history, or `params.params` of a live event)."""

    id: str


class EndedBody(msgspec.Struct, kw_only=True, gc=False):
    """`params.params` of our own `conversation.ended` event."""

    conversation_id: str | None = None
    group_id: str | None = None
    reason: EndReason = "completed"
    by: EndedBy | None = None
    text: str | None = None
    ts: float | str | None = None

    @property
    def conversation(self) -> str | None:
        return self.conversation_id or self.group_id


class _EventParams(msgspec.Struct, tag_field="event_type", kw_only=True, gc=False):
    event_channel: str | list[str] | None = None
    timestamp: float | str | None = None
    is_author: bool = False


class MessageEvent(_EventParams, tag="conversation.message", kw_only=True):
    params: Row


class MessageUpdated(_EventParams, tag="conversation.message.updated", kw_only=True):
    params: Row


class ConversationEnded(_EventParams, tag="conversation.ended", kw_only=True):
    params: EndedBody


EventParams: TypeAlias = MessageEvent | MessageUpdated | ConversationEnded


class Frame(_RowFields, kw_only=True, gc=False):
    """One frame as it arrives, typed in one pass: a JSON-RPC message of the Relay WebSocket
    (`jsonrpc` or `method` set; a `signalwire.event` request holds its event in `params`, and
    is answered with an empty result) or a bare message row (its fields are this Struct's; a
    row's `id` must be a string, which the builder checks: a JSON-RPC `id` may be a number)."""

    id: str | int | None = None
    jsonrpc: str | None = None
    method: str | None = None
    params: EventParams | msgspec.UnsetType = msgspec.UNSET
    """Absent on a bare row and on a JSON-RPC response (`null`: a broken request)."""

    @property
    def rpc(self) -> bool:
        return self.method is not None or self.jsonrpc is not None


class Links(msgspec.Struct, kw_only=True):
    """Opaque absolute URLs of a REST page."""

    first: str | None = None
    self: str | None = None
    next: str | None = None
    prev: str | None = None


class Page(msgspec.Struct, kw_only=True):
    """A REST history page: `GET /api/fabric/conversations/{addressId}/messages`."""

    data: list[Row]
    links: Links = msgspec.field(default_factory=Links)


class RpcError(msgspec.Struct, kw_only=True):
    code: int | str
    message: str = ""


class RpcResponse(msgspec.Struct, kw_only=True):
    """A JSON-RPC response (to our `signalwire.connect`, or an ack)."""

    id: str | int | None = None
    result: Any = None
    error: RpcError | None = None
    method: str | None = None  # set: this is a request (an event), not a response


class AuthorizationState(msgspec.Struct, kw_only=True):
    """`params.params` of a `signalwire.authorization.state` event: an opaque string the
    client keeps and sends back in `signalwire.connect` on a reconnect."""

    authorization_state: str
