"""The genesys dialect's native frames (private to this package).

Two forms of the same transcript reach the gateway, and both decode:

GMS Chat API v2 (what the connector polls; a webhook may post it too;
https://docs.genesys.com/Documentation/GMS/latest/API/ChatAPIv2). A reply envelope::

    {"statusCode": 0, "alias": "117", "userId": "...", "secureKey": "...", "chatId": "...",
     "chatEnded": false, "nextPosition": 3, "messages": [<entry>, ...]}

with transcript entries (index from 1, `utcTime` epoch ms, `participantId` a number in the
docs' sample)::

    {"type": "Message", "index": 2, "utcTime": 1432845095000, "text": "hi",
     "from": {"nickname": "Anna", "participantId": 2, "type": "Agent"}}

Widget form (the seed's `session.getTranscript()` / `session.on*` events; index from 0)::

    {"type": "MessageReceived", "index": 1, "timestamp": 1432845095000,
     "content": {"text": "hi", "type": "text"}, "party": {"id": 2, "type": "Agent", "name": "Anna"}}

The seed documents `content.type` and `party.type` both as a string and as an object of
booleans (`{"url": true}`); both are accepted. Either form may name its party `from` or
`party` and its time `utcTime` or `timestamp`: every entry accepts both spellings. An entry's
`type` tells its form (and so how its `index` counts).

Our own invention (the seed's callbacks carry no such fields): a widget frame may carry its chat
as `chatId` (or `sessionId`); `AgentTyping`, `Interrupted`, `Continued` and `Error` frames carry a
`timestamp`; a widget transcript may be posted as `{"transcript": [...], "chatId": ...}` (the
`getTranscript` done-callback event). GMS error bodies are `{"statusCode": 1|2, "errors":
[{"code": <widget error code>, "advice": "..."}]}`.

Every Struct here is `gc=False`: decoded from JSON, they hold JSON values only and can never be
part of a reference cycle (as the canonical model's).
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeAlias

import msgspec

from gateway.decoding import Refused
from gateway.model import EndedBy, EndReason, Party, Role

DIALECT = "genesys"

Stamp: TypeAlias = int | float | str | None
PartyType: TypeAlias = Literal[
    "Client", "client", "Agent", "agent", "Supervisor", "supervisor", "External", "external"
]


class Who(msgspec.Struct, frozen=True, gc=False):
    """A transcript party: GMS `from` (`nickname`, `participantId`) or widget `party` (`name`,
    `id`); `type` is a string or the widget's object of booleans (`{"agent": true}`)."""

    type: PartyType | dict[str, bool] | None = None
    nickname: str | None = None
    participantId: str | int | None = None
    name: str | None = None
    id: str | int | None = None


class WidgetContent(msgspec.Struct, frozen=True, gc=False):
    text: str
    type: Literal["text", "url"] | dict[str, bool] = "text"


class Reason(msgspec.Struct, frozen=True, gc=False):
    """`SessionEnded.reason`: `code` 1 leave request, 2 agent, 3 error, or the boolean form."""

    code: int | None = None
    description: str | None = None
    leaveRequest: bool = False
    agent: bool = False
    error: bool = False


class ErrorInfo(msgspec.Struct, frozen=True, gc=False):
    code: int | str
    description: str | None = None


class _Entry(msgspec.Struct, tag_field="type", kw_only=True, frozen=True, gc=False):
    """Fields every entry may carry. `index` is the transcript position (see `decode`)."""

    index: int | str | None = None
    utcTime: Stamp = None
    timestamp: Stamp = None
    from_: Who | None = msgspec.field(default=None, name="from")
    party: Who | None = None
    chatId: str | None = None
    sessionId: str | None = None
    restored: bool = False

    first_index: ClassVar[int] = 1
    """The `index` of the form's first transcript line: GMS counts from 1."""
    undescribed: ClassVar[Role | None] = None
    """The role of the entry's party when it describes none (`from`, `party`): None where an
    entry must describe it."""


# --- GMS Chat API v2 transcript entries (index from 1) -------------------------------------


class GmsMessage(_Entry, tag="Message", frozen=True):
    text: str


class GmsJoined(_Entry, tag="ParticipantJoined", frozen=True):
    text: str | None = None


class GmsLeft(_Entry, tag="ParticipantLeft", frozen=True):
    text: str | None = None


class GmsTypingStarted(_Entry, tag="TypingStarted", frozen=True):
    text: str | None = None


class GmsTypingStopped(_Entry, tag="TypingStopped", frozen=True):
    text: str | None = None


class GmsPushUrl(_Entry, tag="PushUrl", frozen=True):
    text: str


class GmsNotice(_Entry, tag="Notice", frozen=True):
    text: str


# --- Widget (seed) events (index from 0) ----------------------------------------------------


class _WidgetEntry(_Entry, frozen=True, gc=False):
    """A widget event: the widget counts transcript lines from 0 (its line `i` is GMS entry
    `i + 1`)."""

    first_index: ClassVar[int] = 0


class AgentConnected(_WidgetEntry, tag="AgentConnected", frozen=True):
    undescribed: ClassVar[Role | None] = "agent"


