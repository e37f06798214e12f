"""`server_events` codec: native server events → canonical events, commands → native requests.

Pure: no I/O, no logging. `decode` takes one frame, an array of frames or the long-poll
envelope `{"events": [...]}`; frames carry no chat id, so the caller passes the native chat id
(`conversation`). Ids: `"server_events:<chat_id>"` for the conversation, `"<conv>/<msg_id>"` for
events the platform identifies (messages, files, signaling), a deterministic `derived_id` built
from the frame's own fields otherwise (so re-posting the same frames deduplicates).

Context the connector knows and a webhook does not is passed in explicitly: `parties` (who
joined, so a message names its sender's role and name), `file_url` (where received files
are fetched: a template with `{file_id}`), `received_at` (the `at` of untimed frames) and
`untimed` (where the stream stands, for the ids of untimed frames: see `Untimed`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from adapters.server_events import native as n
from gateway.adapter import Decoded, NativeRequest
from gateway.codec import conversation_id, convert_each, derived_id, loads, to_at
from gateway.errors import DecodeError, RequestError, SessionNotFound, Unsupported
from gateway.model import (
    Command,
    End,
    Ended,
    Event,
    File,
    Form,
    Image,
    Location,
    MarkRead,
    Message,
    Notice,
    ParticipantJoined,
    ParticipantLeft,
    Party,
    Receipt,
    Role,
    Send,
    SessionStatus,
    SetTyping,
    Signal,
    Start,
    Status,
    Text,
    Typing,
    Url,
    now_at,
)

DIALECT: Final = "server_events"
USER: Final = Party(role="user")
"""The client's own party: frames without `party_id` are the client's (history echoes them)."""

_ROLES: Final[dict[str | None, Role]] = {
    "internal": "agent",
    "scenario": "bot",
    "external": "external",
    None: "agent",
}
STATUSES: Final[dict[str, SessionStatus]] = {
    "queued": "queued",
    "ivr": "queued",
    "connecting": "connecting",
    "connected": "active",
    "completed": "completed",
    "failed": "failed",
}
_Parties = Mapping[str, Party]
_NO_PARTIES: Final[_Parties] = {}

_one_or_many = msgspec.json.Decoder(n.ServerEvent | list[n.ServerEvent])


class _Envelope(msgspec.Struct, frozen=True, gc=False):
    events: list[n.ServerEvent]


_envelope = msgspec.json.Decoder(_Envelope)


class _Bad(Exception):
    """A field that has the right JSON type but no meaning (e.g. a timestamp that is no time)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


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
_ANCHORS: Final = frozenset({n.ChatMessage, n.ChatFile, n.ChatLocation})


# ---------------------------------------------------------------------------------------------
# decode


def decode(
    body: bytes | str,
    conversation: str | None = None,
    *,
    parties: Mapping[str, Party] = _NO_PARTIES,
    file_url: str | None = None,
    received_at: str | None = None,
    untimed: Untimed | None = None,
) -> Decoded:
    """Decode a body of server events for native chat `conversation`.

    Raises `MalformedJSON` (not JSON), `DecodeError` with `index`/`path` (a known event that
    breaks its schema) and `RequestError` naming `conversation` when a body with known events
    comes without it. Unknown event names are counted in `Decoded.ignored`.
    """
    ignored = 0
    try:
        decoded = _one_or_many.decode(body)
        frames = decoded if type(decoded) is list else (decoded,)
    except (msgspec.ValidationError, msgspec.DecodeError):
        try:
            frames = _envelope.decode(body).events
        except (msgspec.ValidationError, msgspec.DecodeError):
            frames, ignored = convert_each(_frames_of(loads(body)), _convert)
    if not frames:
        return Decoded([], ignored)
    if not conversation:
        raise RequestError(
            "server_events frames carry no chat id: the `conversation` parameter is required",
            parameter="conversation",
        )
    events = to_events(frames, conversation, parties, file_url, received_at, untimed)
    return Decoded(events, ignored)


def _frames_of(body: Any) -> list[Any]:
    if isinstance(body, dict) and "event" not in body and "events" in body:
        frames = body["events"]
        if not isinstance(frames, list):
            raise DecodeError("`events` must be an array", index=0, path="$.events")
        return frames
    return body if isinstance(body, list) else [body]


