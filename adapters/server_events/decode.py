"""`server_events` decoding: a body of server events → canonical events. Pure: no I/O, no logs.

A body is one frame, an array of frames, or the long-poll/history envelope `{"events": [...]}`.
Frames carry no chat id, so the caller names the native chat (`conversation`). Ids:
`"server_events:<chat_id>"` for the conversation, `"<conv>/<msg_id>"` for frames the platform
identifies (messages, files, located messages, signaling), otherwise a `gateway.codec.derived_id`
of the frame's own fields, so re-posting the same frames deduplicates.

What one frame does not say comes from the conversation's context (`gateway.context`):

- who a party is. The client's own lines carry `party_id` equal to the chat id (the iOS SDK's
  `ContactCenterEvent.chatSessionMessage`: "Client party ID always matches the chat ID"), or no
  `party_id` at all: role `user`. Any other party has the role it announced when it joined
  (`chat_session_party_joined` type scenario → bot, internal → agent, external → external),
  given by `context.roles` or learned earlier in the same body; `agent` when no join was seen.
  `read` returns the roles the body announced (`Reading.learned`), for the caller to keep.
- where received files are fetched (`file_url`, a template with `{file_id}`), when frames
  without a timestamp happened (`received_at`, and `Untimed` for their ids).

`decode` is the adapter's whole-or-nothing contract (a webhook body); `read` is the same
decoding with the context in and out and, for a connector's poll, per-frame isolation
(`isolate=True`: a bad frame becomes an error in `Reading.errors`, the good ones are kept).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import msgspec

from adapters.server_events import native as n
from adapters.server_events.native import DIALECT
from gateway.adapter import Decoded
from gateway.codec import invalid, joined_id, tag_reader, to_at, unparsable
from gateway.context import EMPTY, ConversationContext
from gateway.errors import DecodeError, MalformedJSON, RequestError
from gateway.model import (
    Content,
    Ended,
    Event,
    File,
    Form,
    Image,
    Location,
    Message,
    Notice,
    ParticipantJoined,
    ParticipantLeft,
    Party,
    Receipt,
    ReceiptStatus,
    Role,
    SessionStatus,
    Signal,
    Status,
    Text,
    Typing,
    now_at,
)

E = TypeVar("E", bound=Event)

USER = Party(role="user")
"""The client's own party (the same for lines with no `party_id` and with the chat id)."""

ROLES: dict[str | None, Role] = {
    "internal": "agent",
    "scenario": "bot",
    "external": "external",
    None: "agent",  # a join without `type` (the SDKs require one): a human agent, as before
}
STATUSES: dict[str, SessionStatus] = {
    "queued": "queued",
    "ivr": "queued",
    "connecting": "connecting",
    "connected": "active",
    "completed": "completed",
    "failed": "failed",
}


class Reading(NamedTuple):
    """What `read` makes of a body."""

    events: list[Event]
    ignored: int
    """Frames skipped because their event name is unknown (client-only events in history)."""
    learned: ConversationContext
    """The roles the body's joins announced (empty when none)."""
    errors: list[DecodeError]
    """With `isolate=True`, the frames that could not be decoded (their `index` and `path`)."""


def decode(body: bytes | str, conversation: str | None = None) -> Decoded:
    """Decode a webhook body, all or nothing, without a conversation's context.

    Raises `MalformedJSON` (not JSON, not UTF-8, nested too deeply), `DecodeError` with the
    frame's `index` and `path`, and `RequestError` naming `conversation` when a body with known
    events comes without it. Unknown event names are counted in `Decoded.ignored`.
    """
    reading = read(body, conversation)
    return Decoded(reading.events, reading.ignored)


