"""The `server_events` dialect's native frames (Bright Pattern-style Mobile/Web chat API).

Private to the adapter. Server events arrive one frame at a time, as an array, or in the
long-poll envelope `{"events": [...]}`; none of them carries the chat id (it is in the URL
`chats/{chatId}/events`, or the ingest `?conversation=` parameter). The tag is `event`:

    {"event": "chat_session_message", "party_id": "p1", "msg_id": "m1", "msg": "hi",
     "timestamp": "1700000000123"}

`timestamp` is documented as epoch milliseconds; the vendor SDKs also decode strings of epoch
seconds, so every frame accepts a number or a string (and ISO 8601). The seed documents no
timestamp on some events (status, typing, form, signaling); we accept one on every frame.

Where the vendor's own SDKs (ServicePattern/MobileAPI_IOS `Model/Event/HttpResponseDto/*.swift`,
ServicePattern/MobileAPI_Android `entity/ContactCenterEvent.kt`) type a field more loosely than
the seed, the Struct follows the SDKs: `msg_id` of a message and `ref_msg_id` of a receipt are
optional (iOS `String?`), `latitude`/`longitude` are numbers or numeric strings (iOS decodes
strings, Android decodes leniently), a form may name its `channel` (Android).

Client events (what the gateway sends in `POST chats/{chatId}/events`) are the `Client*`
Structs at the bottom; they encode to the platform's JSON with `to_builtins`.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypeAlias

import msgspec

from gateway.decoding import Refused
from gateway.model import Party, Role
from gateway.model import SessionStatus as CanonicalStatus

DIALECT = "server_events"
"""The dialect's name: its URL segment and conversation-id prefix."""

Stamp: TypeAlias = str | int | float | None
NativeId: TypeAlias = str | int

# ---------------------------------------------------------------------------------------------
# Server events (platform → client)


class _Server(msgspec.Struct, tag_field="event", kw_only=True, gc=False):
    timestamp: Stamp = None


class SessionStatus(_Server, tag="chat_session_status"):
    """`ewt` is the estimated wait in seconds (documented as free text: a number or a string)."""

    state: Literal["queued", "connecting", "connected", "failed", "completed", "ivr"]
    ewt: str | float | None = None


class SessionEnded(_Server, tag="chat_session_ended"):
    pass


class PartyJoined(_Server, tag="chat_session_party_joined"):
    party_id: str
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    type: Literal["scenario", "external", "internal"] | None = None


class PartyLeft(_Server, tag="chat_session_party_left"):
    party_id: str


class ChatMessage(_Server, tag="chat_session_message"):
    """`msg` per the seed (HTML on platforms that format); `msg_text` is its plain text, which
    the server makes from the HTML (iOS SDK CHANGELOG 0.1.6). The client's own lines carry
    `party_id` equal to the chat id in history, or none."""

    msg_id: NativeId | None = None
    party_id: str | None = None
    msg: str | None = None
    msg_text: str | None = None


class Typing(_Server, tag="chat_session_typing"):
    party_id: str | None = None


class NotTyping(_Server, tag="chat_session_not_typing"):
    party_id: str | None = None


class FormShow(_Server, tag="chat_session_form_show"):
    form_request_id: NativeId
    form_name: str
    form_timeout: str | float | None = None
    channel: str | None = None


class TimeoutWarning(_Server, tag="chat_session_timeout_warning"):
    msg: str = ""


class InactivityTimeout(_Server, tag="chat_session_inactivity_timeout"):
    """The vendor SDKs' spelling."""

    msg: str = ""


class InactvityTimeout(InactivityTimeout, tag="chat_session_inactvity_timeout"):
    """The seed's spelling (sic): same frame, accepted too."""


class Signaling(_Server, tag="chat_session_signaling"):
    """WebRTC signaling; `data` is opaque (a string or an object). Never stored in history."""

    msg_id: NativeId
    party_id: str | None = None
    destination_party_id: str | None = None
    data: Any = None


class ChatFile(_Server, tag="chat_session_file"):
    msg_id: NativeId
    file_id: str
    party_id: str | None = None
    file_type: Literal["image", "attachment"] = "attachment"
    file_name: str | None = None


class ChatLocation(_Server, tag="chat_session_location"):
    """Not in the seed (DIALECTS.md); `msg_id`/`party_id` are optional. Coordinates arrive as
    numbers or as numeric strings (the iOS SDK's `ChatSessionLocationDto` decodes strings)."""

    latitude: float | str
    longitude: float | str
    url: str | None = None
    msg_id: NativeId | None = None
    party_id: str | None = None


