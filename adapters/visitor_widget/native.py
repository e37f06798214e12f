"""The visitor widget's native frames (private to this package).

The platform speaks Socket.IO v2; a server event is `42["<name>", <data>]` on the socket. For
ingest we carry one event as a JSON object (DIALECTS.md § visitor_widget):

    {"event": "chat.message_received", "data": {"chatId": "c1", "message": {...}}}

plus two additions of our own: an optional frame-level `at` (when the gateway saw the event,
any timestamp form; events such as `chat.agent_typing` carry no time of their own) and the
`initialized` frame, which the vendor client builds from the `visitor.connect` ack.

Field names are the platform's (camelCase) on purpose: these Structs decode the wire directly.
Their shapes are the vendor SDK's types (smartsupp/smartsupp-sdk-websocket: `src/types.ts`,
`src/events.ts`, `ConnectedData` in `src/visitor.ts`); everything optional here is optional (or
absent) on the wire there or in some version, and the fields no canonical event holds are left
out (msgspec skips them).
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

DIALECT = "visitor_widget"

Timestamp: TypeAlias = str | int | float | None
"""ISO 8601, epoch seconds or milliseconds, or a string of either (see `gateway.codec.to_at`)."""


class Attachment(msgspec.Struct, kw_only=True, gc=False):
    """A file of an `upload` message; `type` is `image` or `file`. The vendor's `Attachment`
    (smartsupp-sdk-websocket `src/types.ts`) also carries `expireAt`, `width`, `height` and
    `thumb400`, which no canonical field holds. An upload row may carry it in `attachments`
    or only as its `content.data` (`MessageContent.Upload`)."""

    type: str = "file"
    fileName: str | None = None
    fileType: str | None = None
    url: str | None = None
    size: int | None = None


class Content(msgspec.Struct, kw_only=True, gc=False):
    """`type`: `text` | `upload` | `rate_form` for messages; `agent_join` | `agent_leave` |
    `agent_assign` | `agent_unassign` | `chat_close` for event rows. What `data` holds depends
    on `type` (an `Attachment`, a rating, `EventRowData`), so it is read by the builders."""

    type: str
    text: str | None = None
    data: Any = None


class Trigger(msgspec.Struct, kw_only=True, gc=False):
    """The automation that wrote a `trigger` message (`IMessage.trigger`)."""

    id: str | None = None
    name: str | None = None


class MessageRow(msgspec.Struct, kw_only=True, gc=False):
    """One row of a chat (`IMessage`): a message (`type: message`) or a chat event
    (`type: event`). `subType` says who: `contact` (the visitor), `agent`, `trigger`
    (automation), `system`. An event row's `agentId` is null: its agent is in `content.data`."""

    id: str
    type: Literal["message", "event"] = "message"
    subType: str = "system"
    chatId: str | None = None
    visitorId: str | None = None
    agentId: str | None = None
    trigger: Trigger | None = None
    createdAt: Timestamp = None
    content: Content
    attachments: list[Attachment] = []


class EventRowData(msgspec.Struct, kw_only=True, gc=False):
    """`content.data` of an event row (`MessageEventContent`): `agentId` for `agent_join`,
    `agent_leave` and an agent's `chat_close`; `assigned`/`assignedBy` for `agent_assign`;
    `unassigned`/`unassignedBy` for `agent_unassign`; `closeType` for `chat_close`. The agents
    are ids here, agent objects on the `chat.agent_*` frames."""

    agentId: str | None = None
    assigned: str | None = None
    assignedBy: str | None = None
    unassigned: str | None = None
    unassignedBy: str | None = None
    closeType: str | None = None


class Rating(msgspec.Struct, kw_only=True, gc=False):
    """The visitor's rating of a chat (`Rating`; a `rate_form` row's `content.data`)."""

    value: int | float
    text: str | None = None


class Agent(msgspec.Struct, kw_only=True, gc=False):
    """The vendor's `Agent` (also `status`, `groups`, `description`, `avatar`: not mapped)."""

    id: str | None = None
    nickname: str | None = None
    fullname: str | None = None


class TypingState(msgspec.Struct, kw_only=True, gc=False):
    is_: bool = msgspec.field(name="is")
    text: str | None = None


class Visitor(msgspec.Struct, kw_only=True, gc=False):
    id: str
    chatId: str | None = None


class Account(msgspec.Struct, kw_only=True, gc=False):
    status: Literal["online", "offline"]


class Chat(msgspec.Struct, kw_only=True, gc=False):
    id: str
    status: Literal["pending", "open", "closed"]
    messages: list[MessageRow] = []


# ---------------------------------------------------------------------------------------------
# Event data


class MessageReceivedData(msgspec.Struct, kw_only=True, gc=False):
    message: MessageRow
    chatId: str | None = None