def _convert(frame: Any, index: int) -> n.ServerEvent | None:
    if isinstance(frame, dict):
        name = frame.get("event")
        if isinstance(name, str) and name not in n.EVENT_NAMES:
            return None  # an event this dialect does not know: ignored, counted
    return msgspec.convert(frame, n.ServerEvent)  # type: ignore[no-any-return]


def to_events(
    frames: Sequence[n.ServerEvent],
    chat_id: str,
    parties: Mapping[str, Party] = _NO_PARTIES,
    file_url: str | None = None,
    received_at: str | None = None,
    untimed: Untimed | None = None,
) -> list[Event]:
    """The canonical events of already typed frames of chat `chat_id`, in order.

    `untimed` is where the stream stands for frames without a timestamp (see `Untimed`); a
    fresh one (the start of a stream) when omitted, so one body always decodes the same.
    """
    conv = f"{DIALECT}:{chat_id}"  # gateway.codec.conversation_id, inlined: hot path
    known = parties
    after: n.NativeId | None = None  # the last message's msg_id, until an `Untimed` is needed
    out: list[Event] = []
    for index, frame in enumerate(frames):
        kind = type(frame)
        try:
            stamp = frame.timestamp
            if stamp is None or stamp == "":
                if received_at is None:
                    received_at = now_at()  # once per batch: untimed frames share one instant
                at = received_at
                if untimed is None:  # only bodies with untimed frames pay for one
                    untimed = Untimed()
                    untimed.anchor(after)
                when = untimed.place(frame)
            else:
                try:
                    at = when = to_at(stamp)
                except (ValueError, OverflowError, OSError):
                    raise _Bad("$.timestamp", f"not a timestamp: {stamp!r}") from None
            if kind in _ANCHORS:
                if untimed is not None:
                    untimed.anchor(frame.msg_id)  # type: ignore[union-attr]
                elif frame.msg_id is not None:  # type: ignore[union-attr]
                    after = frame.msg_id  # type: ignore[union-attr]
            event = _BUILDERS[kind](frame, conv, at, when, known, file_url)
        except _Bad as exc:
            msg = f"frame {index}: {exc} at {exc.path}"
            raise DecodeError(msg, index=index, path=exc.path) from None
        if type(event) is ParticipantJoined and event.participant.id is not None:
            if known is parties:
                known = dict(parties)  # later frames of this batch know the new party
            known[event.participant.id] = event.participant  # type: ignore[index]
        out.append(event)
    return out


