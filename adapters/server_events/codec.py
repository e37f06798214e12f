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

Decoding has two paths that give the same frames. The fast one (`_typed_frames`) picks the
body's form from its first byte and decodes it typed in one pass, frame by frame only where a
body mixes known and unknown events; it only ever answers with frames. (`decode` itself
takes the commonest body, one timed frame, straight to its builder.) Whenever it cannot
(a frame breaks its schema, the body is no JSON, an odd shape), the exact path
(`_exact_frames`: typed, then the envelope, then untyped frame by frame) decodes the body
again and raises the error with its `index` and `path`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from adapters.server_events import native as n
from gateway.adapter import Decoded, NativeRequest
from gateway.codec import (
    MILLIS_TAILS,
    MS_THRESHOLD,
    conversation_id,
    convert_each,
    decode_known,
    epoch_second_prefixes,
    is_utf8,
    joined_id,
    loads,
    tag_decoder,
    to_at,
    unparsable,
)
from gateway.errors import (
    DecodeError,
    GatewayError,
    RequestError,
    SessionNotFound,
    Unsupported,
)
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
    ReceiptStatus,
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
_Frames = tuple[Sequence[n.ServerEvent], int]
"""Typed frames in body order, and how many unknown frames were skipped."""


class _Bad(Exception):
    """A field that has the right JSON type but no meaning (e.g. a timestamp that is no time)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path

    def at(self, index: int) -> DecodeError:
        """The error `decode` raises for this field of frame `index`."""
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


_frame_key: Final = msgspec.json.Encoder()
_ANCHORS: Final = (n.ChatMessage, n.ChatFile, n.ChatLocation)
"""The frames that carry a `msg_id` an untimed frame is placed after."""


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

    Raises `MalformedJSON` (not JSON, bad UTF-8 inside a string, nesting too deep),
    `DecodeError` with `index`/`path` (a known event that breaks its schema) and `RequestError`
    naming `conversation` when a body with known events comes without it. Unknown event names
    are counted in `Decoded.ignored`. The adapter's `decode` is this function itself (one call
    less on ingest's path), so it keeps `Adapter.decode`'s whole contract.
    """
    # Most bodies are one timed frame, and platforms send its name first: decoded typed and
    # built right here, without the dispatch of `_typed_frames` nor the loop of `to_events`
    # (`{"event":` is no envelope, which starts `{"events":`). Any decode error goes the long
    # way, where the exact path names it; anything else (no conversation, an untimed frame)
    # goes through `to_events`, which alone places untimed frames.
    # Bad bytes a typed decode could skip unread: the exact path, which reads every string.
    fast = body if type(body) is bytes and (body.isascii() or is_utf8(body)) else None
    if fast is not None and fast.startswith(_FRAME_START):
        try:
            frame = _frame.decode(fast)
        except msgspec.ValidationError:  # an unknown event, or a frame breaking its schema
            typed = _object_frames(fast)
            frames, ignored = _exact_frames_of(body) if typed is None else typed
        except (ValueError, RecursionError):  # no JSON, bad UTF-8 (a ValueError), too deep
            frames, ignored = _exact_frames_of(body)
        else:
            stamp = frame.timestamp
            if stamp and conversation:  # a falsy stamp may be untimed (None, ""): the loop's
                try:
                    at = _frame_at(stamp)
                    kind = type(frame)
                    if untimed is not None and isinstance(frame, _ANCHORS):
                        untimed.anchor(frame.msg_id)
                    conv = _CONV + conversation
                    known = parties or _AGENTS  # as `to_events` looks senders up
                    event = _BUILDERS[kind](frame, conv, at, at, known, file_url)
                except _Bad as exc:
                    raise exc.at(0) from None
                return Decoded([event], 0)
            frames, ignored = (frame,), 0
    else:
        typed = _typed_frames(fast) if fast is not None else None
        frames, ignored = _exact_frames_of(body) if typed is None else typed
    if not frames:
        return Decoded([], ignored)
    if not conversation:
        raise RequestError(
            "server_events frames carry no chat id: the `conversation` parameter is required",
            parameter="conversation",
        )
    events = to_events(frames, conversation, parties, file_url, received_at, untimed)
    return Decoded(events, ignored)


def _exact_frames_of(body: bytes | str) -> _Frames:
    """`_exact_frames`, with what msgspec raises besides its own errors (`RecursionError`,
    `UnicodeDecodeError`) as the `MalformedJSON` the contract of `decode` names, and bad UTF-8
    anywhere (`_exact_frames` decodes typed first, skipping unknown keys unread) as well."""
    if not is_utf8(body):
        loads(body)  # raises: a bad byte in a string, or outside any, is no JSON text
    try:
        return _exact_frames(body)
    except (RecursionError, UnicodeDecodeError) as exc:
        raise unparsable(exc) from None


