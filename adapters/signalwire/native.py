"""SignalWire Call Fabric chat: the native frames we read and write (private to this package).

Three shapes reach the codec (see `docs/dialects/signalwire.md`):

- a JSON-RPC 2.0 event from the Relay WebSocket::

    {"jsonrpc": "2.0", "id": "e1", "method": "signalwire.event",
     "params": {"event_type": "conversation.message", "event_channel": "...",
                "timestamp": 1708192187.7, "is_author": true, "params": {<message row>}}}

- a REST history page ``{"data": [<row>, ...], "links": {"next": "...", "prev": "..."}}``;
- a bare message row (the seed's ``ConversationChatMessage``)::

    {"id": "3c11...", "conversation_id": "9dbe...", "user_id": "cecb...", "ts": 1708192187.67,
     "details": {}, "type": "message", "subtype": "chat" | "log", "text": "..."}

Rows come in two vintages: older ``conversation_id`` + ``user_id``, newer ``group_id`` +
``from_fabric_address_id``; both are accepted. ``conversation.ended`` is OUR OWN invention (the
platform documents no end of a chat); the emulator sends it when the agent closes a conversation.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

from gateway.model import EndedBy, EndReason

MESSAGE_EVENTS = frozenset({"conversation.message", "conversation.message.updated"})
EVENT_TYPES = MESSAGE_EVENTS | {"conversation.ended"}
SUBTYPES = frozenset({"chat", "log"})


class Row(msgspec.Struct, kw_only=True, gc=False):
    """One conversation message row (REST history, or `params.params` of a live event).

    Fields in the order the platform sends them: msgspec matches a key against the next field
    first, so this order decodes a row about a tenth faster. `gc=False` here and below: these
    hold JSON values only, never a cycle.
    """

    id: str
    conversation_id: str | None = None  # older API
    user_id: str | None = None  # older API
    ts: float | str | None = None  # float epoch seconds (other forms tolerated)
    details: dict[str, Any] | None = None
    type: str = "message"
    subtype: str = "chat"
    kind: str | None = None
    hidden: bool = False
    text: str | None = None
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
    event_channel: str | None = None
    timestamp: float | str | None = None
    is_author: bool = False


class MessageEvent(_EventParams, tag="conversation.message", kw_only=True):
    params: Row


class MessageUpdated(_EventParams, tag="conversation.message.updated", kw_only=True):
    params: Row


class ConversationEnded(_EventParams, tag="conversation.ended", kw_only=True):
    params: EndedBody


class RpcEvent(msgspec.Struct, kw_only=True, gc=False):
    """A `signalwire.event` request of the Relay WebSocket; answered with an empty result.
    (Fields in wire order, as `Row`.)"""

    jsonrpc: Literal["2.0"] = "2.0"
    id: str | int
    method: Literal["signalwire.event"]
    params: MessageEvent | MessageUpdated | ConversationEnded


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


# ---------------------------------------------------------------------------------------------
# The codec's fast path (see `codec.decode`): whole bodies decoded typed in one pass. These are
# the native Structs above with presence fields added, `Raw` with an empty default, that tell
# a frame's shape apart exactly as the exact path does (by which keys are present); so a body
# they accept is a body the exact path accepts with the same values.

ABSENT = msgspec.Raw(b"")
"""The default of a presence field: the key was not in the object (`is ABSENT`)."""


class FastRow(Row, kw_only=True, gc=False):
    """`Row`, plus whether the object also has `method` / `jsonrpc` (then it is no row)."""

    method: msgspec.Raw = ABSENT
    jsonrpc: msgspec.Raw = ABSENT


class FastMessageEvent(MessageEvent, tag="conversation.message", kw_only=True, gc=False):
    params: FastRow


class FastMessageUpdated(
    MessageUpdated, tag="conversation.message.updated", kw_only=True, gc=False
):
    params: FastRow


FastConversationEnded = ConversationEnded
"""Its body has no row: the exact path's Struct serves the fast one as it is."""


FastRpcParams: TypeAlias = FastMessageEvent | FastMessageUpdated | FastConversationEnded
"""The `params` of a `FastRpcEvent`, tagged by `event_type`."""


class FastRpcEvent(RpcEvent, kw_only=True, gc=False):
    """`RpcEvent`, its rows as `FastRow`."""

    params: FastRpcParams


class FastPage(msgspec.Struct, kw_only=True, gc=False):
    """A history page whose frames are all rows; `id` / `method` present: not a page at all.
    `links` is not read (nor checked: the exact path ignores it too)."""

    data: list[FastRow]
    id: msgspec.Raw = ABSENT
    method: msgspec.Raw = ABSENT


class FrameHead(msgspec.Struct, gc=False):
    """The keys that decide what an object frame is, and nothing else: decodes any object.

    `id`, `method` and `jsonrpc` keep their value (`msgspec.UNSET` when absent): read, as the
    typed `FastRpcEvent` reads them, so their strings are checked (UTF-8) as there. `params` and
    `data` only say whether they are there (`ABSENT`), `params` keeping its bytes for
    `ParamsHead`.
    """

    id: Any = msgspec.UNSET
    method: Any = msgspec.UNSET
    jsonrpc: Any = msgspec.UNSET
    params: msgspec.Raw = ABSENT
    data: msgspec.Raw = ABSENT


class ParamsHead(msgspec.Struct, gc=False):
    """The `event_type` of a `signalwire.event`'s params, whatever else they hold."""

    event_type: Any = None