class AgentDisconnected(_WidgetEntry, tag="AgentDisconnected", frozen=True):
    undescribed: ClassVar[Role | None] = "agent"


class MessageReceived(_WidgetEntry, tag="MessageReceived", frozen=True):
    content: WidgetContent


class AgentTyping(_WidgetEntry, tag="AgentTyping", frozen=True):
    isTyping: bool = True
    undescribed: ClassVar[Role | None] = "agent"


class SessionEnded(_WidgetEntry, tag="SessionEnded", frozen=True):
    reason: Reason = Reason()


class Interrupted(_WidgetEntry, tag="Interrupted", frozen=True):
    pass


class Continued(_WidgetEntry, tag="Continued", frozen=True):
    pass


class WidgetError(_WidgetEntry, tag="Error", frozen=True):
    error: ErrorInfo


Entry: TypeAlias = (
    GmsMessage
    | GmsJoined
    | GmsLeft
    | GmsTypingStarted
    | GmsTypingStopped
    | GmsPushUrl
    | GmsNotice
    | AgentConnected
    | AgentDisconnected
    | MessageReceived
    | AgentTyping
    | SessionEnded
    | Interrupted
    | Continued
    | WidgetError
)

# --- envelopes ------------------------------------------------------------------------------


class GmsError(msgspec.Struct, frozen=True, gc=False):
    code: int | str
    advice: str | None = None


class Reply(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A GMS v2 reply. statusCode 0 ok, 1 error (retry), 2 fatal (DIALECTS.md). `messages` stay
    raw: the pipeline decodes each entry on its own (an unknown `type` is only counted)."""

    statusCode: int = 0
    alias: str | int | None = None
    userId: str | None = None
    secureKey: str | None = None
    chatId: str | None = None
    chatEnded: bool = False
    nextPosition: int | None = None
    messages: list[msgspec.Raw] = []
    errors: list[GmsError] = []

    @property
    def chat(self) -> str | None:
        return self.chatId


class Transcript(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """The widget's `getTranscript` result posted whole (our own envelope)."""

    transcript: list[msgspec.Raw]
    chatId: str | None = None
    sessionId: str | None = None

    @property
    def chat(self) -> str | None:
        return self.chatId or self.sessionId


# --- what the wire's names, positions and parties mean ------------------------------------

ROLES: dict[str, Role] = {
    "client": "user",
    "agent": "agent",
    "supervisor": "supervisor",
    "external": "system",  # DIALECTS.md: External is the routing strategy, i.e. the system
}
_SPELLED: dict[str, Role] = {**ROLES, **{name.capitalize(): role for name, role in ROLES.items()}}
"""A `PartyType` string's role: GMS capitalises the type, the widget does not."""
END_REASONS: dict[int, tuple[EndReason, EndedBy]] = {
    1: ("user", "user"),
    2: ("agent", "agent"),
    3: ("error", "system"),
}


def line_id(conv: str, index: int | str, first: int) -> str:
    """The id of transcript line `index` of a form that counts from `first` (GMS 1, widget 0):
    `"<conv>/<n>"`, `n` the line's GMS position. An index that is no position (not a whole
    number, or below `first`) is refused at `$.index`."""
    if isinstance(index, int):
        number = index
    else:
        number = int(index) if index.isdigit() and index.isascii() else -1
    if number < first:
        raise Refused(f"`index` {index!r} is no transcript position (from {first})", "$.index")
    return f"{conv}/{number + 1 - first}"


def line_of(event_id: str) -> int | None:
    """The GMS transcript position of the event `event_id` names, None for an event that is no
    transcript line (a derived id): the inverse of `line_id`."""
    tail = event_id.rpartition("/")[2]
    return int(tail) if tail.isdigit() and tail.isascii() else None


def party(entry: Entry) -> Party:
    """The entry's party (`from`, else `party`; of the entry's `undescribed` role when it
    describes none). The widget's object of booleans gives the role of its first true key that
    names one, in the object's order."""
    who = entry.from_ if entry.from_ is not None else entry.party
    default = entry.undescribed
    if who is None:
        if default is None:
            raise Refused("missing `from`", "$.from")
        return Party(role=default)
    kind, role = who.type, default
    if isinstance(kind, str):
        role = _SPELLED[kind]
    elif isinstance(kind, dict):
        role = _flagged(kind)
    if role is None:
        key = "from" if entry.from_ is not None else "party"
        raise Refused("no party type", f"$.{key}.type")
    pid = who.participantId if who.participantId is not None else who.id
    return Party(role=role, id=None if pid is None else str(pid), name=who.nickname or who.name)


def _flagged(kind: dict[str, bool]) -> Role | None:
    """The role of the first true key of the widget's object of booleans that names one."""
    for key, value in kind.items():
        if value:
            role = ROLES.get(key.lower())
            if role is not None:
                return role
    return None


def end_reason(reason: Reason) -> tuple[EndReason, EndedBy | None]:
    """`SessionEnded.reason`: its code, else its boolean form, else a plain completion."""
    known = None if reason.code is None else END_REASONS.get(reason.code)
    if known is None:
        flag = 1 if reason.leaveRequest else 2 if reason.agent else 3 if reason.error else 0
        known = END_REASONS.get(flag)
    return known if known is not None else ("completed", None)
