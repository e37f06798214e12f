"""The decode pipeline every dialect shares: native bytes in, canonical events out.

    body ─▶ form (one frame | an array | the dialect's envelope) ─▶ raw frames
         ─▶ each frame's name known? no: counted as ignored
         ─▶ typed frame (the dialect's msgspec union) ─▶ its conversation ─▶ the dialect's builder
         ─▶ canonical events (+ what the frames taught the conversation's context)

A dialect describes itself with a `Spec` — its native Structs, the key that names a frame's
event, its envelopes, how a frame names its conversation, and a plain builder from one typed frame
to its canonical events — and this module does the rest, the same way for all:

- **Forms.** A JSON array is a batch of frames. A JSON object is one of the dialect's
  `Envelope`s when it holds that envelope's key and not the frame's name key; else it is a frame.
  An envelope may stand for events of its own besides its frames' (`Envelope.after`).
- **Unknown names.** A frame whose name (a string at `Spec.tag`) the dialect does not know is
  skipped unread and counted (`Decoded.ignored`), never fatal: platforms add events. A dialect
  lists in `Spec.silent` the names it knows but maps to nothing (skipped too, not counted).
  A frame that names its event deeper inside, or that only its keys tell apart, is skipped and
  counted the same when `Spec.conversation` returns `SKIP` for it.
- **Errors.** A body that is not JSON, not UTF-8 or nested too deeply is `MalformedJSON`. A known
  frame that breaks its schema is `DecodeError` with the frame's `index` in the body and the
  JSON `path` inside the frame (`$.data.text`), as msgspec names it; a builder refusing a frame
  raises `Refused` (message and path), which becomes the same. A batch decodes all or nothing
  (webhooks: the sender fixes and retries). With `isolate=True` (connectors: a platform's poll
  or socket cannot be re-sent) each bad frame becomes an `error` event naming the frame and why,
  and the good frames of the batch are kept (`Decoded.rejected` counts the bad ones).
- **Conversation context.** What a conversation knows beyond any one frame (the gateway's own
  address, the roles parties announced: `gateway.context`) is handed to the builder through
  `Scope.context()`; what a frame teaches it, the builder records with `Scope.learn()`. A later
  frame of the same body sees what an earlier one taught. `Decoded.learned` carries it out, for
  the hub to keep (`Hub.remember`). Two phases let a caller read the stored contexts between
  them: `parse` (forms, names, typed frames, conversations) then `build` (events). A frame
  whose builder has all it reads (a dialect not `contextual`, or contexts given to `parse`)
  is built as `parse` reads it, in the same loop; only a contextual dialect's frames parsed
  without contexts wait for `build`.

A builder is a plain function `build(frame, scope) -> Iterable[Event]`: pure, no I/O, no logging.

How a dialect sits on it (`adapters/loopback/decode.py` is the smallest example):

- `native.py` holds the frame Structs (a tagged union) and the envelope Structs; `DIALECT`.
- `decode.py` holds the builders and `SPEC = Spec(dialect=…, frame=…, tag=…, builders={frame
  type: builder}, conversation=…, envelopes=(…), silent=…)` (or `build=` one builder for every
  frame type); the pipeline calls the builder of each frame's type. Builders read
  `scope.conversation_id`, `scope.received_at`, `scope.envelope`, `scope.options`,
  `scope.context()` and call `scope.learn(...)`, `scope.event_id(...)`; they raise
  `Refused(message, path)` for a frame they cannot map.
- The adapter class sets `spec = SPEC`: `Adapter.decode` (webhooks, `gateway decode`) and
  ingest (which reads the stored contexts between `parse` and `build`) need nothing else.
- A connector decodes what its platform sends with `Connector.decode_batch(SPEC, body, native,
  options)`: `decode(..., isolate=True)` with the conversation's context (`Connector.context`,
  which the sessions layer seeds from the hub and keeps there when decoding extends it): bad
  frames come back as `error` events (counted by the sessions layer), the good ones as usual.
"""