def read(
    body: bytes | str,
    conversation: str | None,
    context: ConversationContext = EMPTY,
    *,
    file_url: str | None = None,
    received_at: str | None = None,
    untimed: Untimed | None = None,
    isolate: bool = False,
) -> Reading:
    """Decode a body of server events for native chat `conversation` in its `context`.

    Raises what `decode` raises; with `isolate`, only for the body as a whole (not JSON, no
    conversation): a frame that breaks its schema is reported in `Reading.errors` instead and
    the others are decoded. `untimed` is where the stream stands for frames without a
    timestamp (see `Untimed`); a fresh one when omitted, so one body always decodes the same.
    """
    try:
        raws = _raw_frames(body)
        frames: list[tuple[int, n.ServerEvent]] = []
        errors: list[DecodeError] = []
        ignored = 0
        for index, raw in enumerate(raws):
            try:
                name = _name_of(raw)
                if type(name) is str and name not in n.EVENT_NAMES:
                    ignored += 1
                    continue
                frames.append((index, _frame.decode(raw)))
            except msgspec.ValidationError as exc:
                errors.append(invalid(exc, index))
                if not isolate:
                    raise errors[-1] from None
    except (RecursionError, UnicodeDecodeError) as exc:
        raise unparsable(exc) from None
    if frames and not conversation:
        raise RequestError(
            "server_events frames carry no chat id: the `conversation` parameter is required",
            parameter="conversation",
        )
    scope = _Scope(conversation or "", context, file_url, received_at, untimed)
    typed = [frame for _, frame in frames]
    events: list[Event] = []
    for position, (index, frame) in enumerate(frames):
        try:
            events.append(scope.build(frame, typed, position))
        except _Bad as exc:
            errors.append(exc.at(index))
            if not isolate:
                raise errors[-1] from None
    return Reading(events, ignored, scope.learned(), errors)


_body = msgspec.json.Decoder(list[msgspec.Raw] | dict[str, msgspec.Raw])
_envelope_events = msgspec.json.Decoder(list[msgspec.Raw])
_frame = msgspec.json.Decoder(n.ServerEvent)
_name_of = tag_reader("event")


def _raw_frames(body: bytes | str) -> Sequence[msgspec.Raw]:
    """The body's frames, each undecoded: an array's items, an envelope's `events` (an object
    with `events` and no `event`), or the body itself (any other object, one frame)."""
    if isinstance(body, bytes) and not body.isascii():
        try:  # a typed decode skips unknown keys unread: a bad byte there would pass unseen
            body.decode()
        except UnicodeDecodeError:
            raise MalformedJSON("body is not valid UTF-8") from None
    try:
        shape = _body.decode(body)
    except msgspec.ValidationError as exc:  # a scalar: no frame at all
        raise invalid(exc, 0) from None
    except msgspec.DecodeError as exc:
        raise MalformedJSON(f"body is not valid JSON: {exc}") from None
    if isinstance(shape, list):
        return shape
    if "events" in shape and "event" not in shape:
        try:
            return _envelope_events.decode(shape["events"])
        except msgspec.ValidationError as exc:
            raise invalid(exc, 0, "$.events") from None
    return [msgspec.Raw(body)]


