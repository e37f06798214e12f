"""The canonical model: every event, party, content kind and command the gateway speaks.

This module is the single source of the wire form. Every Struct here encodes to the JSON
that frontends see on `/v1/ws` and the HTTP API, and `GET /v1/schema` serves the JSON Schema
msgspec derives from it. It depends on msgspec and the standard library only.

Events carry `type` as their tag; content carries `kind`; frontend commands carry `op`, so a
command decodes straight from a unified-WebSocket frame. Fields that a dialect may not know
are optional and omitted from the JSON when unset (`omit_defaults`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import msgspec

# ---------------------------------------------------------------------------------------------
# Vocabularies

Role: TypeAlias = Literal["user", "bot", "agent", "supervisor", "system", "external"]
SessionStatus: TypeAlias = Literal["queued", "connecting", "active", "completed", "failed"]
EndReason: TypeAlias = Literal["completed", "agent", "user", "forwarded", "inactivity", "error"]
EndedBy: TypeAlias = Literal["user", "agent", "system"]
ReceiptStatus: TypeAlias = Literal["delivered", "read"]
LinkState: TypeAlias = Literal["up", "down", "retrying", "restored"]
NoticeKind: TypeAlias = Literal["info", "inactivity_warning", "call_log"]
ActionKind: TypeAlias = Literal["forward", "end", "hangup"]
IdentityType: TypeAlias = Literal["phone", "email", "name"]


class Party(msgspec.Struct, omit_defaults=True, frozen=True, gc=False):
    """Who said or did something. `id` is the dialect's own participant id, when it has one."""

    role: Role
    id: str | None = None
    name: str | None = None


# ---------------------------------------------------------------------------------------------
# Content (tag `kind`)


class _Content(msgspec.Struct, tag_field="kind", omit_defaults=True, frozen=True, gc=False):
    pass


class Text(_Content, tag="text", frozen=True):
    text: str


class Url(_Content, tag="url", frozen=True):
    url: str
    text: str | None = None


def _require_location(url: str | None, file_id: str | None) -> None:
    if not url and not file_id:
        raise ValueError("needs a `url` or a `file_id`")


class Image(_Content, tag="image", frozen=True):
    """An image by URL, or by the platform's file id until a URL is known."""

    url: str | None = None
    file_id: str | None = None
    file_name: str | None = None
    caption: str | None = None

    def __post_init__(self) -> None:
        _require_location(self.url, self.file_id)


class File(_Content, tag="file", frozen=True):
    url: str | None = None
    file_id: str | None = None
    file_name: str | None = None
    mime_type: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        _require_location(self.url, self.file_id)


class Audio(_Content, tag="audio", frozen=True):
    """Recorded audio; `voice` is true for a voice note, false for an audio file."""

    url: str
    voice: bool = False


class Location(_Content, tag="location", frozen=True):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class Action(_Content, tag="action", frozen=True):
    """A system action the platform took or asks for (forward, end, hangup)."""

    action: ActionKind
    destination: str | None = None


Content: TypeAlias = Text | Url | Image | File | Audio | Location | Action


# ---------------------------------------------------------------------------------------------
# Events (tag `type`)


class _Event(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True, gc=False):
    """Fields every event carries.

    `seq` and `epoch` come first after the tag on purpose: the Redis hub splices the sequence
    number it assigns, and its log's epoch, into the encoded event without re-encoding it (see
    `gateway.hub.wire`). `seq` is 0
    until the hub assigns it, and stays 0 on ephemeral events (`signal`), which are never stored.
    `at` is ISO 8601 UTC with milliseconds and a `Z` (see `format_at`).

    Events, parties and contents are `gc=False`: they hold JSON values only (strings, numbers,
    dicts and lists from a decoder), so they can never be part of a reference cycle, and the
    collector need not track the hundreds of thousands a second ingest makes.
    """

    seq: int = 0
    epoch: str = ""
    """The epoch of the log that stored it: a log that restarts (its store lost it) gets a new
    one, and its seqs start again at 1."""
    id: str
    conversation_id: str
    dialect: str
    at: str
    metadata: dict[str, Any] = {}


class Message(_Event, tag="message", kw_only=True):
    sender: Party
    content: Content
    reply_to: str | None = None


class Typing(_Event, tag="typing", kw_only=True):
    sender: Party
    active: bool
    preview: str | None = None


class Receipt(_Event, tag="receipt", kw_only=True):
    """`message_id` names one message; `up_to` means every message up to that one (or time)."""

    sender: Party
    status: ReceiptStatus
    message_id: str | None = None
    up_to: str | None = None


class ParticipantJoined(_Event, tag="participant_joined", kw_only=True):
    participant: Party


