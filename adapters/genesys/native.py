"""The genesys dialect's native frames (private to this package).

Two forms of the same transcript reach the gateway, and both decode:

GMS Chat API v2 (what the connector polls; a webhook may post it too). A response envelope::

    {"statusCode": 0, "alias": "117", "userId": "...", "secureKey": "...", "chatId": "...",
     "chatEnded": false, "nextPosition": 3, "messages": [<entry>, ...]}

with transcript entries (index from 1, `utcTime` epoch ms)::

    {"type": "Message", "index": 2, "utcTime": 1432845095000, "text": "hi",
     "from": {"nickname": "Anna", "participantId": "2", "type": "Agent"}}

Widget form (the seed's `session.getTranscript()` / `session.on*` events)::

    {"type": "MessageReceived", "index": 2, "timestamp": 1432845095000,
     "content": {"text": "hi", "type": "text"}, "party": {"id": 2, "type": "Agent", "name": "Anna"}}

The seed documents `content.type` and `party.type` both as a string and as an object of
booleans (`{"url": true}`); both are accepted. Either form may name its party `from` or
`party` and its time `utcTime` or `timestamp`: every entry accepts both spellings.

Our own invention (the seed's callbacks carry no such fields): a widget frame may carry its chat
as `chatId` (or `sessionId`); `AgentTyping`, `Interrupted`, `Continued` and `Error` frames carry a
`timestamp`; a widget transcript may be posted as `{"transcript": [...], "chatId": ...}` (the
`getTranscript` done-callback event). GMS error bodies are `{"statusCode": 1|2, "errors":
[{"code": <widget error code>, "advice": "..."}]}`.
"""

from __future__ import annotations

import typing
from typing import Any, Literal, TypeAlias

import msgspec

Stamp: TypeAlias = int | float | str | None
PartyType: TypeAlias = Literal[
    "Client", "client", "Agent", "agent", "Supervisor", "supervisor", "External", "external"
]


# `gc=False` on the Structs a decoder makes (a few per entry): they hold JSON values only, never
# a cycle, so the collector need not track them (a typed decode is about 6 % faster).


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
    """Fields every entry may carry. `index` is the transcript position (the event id)."""

    index: int | str | None = None
    utcTime: Stamp = None
    timestamp: Stamp = None
    from_: Who | None = msgspec.field(default=None, name="from")
    party: Who | None = None
    chatId: str | None = None
    sessionId: str | None = None
    restored: bool = False


# --- GMS Chat API v2 transcript entries -----------------------------------------------------


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


# --- Widget (seed) events -------------------------------------------------------------------


class AgentConnected(_Entry, tag="AgentConnected", frozen=True):
    pass


class AgentDisconnected(_Entry, tag="AgentDisconnected", frozen=True):
    pass


class MessageReceived(_Entry, tag="MessageReceived", frozen=True):
    content: WidgetContent


class AgentTyping(_Entry, tag="AgentTyping", frozen=True):
    isTyping: bool = True


class SessionEnded(_Entry, tag="SessionEnded", frozen=True):
    reason: Reason = Reason()


class Interrupted(_Entry, tag="Interrupted", frozen=True):
    pass


class Continued(_Entry, tag="Continued", frozen=True):
    pass


class WidgetError(_Entry, tag="Error", frozen=True):
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
ENTRY_TYPES: frozenset[str] = frozenset(
    str(t.__struct_config__.tag) for t in typing.get_args(Entry)
)


# --- GMS response envelope ------------------------------------------------------------------


class GmsError(msgspec.Struct, frozen=True, gc=False):
    code: int | str
    advice: str | None = None


class Envelope(msgspec.Struct, kw_only=True, frozen=True):
    """A GMS v2 response. `messages` stay raw here: each entry is converted on its own so a
    bad one is reported with its index in the batch and an unknown `type` is only counted."""

    statusCode: int = 0
    alias: str | int | None = None
    userId: str | None = None
    secureKey: str | None = None
    chatId: str | None = None
    chatEnded: bool = False
    nextPosition: int | None = None
    messages: list[Any] = []
    errors: list[GmsError] = []


class Transcript(msgspec.Struct, kw_only=True, frozen=True):
    """The widget's `getTranscript` result posted whole (our own envelope)."""

    transcript: list[Any]
    chatId: str | None = None
    sessionId: str | None = None


# --- decode-only forms (the fast path of `decode.decode`) -----------------------------------


class AnyEntry(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Any entry, of a known type or not, as the decode fast path reads it: the fields of
    every entry type in one Struct, `type` a plain string.

    Why not `Entry`: a tagged union must find its tag before it decodes a field, and GMS sends
    `type` third (after `from` and `index`), so msgspec reads such an entry twice (about 100 ns
    more per entry); and one entry of an unknown type fails a whole `list[Entry]`, where this
    decodes it (to be counted). For a known `type` it accepts no more than that type's Struct
    but in two ways, which `entries.events_of` makes up for: the fields of other types are
    checked too (so it refuses more, sending the body to the exact path), and `text`,
    `content` and `error`, which some types require, may be absent or null here (the handlers
    of those types refuse a None).
    """

    type: str
    from_: Who | None = msgspec.field(default=None, name="from")
    index: int | str | None = None
    text: str | None = None
    utcTime: Stamp = None
    party: Who | None = None
    content: WidgetContent | None = None
    timestamp: Stamp = None
    chatId: str | None = None
    sessionId: str | None = None
    isTyping: bool = True
    reason: Reason = Reason()
    error: ErrorInfo | None = None
    restored: bool = False


class Container(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """An object body that is not an entry, decoded typed in one pass: a GMS envelope
    (`messages` and the status fields) or a widget transcript (`transcript`), its entries as
    `AnyEntry`.

    The probe accepts no more than `Envelope` and `Transcript` do, and the fields that decide
    which of them a body is stay `UNSET` when absent, so the decoder can tell a body that is
    neither (it then takes the exact path).
    """

    type: msgspec.UnsetType = msgspec.UNSET  # any `type` at all: an entry, never a container
    transcript: list[AnyEntry] | msgspec.UnsetType = msgspec.UNSET
    messages: list[AnyEntry] | msgspec.UnsetType = msgspec.UNSET
    statusCode: int | msgspec.UnsetType = msgspec.UNSET
    chatEnded: bool | msgspec.UnsetType = msgspec.UNSET
    nextPosition: int | msgspec.UnsetType | None = msgspec.UNSET
    alias: str | int | None = None
    userId: str | None = None
    secureKey: str | None = None
    chatId: str | None = None
    sessionId: str | None = None
    errors: list[GmsError] = []