# The fast path's decoders. A Raw is a span of the body, decoded typed only where needed.
_frame: Final = msgspec.json.Decoder(n.ServerEvent)
_frame_list: Final = msgspec.json.Decoder(list[n.ServerEvent])
_raw_list: Final = msgspec.json.Decoder(list[msgspec.Raw])


_typed_envelope: Final = msgspec.json.Decoder(n.TypedEnvelope)
_probe: Final = msgspec.json.Decoder(n.EnvelopeProbe)
_ENVELOPE_START: Final = b'{"events":'
_FRAME_START: Final = b'{"event":'
_CONV: Final = f"{DIALECT}:"  # `conversation_id(DIALECT, chat)` is `_CONV + chat`: one concat


def _typed_frames(body: bytes) -> _Frames | None:
    """The frames of `body` as `_exact_frames` gives them, or `None` when this cannot tell.

    Never raises for a bad body: any error (no JSON, a frame that breaks its schema, nesting
    too deep) means "cannot tell", and the exact path decodes the body again to raise the
    error the contract names, with its frame `index` and `path`.
    """
    try:
        # The first bytes say the body's form, instead of one decoder tried after the other.
        if body.startswith(b"{"):
            try:
                if body.startswith(_ENVELOPE_START):  # the long-poll form
                    envelope = _typed_envelope.decode(body)
                    return (envelope.events, 0) if envelope.event is msgspec.UNSET else None
                return (_frame.decode(body),), 0  # one frame: most bodies
            except msgspec.ValidationError:  # unknown events, or a frame breaking its schema
                return _object_frames(body)
        if body.startswith(b"["):
            try:
                return _frame_list.decode(body), 0
            except msgspec.ValidationError:  # an unknown event among them: one by one
                return _each(_raw_list.decode(body))
        return None  # whitespace first, or neither object nor array: the exact path
    except (ValueError, GatewayError, RecursionError):  # msgspec's errors are ValueErrors
        return None


def _object_frames(body: bytes) -> _Frames | None:
    """An object body the typed decoders refused, read as the exact path reads it: the
    envelope when it has `events` and no `event`, else one frame (ignored when its name is
    unknown). `None` for the odd shapes, and (never raising) for any error."""
    try:
        probe = _probe.decode(body)
        if probe.event is msgspec.UNSET:
            if isinstance(probe.events, list):  # the envelope, with unknown events in it
                return _each(probe.events)
            return None  # neither key: no frame at all
        if probe.events is msgspec.UNSET:
            frame = _convert(loads(body), 0)
            return ((), 1) if frame is None else ((frame,), 0)
        return None  # both `event` and `events`: the exact path knows which one wins
    except (ValueError, GatewayError, RecursionError):
        return None


_event_of: Final = tag_decoder("event")


def _each(raws: list[msgspec.Raw]) -> _Frames:
    """Frames decoded one by one, for a body that mixes known and unknown events.

    An unknown name is counted as `_exact_frames` counts it (its frame is never converted);
    any other frame is decoded typed, and raises if it breaks its schema (as the name reader
    does for a frame that is no object)."""
    return decode_known(raws, _event_of, n.EVENT_NAMES, _frame.decode)


# The exact path: how bodies were always decoded. It names a bad frame's index and path.
_one_or_many: Final = msgspec.json.Decoder(n.ServerEvent | list[n.ServerEvent])


_envelope: Final = msgspec.json.Decoder(n.ExactEnvelope)