class ParticipantLeft(_Event, tag="participant_left", kw_only=True):
    participant: Party


class Status(_Event, tag="status", kw_only=True):
    status: SessionStatus
    wait_s: float | None = None


class Ended(_Event, tag="ended", kw_only=True):
    reason: EndReason
    by: EndedBy | None = None
    text: str | None = None


class Link(_Event, tag="link", kw_only=True):
    """The state of the gateway's (or the platform client's) link to the vendor."""

    state: LinkState
    reason: str | None = None
    will_retry: bool | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    missed: int | None = None


class Form(_Event, tag="form", kw_only=True):
    request_id: str
    name: str
    timeout_s: float | None = None


class Notice(_Event, tag="notice", kw_only=True):
    kind: NoticeKind
    text: str


class Signal(_Event, tag="signal", kw_only=True):
    """Opaque peer-to-peer data (e.g. WebRTC signaling): fanned out, never stored."""

    data: Any
    sender: Party | None = None


class Availability(_Event, tag="availability", kw_only=True):
    online: bool
    wait_s: float | None = None


class Error(_Event, tag="error", kw_only=True):
    code: str
    message: str
    recoverable: bool = False


Event: TypeAlias = (
    Message
    | Typing
    | Receipt
    | ParticipantJoined
    | ParticipantLeft
    | Status
    | Ended
    | Link
    | Form
    | Notice
    | Signal
    | Availability
    | Error
)

EPHEMERAL: tuple[type[_Event], ...] = (Signal,)
"""Event types that are fanned out but never stored nor sequenced."""


# ---------------------------------------------------------------------------------------------
# Commands (tag `op`): what a frontend asks of a vendor session


class _Command(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    """`ref` is the caller's idempotency key: a command repeated with the same ref acts once.
    `traceparent` (W3C trace context) makes the gateway's spans for it children of the
    caller's, when tracing is on (the HTTP form takes the header instead)."""

    ref: str | None = None
    traceparent: str | None = None


class Participant(msgspec.Struct, omit_defaults=True, frozen=True, rename={"from_": "from"}):
    """The end user a conversation is started for (`from` is their identifier)."""

    from_: str
    from_type: IdentityType = "name"
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    to: str | None = None
    to_type: IdentityType | None = None


class Start(_Command, tag="start", kw_only=True):
    dialect: str
    participant: Participant
    agent_id: str | None = None
    locale: str = "en-US"
    subject: str | None = None
    metadata: dict[str, Any] = {}


class Recover(_Command, tag="recover", kw_only=True):
    conversation: str


class Send(_Command, tag="send", kw_only=True):
    conversation: str
    content: Content
    metadata: dict[str, Any] = {}


class SetTyping(_Command, tag="typing", kw_only=True):
    conversation: str
    active: bool = True
    preview: str | None = None


class MarkRead(_Command, tag="read", kw_only=True):
    """Mark messages read; `up_to` is a canonical message id (all when omitted)."""

    conversation: str
    up_to: str | None = None


class End(_Command, tag="end", kw_only=True):
    conversation: str


class Forward(_Command, tag="forward", kw_only=True):
    conversation: str
    destination: str


class FetchHistory(_Command, tag="history", kw_only=True):
    """Read the platform's own history of the conversation (dialects with the `history`
    capability): `limit` events from `cursor` (the newest when omitted), answered with a
    `history` page whose `next` cursor goes back in time and `prev` forward."""

    conversation: str
    cursor: str | None = None
    limit: int = 50


Command: TypeAlias = Start | Recover | Send | SetTyping | MarkRead | End | Forward | FetchHistory


# ---------------------------------------------------------------------------------------------
# Codecs, built once

event_encoder = msgspec.json.Encoder()
event_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
events_decoder: msgspec.json.Decoder[list[Event]] = msgspec.json.Decoder(list[Event])
command_decoder: msgspec.json.Decoder[Command] = msgspec.json.Decoder(Command)


def format_at(moment: datetime) -> str:
    """`moment` as the canonical timestamp: UTC, milliseconds, `Z` (naive means UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def _system_clock() -> str:
    return format_at(datetime.now(UTC))


clock: Callable[[], str] = _system_clock
"""What "now" is, as a canonical timestamp: `now_at`, and so every decoder stamping a frame
that carries no time, reads it at each call. Where tests freeze time: set it."""


def now_at() -> str:
    """The current time as a canonical timestamp: `clock()`."""
    return clock()


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every event and command (served at `GET /v1/schema`)."""
    (event_schema, command_schema), components = msgspec.json.schema_components(
        [Event, Command], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Chat dialect gateway canonical model",
        "$defs": components,
        "properties": {"event": event_schema, "command": command_schema},
    }