def _seconds(value: str | float | None, path: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise _Bad(path, f"not a number of seconds: {value!r}") from None
    if not math.isfinite(seconds):
        raise _Bad(path, f"not a number of seconds: {value!r}")
    return seconds


def _sender(party_id: str | None, known: Mapping[str, Party]) -> Party:
    if party_id is None:
        return USER
    return known.get(party_id) or _AGENTS.get(party_id) or _agent(party_id)


# One builder per native event: (frame, conversation id, at, known parties, file base) → event.
# Events the platform identifies take `<conv>/<msg_id>`; the others a `derived_id` of their
# own fields, with `at` where the same frame may legitimately happen twice (typing, joins).


def _message(
    f: n.ChatMessage, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    text = f.msg if f.msg is not None else f.msg_text
    if text is None:
        raise _Bad("$.msg", "a message needs `msg` or `msg_text`")
    pid = f.party_id
    sender = USER if pid is None else known.get(pid) or _AGENTS.get(pid) or _agent(pid)
    return Message(
        id=f"{conv}/{f.msg_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=sender,
        content=Text(text),
    )


def _agent(party_id: str) -> Party:
    """An agent we know only by id (Parties are frozen: one per id is shared)."""
    if len(_AGENTS) >= 1024:
        _AGENTS.clear()
    party = _AGENTS[party_id] = Party(role="agent", id=party_id)
    return party


_AGENTS: dict[str, Party] = {}


def _typing(
    f: n.Typing | n.NotTyping, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    name = f.__struct_config__.tag
    return Typing(
        id=derived_id(conv, name, when, f.party_id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_sender(f.party_id, known),
        active=type(f) is n.Typing,
    )


def _status(
    f: n.SessionStatus, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    return Status(
        id=derived_id(conv, "chat_session_status", when, f.state),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        status=STATUSES[f.state],
        wait_s=_seconds(f.ewt, "$.ewt"),
    )


def _joined(
    f: n.PartyJoined, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    full = " ".join(p for p in (f.first_name, f.last_name) if p)
    party = Party(role=_ROLES[f.type], id=f.party_id, name=f.display_name or full or None)
    return ParticipantJoined(
        id=derived_id(conv, "chat_session_party_joined", when, f.party_id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=party,
    )


def _left(f: n.PartyLeft, conv: str, at: str, when: str, known: _Parties, _: str | None) -> Event:
    return ParticipantLeft(
        id=derived_id(conv, "chat_session_party_left", when, f.party_id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=_sender(f.party_id, known),
    )


def _ended(
    f: n.SessionEnded, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    return Ended(
        id=derived_id(conv, "chat_session_ended", when),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason="completed",
    )


def _inactivity(
    f: n.InactivityTimeout, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    return Ended(
        id=derived_id(conv, "chat_session_inactivity_timeout", when),  # one id for both spellings
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason="inactivity",
        by="system",
        text=f.msg or None,
    )


def _warning(
    f: n.TimeoutWarning, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    return Notice(
        id=derived_id(conv, "chat_session_timeout_warning", when, f.msg),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="inactivity_warning",
        text=f.msg,
    )


def _form(f: n.FormShow, conv: str, at: str, when: str, known: _Parties, _: str | None) -> Event:
    return Form(
        id=derived_id(conv, "chat_session_form_show", f.form_request_id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        request_id=str(f.form_request_id),
        name=f.form_name,
        timeout_s=_seconds(f.form_timeout, "$.form_timeout"),
    )


def _signal(f: n.Signaling, conv: str, at: str, when: str, known: _Parties, _: str | None) -> Event:
    return Signal(
        id=f"{conv}/{f.msg_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        data=f.data,
        sender=_sender(f.party_id, known),
    )


def _file(
    f: n.ChatFile, conv: str, at: str, when: str, known: _Parties, file_url: str | None
) -> Event:
    if not f.file_id:
        raise _Bad("$.file_id", "a file needs a `file_id`")
    url = file_url.replace("{file_id}", f.file_id) if file_url else None
    content: Image | File = (
        Image(url=url, file_id=f.file_id, file_name=f.file_name)
        if f.file_type == "image"
        else File(url=url, file_id=f.file_id, file_name=f.file_name)
    )
    return Message(
        id=f"{conv}/{f.msg_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_sender(f.party_id, known),
        content=content,
    )


def _location(
    f: n.ChatLocation, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    eid = (
        derived_id(conv, "chat_session_location", when, f.party_id, f.latitude, f.longitude)
        if f.msg_id is None
        else f"{conv}/{f.msg_id}"
    )
    return Message(
        id=eid,
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_sender(f.party_id, known),
        content=Location(latitude=f.latitude, longitude=f.longitude, url=f.url),
    )


def _case(f: n.CaseSet, conv: str, at: str, when: str, known: _Parties, _: str | None) -> Event:
    return Notice(
        id=derived_id(conv, "chat_session_case_set", f.case_id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="info",
        text=f"case {f.case_id}",
        metadata={"case_id": str(f.case_id)},
    )


def _receipt(
    f: n.MessageDelivered, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    read = type(f) is n.MessageRead
    return Receipt(
        id=derived_id(conv, f.__struct_config__.tag, f.ref_msg_id, f.party_id),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_sender(f.party_id, known),
        status="read" if read else "delivered",
        message_id=f"{conv}/{f.ref_msg_id}",
    )


_BUILDERS: Final[dict[type[Any], Callable[..., Event]]] = {
    n.ChatMessage: _message,
    n.Typing: _typing,
    n.NotTyping: _typing,
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
    n.MessageDelivered: _receipt,
    n.MessageRead: _receipt,
}
assert set(_BUILDERS) == set(n.ServerEvent.__args__)


# ---------------------------------------------------------------------------------------------
# encode

_MSG_NAMESPACE: Final = uuid.UUID("6f1d8a3e-3c1b-4f0e-9a53-5e7a2b1c9d04")


def encode(command: Command, session: Mapping[str, Any]) -> NativeRequest:
    """The native request for `command`; `session` is the connector's `snapshot()` (its
    `chat_id`, and `last_msg_id` for a read receipt without `up_to`).

    Raises `RequestError` for a command that breaks the contract and `Unsupported` for one the
    platform cannot carry (forward, recover, audio and action content).
    """
    if isinstance(command, Start):
        return request_chat(command)
    if not isinstance(command, Send | SetTyping | MarkRead | End):
        raise Unsupported(f"server_events cannot carry {command.__struct_config__.tag!r}")
    chat_id = _chat_of(command.conversation, session)
    if isinstance(command, Send):
        return events_request(chat_id, _send_event(command, chat_id))
    if isinstance(command, SetTyping):
        return events_request(chat_id, n.ClientTyping() if command.active else n.ClientNotTyping())
    if isinstance(command, MarkRead):
        return events_request(chat_id, n.ClientRead(ref_msg_id=_read_target(command, session)))
    return events_request(chat_id, n.ClientEnd())


def request_chat(command: Start) -> NativeRequest:
    """`POST chats`: the participant's identity and the command's metadata as parameters."""
    who = command.participant
    parameters: dict[str, Any] = {"locale": command.locale}
    for key, value in (("name", who.name), ("email", who.email), ("subject", command.subject)):
        if value is not None:
            parameters[key] = value
    phone = who.phone or (who.from_ if who.from_type == "phone" else None)
    body = n.RequestChat(
        from_=who.from_, phone_number=phone, parameters=parameters | command.metadata
    )
    return NativeRequest(method="POST", path="chats", json=msgspec.to_builtins(body))


def events_request(chat_id: str, *events: n.ClientEvent) -> NativeRequest:
    """`POST chats/{chatId}/events` carrying `events`."""
    return NativeRequest(
        method="POST",
        path=f"chats/{chat_id}/events",
        json={"events": [msgspec.to_builtins(e) for e in events]},
    )


def sent_msg_id(request: NativeRequest) -> str | None:
    """The `msg_id` the client chose in a request `encode` built (`None` for non-messages)."""
    events = request.json.get("events") if isinstance(request.json, dict) else None
    if events and isinstance(events[0], dict):
        msg_id = events[0].get("msg_id")
        return msg_id if isinstance(msg_id, str) else None
    return None


def _chat_of(conversation: str, session: Mapping[str, Any]) -> str:
    chat_id = session.get("chat_id")
    if not isinstance(chat_id, str) or not chat_id:
        raise SessionNotFound(f"no server_events chat for {conversation!r}")
    if conversation != conversation_id(DIALECT, chat_id):
        raise RequestError(
            f"command for {conversation!r} sent to session {conversation_id(DIALECT, chat_id)!r}",
            field="conversation",
        )
    return chat_id


def _msg_id(command: Send, chat_id: str) -> str:
    chosen = command.metadata.get("msg_id")
    if isinstance(chosen, str) and chosen:
        return chosen
    if command.ref:  # a retried command keeps its msg_id, so the platform and the hub dedup
        return uuid.uuid5(_MSG_NAMESPACE, f"{chat_id}/{command.ref}").hex
    return uuid.uuid4().hex


def _send_event(command: Send, chat_id: str) -> n.ClientEvent:
    content = command.content
    msg_id = _msg_id(command, chat_id)
    if isinstance(content, Text):
        if not content.text.strip():
            raise RequestError("a text message needs text", field="content.text")
        return n.ClientMessage(msg_id=msg_id, msg=content.text)
    if isinstance(content, Url):
        if not content.url:
            raise RequestError("a url message needs a url", field="content.url")
        text = f"{content.text} {content.url}" if content.text else content.url
        return n.ClientMessage(msg_id=msg_id, msg=text)
    if isinstance(content, Image | File):
        if not content.file_id:
            raise RequestError(
                "server_events sends files by `file_id`: upload the file first",
                field="content.file_id",
            )
        return n.ClientFile(
            file_id=content.file_id,
            file_type="image" if isinstance(content, Image) else "attachment",
            msg_id=msg_id,
            file_name=content.file_name,
        )
    if isinstance(content, Location):
        return n.ClientLocation(
            msg_id=msg_id, latitude=content.latitude, longitude=content.longitude, url=content.url
        )
    raise Unsupported(f"server_events cannot send {content.__struct_config__.tag!r} content")


def _read_target(command: MarkRead, session: Mapping[str, Any]) -> str:
    if command.up_to is None:
        last = session.get("last_msg_id")
        if not isinstance(last, str):
            raise RequestError("no message to mark read yet", field="up_to")
        return last
    prefix = f"{command.conversation}/"
    if not command.up_to.startswith(prefix) or len(command.up_to) == len(prefix):
        raise RequestError(
            f"`up_to` must be a message id of {command.conversation!r}", field="up_to"
        )
    return command.up_to[len(prefix) :]