def _exact_frames(body: bytes | str) -> _Frames:
    """The frames of `body`: one typed decode, else the envelope, else frame by frame untyped
    (unknown names are counted). Raises `MalformedJSON` or `DecodeError`."""
    try:
        decoded = _one_or_many.decode(body)
        return (decoded if type(decoded) is list else [decoded]), 0
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        return _envelope.decode(body).events, 0
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    return convert_each(_frames_of(loads(body)), _convert)


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
    Raises `DecodeError` naming the frame's index and path for a field with no meaning.
    """
    # Ingest's hot loop, written for CPython: no `enumerate` (a frame's index is how many
    # events precede it), builders looked up by type, and the bookkeeping of untimed frames
    # (`Untimed`, anchors) paid only by bodies or streams that have them.
    conv = _CONV + chat_id  # gateway.codec.conversation_id, inlined: hot path
    # Builders look a sender up in `known`, then in `_AGENTS`: without parties (a webhook),
    # `known` is `_AGENTS` itself, so a sender costs one lookup instead of a miss and a hit.
    known = parties or _AGENTS
    out: list[Event] = []
    try:
        for frame in frames:
            stamp = frame.timestamp
            # Truthy first: a number or a non-empty string is the common case, and comparing
            # an int with "" costs CPython two failed rich comparisons. 0 is a time too.
            if stamp or (stamp is not None and stamp != ""):
                at = when = _frame_at(stamp)
            else:
                if received_at is None:
                    received_at = now_at()  # once per batch: untimed frames share one instant
                at = received_at
                if untimed is None:  # the first untimed frame of a fresh stream
                    untimed = Untimed()
                    untimed.anchor(_last_msg_id(frames, len(out)))
                when = untimed.place(frame)
            kind = type(frame)
            if untimed is not None and isinstance(frame, _ANCHORS):
                untimed.anchor(frame.msg_id)
            event = _BUILDERS[kind](frame, conv, at, when, known, file_url)
            if kind is _JOINED:
                if known is parties or known is _AGENTS:
                    known = dict(parties)  # later frames of this batch know the new party
                known[frame.party_id] = event.participant  # type: ignore[index,union-attr]
            out.append(event)
    except _Bad as exc:
        raise exc.at(len(out)) from None  # a frame's index: how many events precede it
    return out


_JOINED: Final = n.PartyJoined


def _frame_at(stamp: str | float) -> str:
    """`to_at` of a frame's own `timestamp`; `_Bad` at `$.timestamp` for one that is no time."""
    # Epoch milliseconds, the platform's timestamps (an int, or its digits as a string), are
    # formatted here when `to_at` has cached their second (`epoch_second_prefixes`: a hit
    # proves the range), as `to_at` would: its call was ~2,000 of a frame's ~22,000
    # instructions (≈ 5 % of the corpus's time).
    # `to_at` reads a digit string as the int of its digits; 13 of them are milliseconds from
    # 2001 to 2286 (strings of seconds, and huge ones `int` would refuse, go to `to_at`).
    ms: object = stamp
    if type(ms) is str and len(ms) == 13 and ms.isdigit() and ms.isascii():
        ms = int(ms)
    if type(ms) is int and ms > MS_THRESHOLD:
        prefix = _prefixes(ms // 1000)
        if prefix is not None:  # `%` is one operation on a big int less than `ms - second * 1000`
            return prefix + _TAILS[ms % 1000]
    try:
        return to_at(stamp)
    except (ValueError, OverflowError, OSError):
        raise _Bad("$.timestamp", f"not a timestamp: {stamp!r}") from None


_prefixes: Final = epoch_second_prefixes.get
_TAILS: Final = MILLIS_TAILS


def _last_msg_id(frames: Sequence[n.ServerEvent], stop: int) -> n.NativeId | None:
    """The `msg_id` of the last message before `frames[stop]` that has one: where a fresh
    stream's first untimed frame is placed (looked up then, not tracked on every frame)."""
    for index in range(stop - 1, -1, -1):
        frame = frames[index]
        if isinstance(frame, _ANCHORS) and frame.msg_id is not None:
            return frame.msg_id
    return None


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
    """Who a frame is from: the user when it names no party, else the party this batch knows
    (`known`), an agent already seen (`_AGENTS`), or a new agent by that id."""
    if party_id is None:
        return USER
    return known.get(party_id) or _AGENTS.get(party_id) or _agent(party_id)


def _agent(party_id: str) -> Party:
    """An agent we know only by id (Parties are frozen: one per id is shared)."""
    if len(_AGENTS) >= 1024:
        _AGENTS.clear()
    party = _AGENTS[party_id] = Party(role="agent", id=party_id)
    return party


_AGENTS: Final[dict[str, Party]] = {}


# One builder per native event: (frame, conversation id, at, when, known parties, file base) →
# event. Events the platform identifies take `<conv>/<msg_id>`; the others a derived id of
# their own fields (`gateway.codec.joined_id`), with `when` where the same frame may
# legitimately happen twice (typing, joins). Each builds its event with keywords directly: the
# typed decoder already checked every field's type and literal values, so nothing is validated
# twice.


def _message(
    f: n.ChatMessage, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    text = f.msg if f.msg is not None else f.msg_text
    if text is None:
        raise _Bad("$.msg", "a message needs `msg` or `msg_text`")
    pid = f.party_id
    return Message(
        id=f"{conv}/{f.msg_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_sender(pid, known),
        content=Text(text),
    )


def _typing(name: str, active: bool) -> Callable[..., Event]:
    """The builder of `chat_session_typing` (`active`) or `chat_session_not_typing`."""

    def build(
        f: n.Typing | n.NotTyping, conv: str, at: str, when: str, known: _Parties, _: str | None
    ) -> Event:
        pid = f.party_id
        return Typing(
            id=joined_id(conv, f"{name}\x1f{when}\x1f{pid}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            sender=_sender(pid, known),
            active=active,
        )

    return build


def _status(
    f: n.SessionStatus, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    ewt = f.ewt
    return Status(
        id=joined_id(conv, f"chat_session_status\x1f{when}\x1f{f.state}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        status=STATUSES[f.state],
        wait_s=None if ewt is None else _seconds(ewt, "$.ewt"),
    )


def _joined(
    f: n.PartyJoined, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    name = f.display_name
    if not name:  # "first last", or whichever of them is given (a join with a generator is dear)
        first, last = f.first_name, f.last_name
        name = (f"{first} {last}" if last else first) if first else (last or None)
    return ParticipantJoined(
        id=joined_id(conv, f"chat_session_party_joined\x1f{when}\x1f{f.party_id}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=Party(role=_ROLES[f.type], id=f.party_id, name=name),
    )


def _left(f: n.PartyLeft, conv: str, at: str, when: str, known: _Parties, _: str | None) -> Event:
    pid = f.party_id
    return ParticipantLeft(
        id=joined_id(conv, f"chat_session_party_left\x1f{when}\x1f{pid}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=_sender(pid, known),
    )


def _ended(
    f: n.SessionEnded, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    return Ended(
        id=joined_id(conv, f"chat_session_ended\x1f{when}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason="completed",
    )


def _inactivity(
    f: n.InactivityTimeout, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    return Ended(
        # one id for both spellings
        id=joined_id(conv, f"chat_session_inactivity_timeout\x1f{when}"),
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
        id=joined_id(conv, f"chat_session_timeout_warning\x1f{when}\x1f{f.msg}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="inactivity_warning",
        text=f.msg,
    )


def _form(f: n.FormShow, conv: str, at: str, when: str, known: _Parties, _: str | None) -> Event:
    timeout = f.form_timeout
    return Form(
        id=joined_id(conv, f"chat_session_form_show\x1f{f.form_request_id}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        request_id=str(f.form_request_id),
        name=f.form_name,
        timeout_s=None if timeout is None else _seconds(timeout, "$.form_timeout"),
    )


def _signal(f: n.Signaling, conv: str, at: str, when: str, known: _Parties, _: str | None) -> Event:
    pid = f.party_id
    return Signal(
        id=f"{conv}/{f.msg_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        data=f.data,
        sender=_sender(pid, known),
    )


def _file(
    f: n.ChatFile, conv: str, at: str, when: str, known: _Parties, file_url: str | None
) -> Event:
    file_id = f.file_id
    if not file_id:
        raise _Bad("$.file_id", "a file needs a `file_id`")
    url = file_url.replace("{file_id}", file_id) if file_url else None
    content: Image | File = (
        Image(url=url, file_id=file_id, file_name=f.file_name)
        if f.file_type == "image"
        else File(url=url, file_id=file_id, file_name=f.file_name)
    )
    pid = f.party_id
    return Message(
        id=f"{conv}/{f.msg_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_sender(pid, known),
        content=content,
    )


def _location(
    f: n.ChatLocation, conv: str, at: str, when: str, known: _Parties, _: str | None
) -> Event:
    pid = f.party_id
    if f.msg_id is None:
        key = f"chat_session_location\x1f{when}\x1f{pid}\x1f{f.latitude}\x1f{f.longitude}"
        eid = joined_id(conv, key)
    else:
        eid = f"{conv}/{f.msg_id}"
    return Message(
        id=eid,
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_sender(pid, known),
        content=Location(latitude=f.latitude, longitude=f.longitude, url=f.url),
    )


def _case(f: n.CaseSet, conv: str, at: str, when: str, known: _Parties, _: str | None) -> Event:
    return Notice(
        id=joined_id(conv, f"chat_session_case_set\x1f{f.case_id}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="info",
        text=f"case {f.case_id}",
        metadata={"case_id": str(f.case_id)},
    )


def _receipt(name: str, status: ReceiptStatus) -> Callable[..., Event]:
    """The builder of `chat_session_message_delivered` or `chat_session_message_read`."""

    def build(
        f: n.MessageDelivered, conv: str, at: str, when: str, known: _Parties, _: str | None
    ) -> Event:
        pid = f.party_id
        ref = f.ref_msg_id
        return Receipt(
            id=joined_id(conv, f"{name}\x1f{ref}\x1f{pid}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            sender=_sender(pid, known),
            status=status,
            message_id=f"{conv}/{ref}",
        )

    return build


_BUILDERS: Final[dict[type[Any], Callable[..., Event]]] = {
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
