"""The contracts a dialect implements, and the registry that finds dialects.

A dialect is one `Adapter` subclass, found through the `gateway.adapters` entry-point group
(`pip install` a package that declares one and the gateway speaks a new dialect). The adapter
is the pure codec: native bytes in, canonical events out; canonical commands in, native
requests out. No I/O, no logging. When the gateway also acts as the platform's client, the
adapter builds a `Connector`, which does the I/O of one vendor session.

    webhook body ─▶ Adapter.decode ─▶ events ─▶ hub
    vendor link  ─▶ Connector.inbound() ─▶ events ─▶ hub
    frontend command ─▶ Connector.send ─▶ (Adapter.encode ─▶ vendor) ─▶ events ─▶ hub + ack
"""

from __future__ import annotations

import abc
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import msgspec

from gateway import decoding
from gateway.context import EMPTY, ContextStore, ConversationContext
from gateway.decoding import Decoded as Decoded
from gateway.decoding import Parsed, Spec
from gateway.errors import UnknownDialect, Unsupported
from gateway.model import Command, Event, Start

if TYPE_CHECKING:
    from gateway.demo import Wiring
    from gateway.vendor_http import VendorHttp

ENTRY_POINT_GROUP = "gateway.adapters"

Capability: TypeAlias = Literal[
    "ingest",  # webhook frames decode (every adapter)
    "start",  # open a vendor session for a frontend
    "recover",  # resume a vendor session by id and load its history
    "send",  # send a message (which content kinds: `Adapter.content_kinds`)
    "typing",  # send typing on/off (and a preview where `Adapter.typing_preview`)
    "read",  # send read receipts
    "end",  # end the session
    "forward",  # forward the session to another destination
    "history",  # page the platform's history
    "files",  # upload files
]


class HistoryPage(msgspec.Struct, kw_only=True):
    """A page of the platform's own history of a conversation, as `Connector.history` reads it.

    `events` are in time order (oldest first). The first page (no cursor) is the newest;
    `next` is the opaque cursor of the page before it in time (older), `prev` of the page after
    it (newer); None where there is none. Only the connector that made a cursor reads it.
    """

    events: list[Event]
    next: str | None = None
    prev: str | None = None


class NativeRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One request in the platform's own terms, as `Adapter.encode` builds it.

    HTTP dialects fill `method`, `path` (relative to the dialect's base URL), `query` and one of
    `json` or `form`; socket dialects fill `frame` (and `event` for named events, as in
    Socket.IO). The connector adds transport details (auth headers, base URL, acks).
    """

    method: str = "POST"
    path: str = ""
    query: dict[str, str] = {}
    json: Any = None
    form: dict[str, str] | None = None
    event: str | None = None
    frame: Any = None


class DialectSettings(msgspec.Struct, frozen=True):
    """A dialect's connector settings: `url` from `GATEWAY_<DIALECT>_URL`, every other
    `GATEWAY_<DIALECT>_<NAME>` (or `[dialects.<dialect>]` TOML key) in `options`, keys lowercase.

    A secret may come from a file instead: `GATEWAY_<DIALECT>_<NAME>_FILE=/run/secrets/x` sets
    option `<name>` to the file's content (trailing newline stripped), as container secrets do.
    """

    url: str | None = None
    options: dict[str, str] = {}

    @classmethod
    def from_env(cls, dialect: str, environ: Mapping[str, str] = os.environ) -> DialectSettings:
        prefix = f"GATEWAY_{dialect.upper()}_"
        options = {k[len(prefix) :].lower(): v for k, v in environ.items() if k.startswith(prefix)}
        return cls(url=options.pop("url", None), options=read_secret_files(options))


def read_secret_files(options: Mapping[str, str]) -> dict[str, str]:
    """Options with every `<name>_file` replaced by `<name>` = that file's content.

    Raises `OSError` (naming the file) when a secret file cannot be read.
    """
    resolved = {k: v for k, v in options.items() if not k.endswith("_file")}
    for key, path in options.items():
        if key.endswith("_file"):
            with open(path, encoding="utf-8") as secret:
                resolved[key[: -len("_file")]] = secret.read().rstrip("\n")
    return resolved


class Connector(abc.ABC):
    """One live vendor session, run by the replica that owns it.

    Lifecycle: `open` (a new session) or `resume` (from a `snapshot` another replica persisted),
    then `inbound()` is iterated for as long as the session lives while `send` is called for
    frontend commands, and finally `close`. Connectors reconnect and back off on their own and
    report it as `Link` events in `inbound()`; they end the iteration after an `Ended` event.
    """

    conversation_id: str
    """`"<dialect>:<native id>"`, known once `open` or `resume` has returned."""
    contexts: ContextStore | None = None
    """Where the conversation's context is kept (the hub), set by the sessions layer."""
    _context: ConversationContext = EMPTY
    """What this connector knows of the context: all of it without a store (a connector on its
    own, in a test); with one, what it carried in (a snapshot's) fills what the store lacks."""

    async def decode_batch(
        self,
        spec: Spec[Any],
        body: bytes,
        native: str,
        options: Mapping[str, Any] | None = None,
    ) -> list[Event]:
        """What the platform sent, in conversation `native`, as events: decoded by the shared
        pipeline (`decoding.decode(..., isolate=True)`: each bad frame an `error` event, the
        good ones of its batch kept) with the conversation's stored context, read just before
        (DIALECTS.md: context is the conversation's, whichever path a frame takes); what the
        frames taught it is kept before the events are returned. Raises `StoreUnavailable`
        when the store is unreachable (nothing was decoded: read the batch again)."""
        conversation = f"{spec.dialect}:{native}"
        context = self._context
        if spec.contextual and self.contexts is not None:
            stored = (await self.contexts.contexts([conversation]))[conversation]
            context = context.merge(stored)  # the store's wins
        decoded = decoding.decode(
            spec,
            body,
            conversation=native,
            contexts={conversation: context},
            options=options,
            isolate=True,
        )
        if decoded.learned:
            if self.contexts is not None:
                await self.contexts.remember(decoded.learned)
            self._context = context.merge(decoded.learned.get(conversation, EMPTY))
        return decoded.events

    @abc.abstractmethod
    async def open(self, command: Start) -> Sequence[Event]:
        """Start a vendor session; returns the events it produced (e.g. `status`)."""

    @abc.abstractmethod
    async def resume(self, state: Mapping[str, Any]) -> Sequence[Event]:
        """Take over a session from its persisted `snapshot`; returns the events fetched on the
        way (history since the last position), which the hub deduplicates."""

    @abc.abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The JSON-serialisable state another replica needs to `resume` (ids, tokens, cursors)."""

    @abc.abstractmethod
    def inbound(self) -> AsyncIterator[Sequence[Event]]:
        """Batches of canonical events as they arrive from the platform, in order."""

    @abc.abstractmethod
    async def send(self, command: Command) -> Sequence[Event]:
        """Deliver a command; returns the canonical events it made (a sent message with the id
        its echo will carry, so the echo deduplicates). Raises a `GatewayError` on refusal."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the link without ending the vendor session (another replica may resume)."""

    async def history(self, cursor: str | None, limit: int) -> HistoryPage:
        """Up to `limit` events of the platform's own history from `cursor` (the newest page
        when None), for dialects with the `history` capability. Raises `RequestError` at
        `$.cursor` for a cursor this connector did not make, or a `GatewayError` on refusal.
        The events are read, not published: the gateway's log keeps its own order."""
        raise Unsupported("this dialect does not page the platform's history")


class Adapter(abc.ABC):
    """One dialect: its codec and, when it has one, its connector.

    Subclasses set `name` (the dialect's URL segment and conversation-id prefix) and their
    capabilities, and implement `decode` (and `encode` and `connector` when they are clients).
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"ingest"})
    content_kinds: ClassVar[frozenset[str]] = frozenset()
    """The content kinds `send` can carry (e.g. `{"text", "url", "image", "file"}`)."""
    typing_preview: ClassVar[bool] = False
    """Whether `typing` carries the text being typed (`preview`) to the platform."""
    test_only: ClassVar[bool] = False
    """True for dialects that exist for tests and demos; loaded only when named explicitly."""

    spec: ClassVar[Spec[Any]]
    """The dialect's description for the shared decode pipeline (`gateway.decoding`): its
    native Structs, envelopes and builders. Every dialect has one; decoding is the pipeline's."""
    decode_options: ClassVar[frozenset[str]] = frozenset()
    """The dialect settings its builders read (`Scope.options`), e.g. `own_address`: ingest
    hands them over as configured (`GATEWAY_<DIALECT>_<NAME>`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and not isinstance(getattr(cls, "spec", None), Spec):
            raise TypeError(f"dialect {cls.__name__} has no decoding spec")

    def parse(
        self,
        body: bytes,
        *,
        conversation: str | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Parsed[Any]:
        """The pipeline's first phase for this dialect (`decoding.parse`): ingest reads the
        stored contexts of `Parsed.conversations` before `decoding.build`."""
        return decoding.parse(self.spec, body, conversation=conversation, options=options)

    def decode(self, body: bytes, *, conversation: str | None = None) -> Decoded:
        """Decode a body (one native frame, an array of them, or the dialect's envelope) with
        empty conversation contexts: `gateway decode` and tests; ingest uses `parse`.

        `conversation` is the native conversation id for dialects whose frames do not carry it.
        Raises `MalformedJSON` for a body that is not JSON (not UTF-8, or nested too deeply),
        `DecodeError` (with `index` and `path`) for a known frame that breaks its schema, and
        `RequestError` for a missing `conversation`; a batch decodes all or nothing.
        """
        return decoding.build(decoding.parse(self.spec, body, conversation, {}))

    def encode(self, command: Command, session: Mapping[str, Any]) -> NativeRequest:
        """The native request for `command` in the session whose `snapshot` is `session`."""
        raise Unsupported(f"dialect {self.name!r} does not send {command.__struct_config__.tag!r}")

    def connector(
        self, settings: DialectSettings, http: VendorHttp
    ) -> Connector:  # pragma: no cover - overridden by client dialects
        """A connector for one new vendor session, reaching its platform through `http` (the
        dialect's two pools: `held` for a WebSocket or a long poll, `requests` for the rest)."""
        raise Unsupported(f"dialect {self.name!r} has no connector")

    def demo(self) -> Wiring | None:
        """How demo mode runs this dialect against its platform emulator (its emulator
        module's `demo_wiring()`), or None for a dialect without an emulator."""
        return None

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/dialects` shows of this dialect."""
        return {
            "name": self.name,
            "capabilities": sorted(self.capabilities),
            "content_kinds": sorted(self.content_kinds),
            "typing_preview": self.typing_preview,
        }


class LoadFailure(msgspec.Struct, frozen=True):
    """A dialect that was declared but could not be loaded."""

    name: str
    target: str
    error: str


class Registry:
    """The dialects this process speaks, by name."""

    def __init__(self, adapters: Iterable[Adapter] = (), failures: Iterable[LoadFailure] = ()):
        self._adapters = {adapter.name: adapter for adapter in adapters}
        self.failures = list(failures)

    def __contains__(self, name: object) -> bool:
        return name in self._adapters

    def __iter__(self) -> Iterator[Adapter]:
        return iter(self._adapters.values())

    def __len__(self) -> int:
        return len(self._adapters)

    def get(self, name: str) -> Adapter:
        """The adapter called `name`; raises `UnknownDialect`. The message does not list the
        loaded dialects (the caller may not be authenticated yet): `GET /v1/dialects` does."""
        try:
            return self._adapters[name]
        except KeyError:
            raise UnknownDialect(
                f"unknown dialect {name!r} (GET /v1/dialects lists the loaded ones)"
            ) from None

    @classmethod
    def load(cls, enabled: Iterable[str] | None = None) -> Registry:
        """Load the `gateway.adapters` entry points.

        `enabled` names the dialects to load; `None` loads every dialect that is not test-only.
        A dialect that fails to import or construct is kept in `failures` (the caller reports
        it loudly) and does not stop the others from loading.
        """
        wanted = None if enabled is None else set(enabled)
        adapters: list[Adapter] = []
        failures: list[LoadFailure] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if wanted is not None and ep.name not in wanted:
                continue
            try:
                factory = ep.load()
                adapter = factory()
                if not isinstance(adapter, Adapter) or adapter.name != ep.name:
                    raise TypeError(f"{ep.value} is not an Adapter named {ep.name!r}")
            except Exception as exc:  # a broken plugin must not take the others down
                failures.append(LoadFailure(ep.name, ep.value, f"{type(exc).__name__}: {exc}"))
                continue
            if adapter.test_only and wanted is None:
                continue
            adapters.append(adapter)
        if wanted is not None:
            missing = wanted - {a.name for a in adapters} - {f.name for f in failures}
            failures += [LoadFailure(n, "", "no such entry point") for n in sorted(missing)]
        return cls(adapters, failures)