from __future__ import annotations

import enum
import functools
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeVar

import msgspec

from gateway.codec import derived_id, to_at, unparsable
from gateway.context import EMPTY, ConversationContext
from gateway.errors import DecodeError, MalformedJSON, RequestError
from gateway.model import Error, Event, Role, now_at

F = TypeVar("F")


class Refused(Exception):
    """Raised by a builder for a frame that decodes but cannot be mapped (a time that is no
    time, a required value missing in a way the Structs cannot say): `path` is inside the frame."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.path = path


def native_time(
    value: object,
    path: str,
    refusal: str = "not a timestamp: {value!r}",
    scope: Scope | None = None,
    key: str = "",
) -> str:
    """A frame's native time `value` as the canonical one (`codec.to_at`), or `Refused` at
    `path` + `key` for one that is no time (`key`, the value's under `path`, is joined only
    then). None is the body's arrival (`scope.received_at`) given a `scope`, else now. The
    dialects word the refusal differently (tests pin each): `refusal` formats `value` and
    `error` (to_at's reason)."""
    if value is None and scope is not None:
        return scope.received_at
    try:
        return to_at(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise Refused(refusal.format(value=value, error=exc), path + key) from None


class Skip(enum.Enum):
    """What `Spec.conversation` returns (`SKIP`) for a frame that, read, is one the dialect does
    not map (its event named inside it, say): skipped and counted as ignored, like an unknown
    name."""

    SKIP = "skip"


SKIP: Final = Skip.SKIP


@dataclass(frozen=True)
class Envelope:
    """A body form that wraps frames: an object holding `key`, decoded as `type`, whose
    attribute `frames` (a `list[msgspec.Raw]`) holds the frames. The decoded envelope is handed
    to the builder (`Scope.envelope`): its other fields (a chat id, a status) are the body's."""

    key: str
    type: type[Any]
    frames: str = "frames"
    decoder: msgspec.json.Decoder[Any] = field(init=False, repr=False, compare=False)
    after: Callable[[Any, Scope, list[Event]], Iterable[Event]] | None = None
    """Events the envelope itself stands for, beyond its frames' (a GMS reply's status and end),
    or None: built last, from the decoded envelope, the scope and the body's events so far."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", msgspec.json.Decoder(self.type))


Builder = Callable[[Any, "Scope"], Iterable[Event]]
"""A dialect's map of one typed frame to its canonical events (see the module's docstring)."""


@dataclass(frozen=True, kw_only=True)
class Spec(Generic[F]):
    """What a dialect supplies to the pipeline."""

    dialect: str
    frame: Any
    """The native frame type: a tagged union of Structs (or one Struct)."""
    tag: str
    """The key whose string value names a frame's event."""
    builders: Mapping[type[Any], Builder] = field(default_factory=dict)
    """The builder of each frame type of `frame` (its `silent` ones need none, and are left
    out of it once the spec is made)."""
    build: Builder | None = None
    """Or one builder for every frame type (a dialect whose frames share one)."""
    conversation: Callable[[F, Scope], str | Literal[Skip.SKIP] | None] | None = None
    """A frame's NATIVE conversation id (it may read `scope.envelope`, `scope.conversation`);
    None when neither the frame nor the body says (a `RequestError` naming the `conversation`
    parameter then), `SKIP` for a frame the dialect does not map. Left out: every frame is in
    the caller's conversation (a dialect whose frames name none)."""
    envelopes: tuple[Envelope, ...] = ()
    contextual: bool = False
    """Whether the builders read the conversation's context (`Scope.context`): the stored
    contexts are read (a round trip to the store on ingest) only for such a dialect."""
    silent: frozenset[str] = frozenset()
    """Names the dialect knows and maps to no event (skipped unread, not counted as ignored)."""
    known: frozenset[str] = field(default=frozenset())
    """The names `frame` decodes; derived from the union's tags when left empty."""
    name: Callable[[msgspec.Raw], Any] | None = None
    """The name of a frame that did not decode, where the string at `tag` does not say it
    (an event named deeper inside); one not `known` is skipped and counted."""
    silent_types: frozenset[type[Any]] = field(default=frozenset(), init=False)
    """The union's members whose names are `silent` (derived)."""
    decoder: msgspec.json.Decoder[F] = field(init=False)
    peek: msgspec.json.Decoder[Any] = field(init=False)
    envelope_keys: tuple[bytes, ...] = field(init=False)
    prefix: str = field(init=False)
    """`<dialect>:`, what a native conversation id is prefixed with (derived)."""
    framed: bytes = field(init=False)
    """`{"<tag>"`: how a body opening with the name key starts (derived)."""

    def __post_init__(self) -> None:
        if not self.known:
            object.__setattr__(self, "known", _tags(self.frame) | self.silent)
        members = typing.get_args(self.frame) or (self.frame,)
        silent_types = {m for m in members if _tag_of(m) in self.silent}
        object.__setattr__(self, "silent_types", frozenset(silent_types))
        given = dict.fromkeys(members, self.build) if self.build is not None else self.builders
        missing = [m.__name__ for m in members if m not in given and m not in silent_types]
        if missing:
            raise TypeError(f"{self.dialect}: no builder for {', '.join(missing)}")
        # A silent type has none: the pipeline skips a frame whose type has no builder.
        builders = {m: b for m, b in given.items() if m not in silent_types}
        object.__setattr__(self, "builders", builders)
        # Built once per dialect: the frame decoder, and the reader of a body's envelope keys.
        object.__setattr__(self, "decoder", msgspec.json.Decoder(self.frame))
        keys = (self.tag, *(envelope.key for envelope in self.envelopes))
        object.__setattr__(self, "peek", _peek(keys))
        quoted = tuple(msgspec.json.encode(envelope.key) for envelope in self.envelopes)
        object.__setattr__(self, "envelope_keys", quoted)
        object.__setattr__(self, "prefix", f"{self.dialect}:")
        object.__setattr__(self, "framed", b"{" + msgspec.json.encode(self.tag))


def _tag_of(member: Any) -> str | None:
    """A Struct type's tag value (None for anything else)."""
    config = getattr(member, "__struct_config__", None)
    if isinstance(config, msgspec.structs.StructConfig) and isinstance(config.tag, str):
        return config.tag
    return None


def _tags(union: Any) -> frozenset[str]:
    """The tag values of a union's Structs (a Struct alone: its own)."""
    members = typing.get_args(union) or (union,)
    return frozenset(tag for member in members if (tag := _tag_of(member)) is not None)


_NOTHING: Mapping[str, Any] = {}
"""The contexts and options of a body given none, and what a body taught when it taught
nothing: one empty mapping, only ever read (`learn` makes a new one)."""


class Scope(msgspec.Struct, gc=False):
    """What a builder knows beside its frame: the body's, and the conversation's context.
    One per body, made by `parse`; it refers to nothing that refers back to it."""

    spec: Spec[Any]
    conversation: str | None
    """The native conversation id the caller gave (`?conversation=`, the connector's)."""
    contexts: Mapping[str, ConversationContext]
    """The stored context of each of the body's conversations (`context` reads them)."""
    options: Mapping[str, Any]
    """What the caller tells the dialect's builders (a file URL template, say)."""
    isolate: bool
    """Whether a bad frame becomes an `error` event instead of failing the body."""
    learned: Mapping[str, ConversationContext]
    """What the body's frames taught each conversation's context (`learn`): `parse` starts it
    empty."""
    frames: Sequence[tuple[int, str, Any]] = ()
    """The body's typed frames waiting for `build`: `(index, canonical conversation id, frame)`
    (none when `parse` built them)."""
    events: list[Event] = []
    """The body's events so far, in native order."""
    envelope: Any = None
    """The decoded envelope, when the body was one."""
    envelope_form: Envelope | None = None
    """Which of the dialect's `Envelope`s the body was."""
    conversation_id: str = ""
    """The canonical id of the frame's conversation (`<dialect>:<native id>`)."""
    ignored: int = 0
    failures: Sequence[tuple[int, str, DecodeError]] = ()
    state: dict[str, Any] | None = None
    """Whatever a dialect's builders keep from one frame of the body to the next (None until
    a builder keeps something)."""
    instant: str | None = None

    @property
    def received_at(self) -> str:
        """One instant for the whole body: the time of frames that carry none."""
        if self.instant is None:
            self.instant = now_at()
        return self.instant

    def context(self) -> ConversationContext:
        """The frame's conversation's context, with what earlier frames of this body taught."""
        stored = self.contexts.get(self.conversation_id, EMPTY)
        learned = self.learned.get(self.conversation_id)
        return stored if learned is None else stored.merge(learned)

    def learn(self, *, own_address: str | None = None, roles: Mapping[str, Role] = {}) -> None:
        """Record what this frame teaches its conversation's context."""
        before = self.learned.get(self.conversation_id, EMPTY)
        update = ConversationContext(own_address=own_address, roles=dict(roles))
        self.learned = {**self.learned, self.conversation_id: before.merge(update)}

    def event_id(self, *parts: object) -> str:
        """A deterministic id for an event the platform does not identify (`derived_id`)."""
        return derived_id(self.conversation_id, *parts)


class Decoded(msgspec.Struct, frozen=True, gc=False):
    """What a body decodes to: canonical events in native order, how many frames were skipped as
    unknown names (`ignored`), how many were bad and became `error` events (`rejected`, only when
    isolating), and what the body taught each conversation's context (`learned`)."""

    events: list[Event]
    ignored: int = 0
    rejected: int = 0
    learned: Mapping[str, ConversationContext] = _NOTHING


class Parsed(Scope, Generic[F], gc=False):
    """A body after the first phase (`parse`): its typed frames, each with its index and
    conversation. It is the scope its builders see in the second (`build`)."""

    @property
    def conversations(self) -> set[str]:
        """The canonical ids of the conversations of the frames waiting for `build` (those of a
        `contextual` dialect's body parsed without contexts)."""
        return {conv for _, conv, _ in self.frames}


def _peek(keys: tuple[str, ...]) -> msgspec.json.Decoder[Any]:
    """A decoder reading only `keys` of an object, the rest skipped: each an empty `Raw` when
    absent (a present key's raw JSON is never empty)."""
    fields = [(f"k{i}", msgspec.Raw, msgspec.Raw()) for i in range(len(keys))]
    rename = {f"k{i}": key for i, key in enumerate(keys)}
    return msgspec.json.Decoder(msgspec.defstruct("Peek", fields, rename=rename, gc=False))


_raws = msgspec.json.Decoder(list[msgspec.Raw])


def parse(
    spec: Spec[F],
    body: bytes,
    conversation: str | None = None,
    contexts: Mapping[str, ConversationContext] | None = None,
    options: Mapping[str, Any] | None = None,
    isolate: bool = False,
) -> Parsed[F]:
    """The first phase: the body's typed frames and their conversations.

    Each frame's events are built as it is read when nothing is left to wait for: the spec is
    not `contextual`, or the caller gave the `contexts`. Otherwise (ingest, before it has read
    the stored contexts of `Parsed.conversations`) the frames wait for `build`.

    Raises `MalformedJSON` (not JSON, not UTF-8, too deep), `DecodeError` (a known frame breaking
    its schema, or an envelope that is no envelope) and `RequestError` (no conversation anywhere).
    With `isolate` and a `conversation` (a connector's session), a bad frame is kept as a
    failure instead, in that conversation, and `build` turns it into an `error` event.
    """
    parsed: Parsed[F] = Parsed(
        spec,
        conversation,
        contexts or _NOTHING,
        options or _NOTHING,
        isolate and conversation is not None,
        _NOTHING,
    )
    waiting: list[tuple[int, str, Any]] | None = None
    if spec.contextual and contexts is None:
        waiting = parsed.frames = []
    raws: Sequence[bytes | msgspec.Raw] | None = None
    try:
        if not body.isascii():  # every string checked once, even those of frames skipped unread
            body.decode()
        # One object opening with the name key (the common single frame) holds it, so is no
        # envelope: it is decoded as a frame at once. An array is a batch. Any other object has
        # its envelope keys read first (a GMS reply opens with `statusCode`): an envelope is
        # spared a failed frame decode and its exception, and either order tells them apart.
        if not body.startswith(spec.framed):
            start = body[:1]
            if start.isspace():
                start = body.lstrip()[:1]
            raws = _raws.decode(body) if start == b"[" else _envelope(spec, body, parsed)
        # Each frame in turn (a body that is one frame: itself): decoded, then skipped, or kept
        # with its conversation, or built. A single body's bad JSON is met here: inside the `try`.
        typed, conversation_of = spec.decoder, spec.conversation
        builders, events = spec.builders, parsed.events
        native: str | Literal[Skip.SKIP] | None
        for index, raw in enumerate((body,) if raws is None else raws):
            try:
                frame = typed.decode(raw)
            except msgspec.ValidationError as exc:
                _failed(parsed, index, raw, exc)
                continue
            builder = builders.get(type(frame))
            if builder is None:  # a `silent` name
                continue
            if conversation_of is None:
                native = parsed.conversation or None
            else:
                try:
                    native = conversation_of(frame, parsed)
                except (msgspec.ValidationError, DecodeError, Refused) as exc:
                    _reject(parsed, index, exc)
                    continue
                if native is SKIP:
                    parsed.ignored += 1
                    continue
            if native is None:
                raise RequestError(
                    f"{spec.dialect} frame {index} names no conversation: "
                    "the `conversation` parameter is required",
                    parameter="conversation",
                )
            conv = spec.prefix + native
            if waiting is not None:
                waiting.append((index, conv, frame))
                continue
            parsed.conversation_id = conv
            try:
                events += builder(frame, parsed)
            except (Refused, DecodeError, msgspec.ValidationError, ValueError) as exc:
                _reject(parsed, index, exc, conv)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise unparsable(exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedJSON(f"body is not valid JSON: {exc}") from None
    return parsed


def _failed(parsed: Parsed[Any], index: int, raw: bytes | msgspec.Raw, exc: Exception) -> None:
    """Frame `index` did not decode as the dialect's frame: skipped when its name is one the
    dialect does not know (counted) or maps to nothing; else it is a broken known frame."""
    spec = parsed.spec
    if spec.name is not None:
        name = spec.name(raw if isinstance(raw, msgspec.Raw) else msgspec.Raw(raw))
    else:
        name = _name(spec.tag, raw)
    if isinstance(name, str) and (name not in spec.known or name in spec.silent):
        parsed.ignored += name not in spec.known
        return
    _reject(parsed, index, exc)


def _reject(parsed: Parsed[Any], index: int, exc: Exception, conv: str = "") -> None:
    """A bad frame: the batch's end (raised), or, isolating, a failure kept for an `error`
    event in `conv` (the caller's conversation when not given)."""
    error = _frame_error(exc, index)
    if not parsed.isolate:
        raise error from None
    conv = conv or f"{parsed.spec.dialect}:{parsed.conversation}"
    parsed.failures = [*parsed.failures, (index, conv, error)]


def build(parsed: Parsed[F], contexts: Mapping[str, ConversationContext] | None = None) -> Decoded:
    """The second phase: the canonical events of `parsed`'s frames, those `parse` built and
    those that waited for `contexts` (the stored context of each of `parsed.conversations`;
    those given to `parse` otherwise).

    Raises `DecodeError` for a frame the builder refuses, unless `parse` was isolating: then,
    and for the frames `parse` kept as failures, the batch carries an `error` event instead."""
    if contexts is not None:
        parsed.contexts = contexts
    builders, events = parsed.spec.builders, parsed.events
    for index, conv, frame in parsed.frames:
        parsed.conversation_id = conv
        try:
            events += builders[type(frame)](frame, parsed)
        except (Refused, DecodeError, msgspec.ValidationError, ValueError) as exc:
            _reject(parsed, index, exc, conv)
    if parsed.failures or parsed.envelope_form is not None:
        _close(parsed, events)
    return Decoded(events, parsed.ignored, len(parsed.failures), parsed.learned)


def _close(parsed: Parsed[Any], events: list[Event]) -> None:
    """A body's events after its frames': an `error` event for each bad frame (isolating), then
    what its envelope stands for (`Envelope.after`)."""
    for index, conv, error in parsed.failures:
        events.append(_error_event(parsed.spec.dialect, conv, index, error, parsed.received_at))
    form = parsed.envelope_form
    if form is not None and form.after is not None:
        events += form.after(parsed.envelope, parsed, events)


def decode(
    spec: Spec[F],
    body: bytes,
    *,
    conversation: str | None = None,
    contexts: Mapping[str, ConversationContext] | None = None,
    options: Mapping[str, Any] | None = None,
    isolate: bool = False,
) -> Decoded:
    """`build(parse(...))`: a body decoded in one call, with the contexts the caller has."""
    return build(parse(spec, body, conversation, contexts, options, isolate))


def _envelope(spec: Spec[Any], body: bytes, scope: Scope) -> list[msgspec.Raw] | None:
    """The frames of a body that is one of the dialect's envelopes (an object holding the
    envelope's key and no name key), or None for a body that is none."""
    # `find`, not `in`: bytes' `in` first tries its operand as an int, raising and clearing
    # an exception each time. An object naming none of the keys is no envelope, known unread.
    for key in spec.envelope_keys:
        if body.find(key) >= 0:
            break
    else:
        return None
    peeked = msgspec.structs.astuple(spec.peek.decode(body))
    if peeked[0]:
        return None
    for envelope, present in zip(spec.envelopes, peeked[1:], strict=True):
        if present:
            try:
                scope.envelope = envelope.decoder.decode(body)
            except msgspec.ValidationError as exc:
                raise _frame_error(exc, 0) from None
            scope.envelope_form = envelope
            frames: list[msgspec.Raw] = getattr(scope.envelope, envelope.frames)
            return frames
    return None


def _name(tag: str, raw: bytes | msgspec.Raw) -> Any:
    """The value at `tag` of a raw frame (None when absent, or when the frame is no object)."""
    try:
        return _names(tag).decode(raw).name
    except msgspec.ValidationError:
        return None


@functools.cache
def _names(tag: str) -> msgspec.json.Decoder[Any]:
    """A decoder of the value at `tag` alone, every other key skipped unread."""
    return msgspec.json.Decoder(
        msgspec.defstruct("Name", [("name", Any, None)], rename={"name": tag}, gc=False)
    )


def _frame_error(exc: Exception, index: int) -> DecodeError:
    if isinstance(exc, DecodeError):
        return exc
    if isinstance(exc, Refused):
        message, path = str(exc), exc.path
    else:
        text = str(exc)
        message, sep, tail = text.rpartition(" - at `")
        message, path = (message, tail.rstrip("`")) if sep else (text, "$")
    return DecodeError(f"frame {index}: {message} at {path}", index=index, path=path)


def _error_event(dialect: str, conv: str, index: int, error: DecodeError, at: str) -> Error:
    """The `error` event standing for a bad frame of a connector's batch."""
    return Error(
        id=derived_id(conv, "bad-frame", at, index, str(error)),
        conversation_id=conv,
        dialect=dialect,
        at=at,
        code=error.code,
        message=str(error),
        recoverable=False,
        metadata={"index": index, "path": error.details.get("path", "$")},
    )