class CaseSet(_Server, tag="chat_session_case_set"):
    case_id: NativeId


class MessageDelivered(_Server, tag="chat_session_message_delivered"):
    ref_msg_id: NativeId | None = None
    party_id: str | None = None


class MessageRead(MessageDelivered, tag="chat_session_message_read"):
    pass


ServerEvent: TypeAlias = (
    SessionStatus
    | SessionEnded
    | PartyJoined
    | PartyLeft
    | ChatMessage
    | Typing
    | NotTyping
    | FormShow
    | TimeoutWarning
    | InactivityTimeout
    | InactvityTimeout
    | Signaling
    | ChatFile
    | ChatLocation
    | CaseSet
    | MessageDelivered
    | MessageRead
)

EVENT_NAMES: frozenset[str] = frozenset(str(t.__struct_config__.tag) for t in ServerEvent.__args__)


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """The long-poll and history response: `{"events": [...]}`, each frame read on its own."""

    events: list[msgspec.Raw]


# ---------------------------------------------------------------------------------------------
# Client events (client → platform), sent as `{"events": [...]}`


class _Client(msgspec.Struct, tag_field="event", kw_only=True, omit_defaults=True):
    pass


class ClientMessage(_Client, tag="chat_session_message"):
    msg_id: str
    msg: str


class ClientTyping(_Client, tag="chat_session_typing"):
    pass


class ClientNotTyping(_Client, tag="chat_session_not_typing"):
    pass


class ClientFormData(_Client, tag="chat_session_form_data"):
    form_request_id: str
    form_name: str
    data: dict[str, Any]


class ClientEnd(_Client, tag="chat_session_end"):
    pass


class ClientDisconnect(_Client, tag="chat_session_disconnect"):
    pass


class ClientFile(_Client, tag="chat_session_file"):
    """Sent after `POST files`; `msg_id` is ours (see the docs page) so the echo dedups."""

    file_id: str
    file_type: Literal["image", "attachment"]
    msg_id: str
    file_name: str | None = None


class ClientLocation(_Client, tag="chat_session_location"):
    msg_id: str
    latitude: float
    longitude: float
    url: str | None = None


class ClientDelivered(_Client, tag="chat_session_message_delivered"):
    ref_msg_id: str


class ClientRead(_Client, tag="chat_session_message_read"):
    ref_msg_id: str


class ClientSignaling(_Client, tag="chat_session_signaling"):
    msg_id: str
    destination_party_id: str
    data: Any


ClientEvent: TypeAlias = (
    ClientMessage
    | ClientTyping
    | ClientNotTyping
    | ClientFormData
    | ClientEnd
    | ClientDisconnect
    | ClientFile
    | ClientLocation
    | ClientDelivered
    | ClientRead
    | ClientSignaling
)


class RequestChat(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`POST chats` body."""

    from_: str = msgspec.field(name="from")
    phone_number: str | None = None
    parameters: dict[str, Any] = {}


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error response: `{"error_code": "5005", "error_message": "..."}`."""

    error_code: str | int
    error_message: str = ""


# --- what the wire's roles, states and numbers mean ----------------------------------------

USER = Party(role="user")
"""The client's own party (the same for lines with no `party_id` and with the chat id)."""

ROLES: dict[str | None, Role] = {
    "internal": "agent",
    "scenario": "bot",
    "external": "external",
    None: "agent",  # a join without `type` (the SDKs require one): a human agent, as before
}
STATUSES: dict[str, CanonicalStatus] = {
    "queued": "queued",
    "ivr": "queued",
    "connecting": "connecting",
    "connected": "active",
    "completed": "completed",
    "failed": "failed",
}


def number(value: str | float | None, path: str) -> float | None:
    """A number the platform may send as a string ("" and None: absent)."""
    if value is None or value == "":
        return None
    try:
        parsed = float(value)
    except ValueError:
        raise Refused(f"not a number: {value!r}", path) from None
    if not math.isfinite(parsed):
        raise Refused(f"not a number: {value!r}", path)
    return parsed


def coordinate(value: str | float, path: str) -> float:
    found = number(value, path)
    if found is None:
        raise Refused("a location needs both coordinates", path)
    return found