class _Bad(Exception):
    """A field of the right JSON type but no meaning (a timestamp that is no time, …)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path

    def at(self, index: int) -> DecodeError:
        return DecodeError(f"frame {index}: {self} at {self.path}", index=index, path=self.path)


class Untimed:
    """Where a stream of server events stands, for the ids of frames without a timestamp.

    Such a frame's derived id must not depend on when it was received (a re-posted body must
    deduplicate), nor collide with an equal frame that legitimately comes again (the agent
    types twice). So it is placed after the last message the stream carried (its `msg_id`:
    messages, files and located messages, which poll and history both return) and counted
    among the equal frames since then: `~<msg_id>#<n>`. The connector keeps one per session
    for its polls, and replaces it with the one a full history decode ends with.
    """

    __slots__ = ("_after", "_counts")

    def __init__(self) -> None:
        self._after = ""
        self._counts: dict[bytes, int] = {}

    def place(self, frame: n.ServerEvent) -> str:
        """The stand-in for the time of untimed `frame` (and count it)."""
        key = _frame_key.encode(frame)
        seen = self._counts.get(key, 0)
        self._counts[key] = seen + 1
        return f"~{self._after}#{seen}"

    def anchor(self, msg_id: n.NativeId | None) -> None:
        """A message with `msg_id` went by: later untimed frames count from there."""
        if msg_id is not None and str(msg_id) != self._after:
            self._after = str(msg_id)
            self._counts.clear()


_frame_key = msgspec.json.Encoder()
_ANCHORS = (n.ChatMessage, n.ChatFile, n.ChatLocation)
"""The frames that carry a `msg_id` an untimed frame is placed after."""


class _Scope:
    """One body's decoding: the conversation, what is known of its parties, the stream's place."""

    def __init__(
        self,
        chat_id: str,
        context: ConversationContext,
        file_url: str | None,
        received_at: str | None,
        untimed: Untimed | None,
    ) -> None:
        self.chat_id = chat_id
        self.conv = f"{DIALECT}:{chat_id}"
        self.context = context
        self.file_url = file_url
        self.received_at = received_at
        self.untimed = untimed
        self.announced: dict[str, Role] = {}
        self.at = self.when = ""

    def learned(self) -> ConversationContext:
        return ConversationContext(roles=self.announced) if self.announced else EMPTY

    def build(self, frame: n.ServerEvent, frames: list[n.ServerEvent], position: int) -> Event:
        """The event of `frame`, the `position`-th decoded frame of `frames`."""
        stamp = frame.timestamp
        if stamp is not None and stamp != "":
            try:
                self.at = self.when = to_at(stamp)
            except (ValueError, OverflowError, OSError):
                raise _Bad("$.timestamp", f"not a timestamp: {stamp!r}") from None
        else:
            if self.received_at is None:
                self.received_at = now_at()  # once per body: untimed frames share one instant
            self.at = self.received_at
            if self.untimed is None:  # the first untimed frame of a fresh stream
                self.untimed = Untimed()
                self.untimed.anchor(_last_msg_id(frames, position))
            self.when = self.untimed.place(frame)
        if self.untimed is not None and isinstance(frame, _ANCHORS):
            self.untimed.anchor(frame.msg_id)
        return _BUILDERS[type(frame)](frame, self)

    def sender(self, party_id: str | None) -> Party:
        """Who a frame is from: the client (no party, or the chat id), else the party with the
        role it announced (in this body, or in the conversation's context), else an agent."""
        if party_id is None or party_id == self.chat_id:
            return USER
        role = self.announced.get(party_id) or self.context.role_of(party_id) or "agent"
        return Party(role=role, id=party_id)

    def derived(self, *parts: object) -> str:
        return joined_id(self.conv, "\x1f".join(str(p) for p in parts))

    def event(self, event_type: type[E], /, **fields: Any) -> E:
        """An event of `event_type` in this conversation at the current frame's time."""
        return event_type(conversation_id=self.conv, dialect=DIALECT, at=self.at, **fields)


def _last_msg_id(frames: Sequence[n.ServerEvent], stop: int) -> n.NativeId | None:
    """The `msg_id` of the last message before `frames[stop]` that has one: where a fresh
    stream's first untimed frame is placed."""
    for frame in reversed(frames[:stop]):
        if isinstance(frame, _ANCHORS) and frame.msg_id is not None:
            return frame.msg_id
    return None


def _number(value: str | float | None, path: str) -> float | None:
    """A number the platform may send as a string ("" and None: absent)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise _Bad(path, f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise _Bad(path, f"not a number: {value!r}")
    return number


def _coordinate(value: str | float, path: str) -> float:
    number = _number(value, path)
    if number is None:
        raise _Bad(path, "a location needs both coordinates")
    return number


# One builder per native event: (frame, scope) → event. Events the platform identifies take
# `<conv>/<msg_id>`; the others a derived id of their own fields, with `scope.when` (the
# frame's time, or its place in the stream) where the same frame may legitimately come twice.


def _message(f: n.ChatMessage, s: _Scope) -> Event:
    # `msg_text` is the plain text the server makes of `msg` (which may be HTML): the text.
    text = f.msg_text if f.msg_text is not None else f.msg
    if text is None:
        raise _Bad("$.msg", "a message needs `msg` or `msg_text`")
    html = f.msg if f.msg_text is not None and f.msg not in (None, f.msg_text) else None
    sender = s.sender(f.party_id)
    if f.msg_id is None:
        eid = s.derived("chat_session_message", s.when, sender.id, text)
    else:
        eid = f"{s.conv}/{f.msg_id}"
    return s.event(
        Message,
        id=eid,
        sender=sender,
        content=Text(text),
        metadata={"html": html} if html is not None else {},
    )


def _typing(name: str, active: bool) -> Callable[[n.Typing | n.NotTyping, _Scope], Event]:
    def build(f: n.Typing | n.NotTyping, s: _Scope) -> Event:
        sender = s.sender(f.party_id)
        eid = s.derived(name, s.when, sender.id)
        return s.event(Typing, id=eid, sender=sender, active=active)

    return build


def _status(f: n.SessionStatus, s: _Scope) -> Event:
    return s.event(
        Status,
        id=s.derived("chat_session_status", s.when, f.state),
        status=STATUSES[f.state],
        wait_s=_number(f.ewt, "$.ewt"),
    )


def _joined(f: n.PartyJoined, s: _Scope) -> Event:
    name = f.display_name or " ".join(p for p in (f.first_name, f.last_name) if p) or None
    role = ROLES[f.type]
    if f.party_id != s.chat_id:
        s.announced[f.party_id] = role
    return s.event(
        ParticipantJoined,
        id=s.derived("chat_session_party_joined", s.when, f.party_id),
        participant=Party(role=role, id=f.party_id, name=name),
    )


def _left(f: n.PartyLeft, s: _Scope) -> Event:
    return s.event(
        ParticipantLeft,
        id=s.derived("chat_session_party_left", s.when, f.party_id),
        participant=s.sender(f.party_id),
    )


def _ended(f: n.SessionEnded, s: _Scope) -> Event:
    return s.event(Ended, id=s.derived("chat_session_ended", s.when), reason="completed")


def _inactivity(f: n.InactivityTimeout, s: _Scope) -> Event:
    return s.event(
        Ended,
        id=s.derived("chat_session_inactivity_timeout", s.when),  # one id for both spellings
        reason="inactivity",
        by="system",
        text=f.msg or None,
    )


def _warning(f: n.TimeoutWarning, s: _Scope) -> Event:
    return s.event(
        Notice,
        id=s.derived("chat_session_timeout_warning", s.when, f.msg),
        kind="inactivity_warning",
        text=f.msg,
    )


def _form(f: n.FormShow, s: _Scope) -> Event:
    return s.event(
        Form,
        id=s.derived("chat_session_form_show", f.form_request_id),
        request_id=str(f.form_request_id),
        name=f.form_name,
        timeout_s=_number(f.form_timeout, "$.form_timeout"),
    )


def _signal(f: n.Signaling, s: _Scope) -> Event:
    return s.event(Signal, id=f"{s.conv}/{f.msg_id}", data=f.data, sender=s.sender(f.party_id))


def _file(f: n.ChatFile, s: _Scope) -> Event:
    if not f.file_id:
        raise _Bad("$.file_id", "a file needs a `file_id`")
    url = s.file_url.replace("{file_id}", f.file_id) if s.file_url else None
    content: Content = (
        Image(url=url, file_id=f.file_id, file_name=f.file_name)
        if f.file_type == "image"
        else File(url=url, file_id=f.file_id, file_name=f.file_name)
    )
    return s.event(Message, id=f"{s.conv}/{f.msg_id}", sender=s.sender(f.party_id), content=content)


def _location(f: n.ChatLocation, s: _Scope) -> Event:
    latitude = _coordinate(f.latitude, "$.latitude")
    longitude = _coordinate(f.longitude, "$.longitude")
    sender = s.sender(f.party_id)
    if f.msg_id is None:
        eid = s.derived("chat_session_location", s.when, sender.id, latitude, longitude)
    else:
        eid = f"{s.conv}/{f.msg_id}"
    content = Location(latitude=latitude, longitude=longitude, url=f.url)
    return s.event(Message, id=eid, sender=sender, content=content)


def _case(f: n.CaseSet, s: _Scope) -> Event:
    return s.event(
        Notice,
        id=s.derived("chat_session_case_set", f.case_id),
        kind="info",
        text=f"case {f.case_id}",
        metadata={"case_id": str(f.case_id)},
    )


def _receipt(name: str, status: ReceiptStatus) -> Callable[[n.MessageDelivered, _Scope], Event]:
    def build(f: n.MessageDelivered, s: _Scope) -> Event:
        sender = s.sender(f.party_id)
        ref = f.ref_msg_id
        # Without a reference (iOS types it optional) only its time tells two receipts apart.
        eid = s.derived(name, ref, sender.id) if ref is not None else s.derived(name, s.when)
        return s.event(
            Receipt,
            id=eid,
            sender=sender,
            status=status,
            message_id=None if ref is None else f"{s.conv}/{ref}",
        )

    return build


_BUILDERS: dict[type[Any], Callable[[Any, _Scope], Event]] = {
    n.ChatMessage: _message,
    n.Typing: _typing("chat_session_typing", active=True),
    n.NotTyping: _typing("chat_session_not_typing", active=False),
    n.SessionStatus: _status,
    n.PartyJoined: _joined,
    n.PartyLeft: _left,
    n.SessionEnded: _ended,
    n.InactivityTimeout: _inactivity,
    n.InactvityTimeout: _inactivity,
    n.TimeoutWarning: _warning,
    n.FormShow: _form,
    n.Signaling: _signal,
    n.ChatFile: _file,
    n.ChatLocation: _location,
    n.CaseSet: _case,
    n.MessageDelivered: _receipt("chat_session_message_delivered", "delivered"),
    n.MessageRead: _receipt("chat_session_message_read", "read"),
}
assert set(_BUILDERS) == set(n.ServerEvent.__args__)