class AgentTypingData(msgspec.Struct, kw_only=True, gc=False):
    typing: TypingState
    chatId: str | None = None
    agentId: str | None = None


class ContactReadData(msgspec.Struct, kw_only=True, gc=False):
    lastReadAt: Timestamp
    chatId: str | None = None
    byId: str | None = None


class ClosedData(msgspec.Struct, kw_only=True, gc=False):
    chatId: str | None = None
    closeType: str | None = None
    message: MessageRow | None = None


class AgentData(msgspec.Struct, kw_only=True, gc=False):
    """`chat.agent_joined` / `chat.agent_left` (`Events.ChatAgentJoined` / `ChatAgentLeft`)."""

    chatId: str | None = None
    agent: Agent | None = None
    message: MessageRow | None = None


class AssignedData(msgspec.Struct, kw_only=True, gc=False):
    """`chat.agent_assigned` (`Events.ChatAgentAssigned`): the agent is `assigned`."""

    assigned: Agent
    assignedBy: Agent | None = None
    chatId: str | None = None
    message: MessageRow | None = None


class UnassignedData(msgspec.Struct, kw_only=True, gc=False):
    """`chat.agent_unassigned` (`Events.ChatAgentUnassigned`): the agent is `unassigned`."""

    unassigned: Agent
    unassignedBy: Agent | None = None
    chatId: str | None = None
    message: MessageRow | None = None


class RatedData(msgspec.Struct, kw_only=True, gc=False):
    """`chat.rated` (`Events.ChatRated`): the rating and its `rate_form` row."""

    rating: Rating
    chatId: str | None = None
    message: MessageRow | None = None


class DeletedData(msgspec.Struct, kw_only=True, gc=False):
    """`chat.deleted` (`Events.ChatDeleted`)."""

    chatId: str | None = None


class AccountData(msgspec.Struct, kw_only=True, gc=False):
    """`Events.AccountUpdated`: `status` is optional (the account changed otherwise)."""

    status: Literal["online", "offline"] | None = None


class ServerErrorData(msgspec.Struct, kw_only=True, gc=False):
    """Also the shape of an error ack: `{message, type, event, code}`."""

    message: str
    code: int | str | None = None
    type: str | None = None
    event: str | None = None


class InitializedData(msgspec.Struct, kw_only=True, gc=False):
    """The `visitor.connect` ack, which the vendor client re-emits as `initialized`."""

    visitor: Visitor
    account: Account | None = None
    chat: Chat | None = None
    serverVersion: int | None = None


class UploadInfo(msgspec.Struct, kw_only=True, gc=False):
    """The `chat.upload_init` ack."""

    url: str
    token: str


# ---------------------------------------------------------------------------------------------
# Frames (tag `event`)


class _Frame(msgspec.Struct, tag_field="event", kw_only=True, gc=False):
    at: Timestamp = None  # ours: when the gateway saw the event


class MessageReceived(_Frame, tag="chat.message_received"):
    data: MessageReceivedData


class AgentTyping(_Frame, tag="chat.agent_typing"):
    data: AgentTypingData


class ContactRead(_Frame, tag="chat.contact_read"):
    data: ContactReadData


class Closed(_Frame, tag="chat.closed"):
    data: ClosedData


class AgentJoined(_Frame, tag="chat.agent_joined"):
    data: AgentData


class AgentLeft(_Frame, tag="chat.agent_left"):
    data: AgentData


class AgentAssigned(_Frame, tag="chat.agent_assigned"):
    data: AssignedData


class AgentUnassigned(_Frame, tag="chat.agent_unassigned"):
    data: UnassignedData


class Rated(_Frame, tag="chat.rated"):
    data: RatedData


class Deleted(_Frame, tag="chat.deleted"):
    data: DeletedData


class AccountUpdated(_Frame, tag="account.updated"):
    """The server's name; `data` is `{status}` (or the bare status string)."""

    data: AccountData | Literal["online", "offline"]


class AccountStatusUpdated(_Frame, tag="account.status_updated"):
    """The vendor client's re-emitted name; the seed passes the bare status string."""

    data: AccountData | Literal["online", "offline"]


class ServerError(_Frame, tag="server.error"):
    data: ServerErrorData


class Initialized(_Frame, tag="initialized"):
    data: InitializedData


Frame: TypeAlias = (
    MessageReceived
    | AgentTyping
    | ContactRead
    | Closed
    | AgentJoined
    | AgentLeft
    | AgentAssigned
    | AgentUnassigned
    | Rated
    | Deleted
    | AccountUpdated
    | AccountStatusUpdated
    | ServerError
    | Initialized
)


class Events(msgspec.Struct, gc=False):
    """The `{"events": [...]}` ingest envelope (ours), its frames left undecoded for the
    pipeline (`gateway.decoding`) to decode one by one."""

    events: list[msgspec.Raw]
