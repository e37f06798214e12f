"""Vendor sessions on behalf of frontends: start, recover, and route commands to their owner.

Every live vendor session is owned by exactly one replica (a lease in the store, renewed by
its `OwnedSession`). A command reaching any replica is validated here first (against the
canonical model and the dialect's capabilities), then carried out by the owner: locally, or
forwarded over the store; a session nobody owns is taken over on the spot. A scanner on every
replica takes over sessions whose owner died, within about one lease TTL, resuming each from
its persisted snapshot. Commands with a `ref` act once: a repeat gets the first answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Sequence

import msgspec
import structlog

from gateway import tracing
from gateway.adapter import Adapter, Capability, Connector, DialectSettings, Registry
from gateway.errors import GatewayError, RequestError, SessionNotFound, Unsupported
from gateway.hub import Hub, is_pattern
from gateway.metrics import Sample
from gateway.model import (
    Command,
    End,
    Event,
    FetchHistory,
    Forward,
    MarkRead,
    Recover,
    Send,
    SetTyping,
    Start,
    Status,
)
from gateway.reconnect import LinkOptions
from gateway.sessions import forwarding
from gateway.sessions.admission import Admission
from gateway.sessions.flights import Flights
from gateway.sessions.owned import OwnedSession
from gateway.sessions.record import SessionRecord
from gateway.sessions.replies import (
    Ack,
    PlatformHistory,
    Recovered,
    Reply,
    Started,
    replies_decoder,
)
from gateway.sessions.store import MemoryStore, OwnerGone, SessionStore
from gateway.vendor_http import VendorHttp

log = structlog.get_logger(__name__)

__all__ = [
    "Ack",
    "PlatformHistory",
    "Recovered",
    "Reply",
    "Sessions",
    "Started",
    "create_store",
]

_CAPABILITY: dict[type, Capability] = {
    Start: "start",
    # Recovering is the gateway's own (history + resume from the snapshot): any dialect that
    # can start a session can recover it.
    Recover: "start",
    Send: "send",
    SetTyping: "typing",
    MarkRead: "read",
    End: "end",
    Forward: "forward",
    FetchHistory: "history",
}
_encoder = msgspec.json.Encoder()
MAX_PLATFORM_PAGE = 100
"""The most events one page of a platform's history may ask for."""
ABANDON = LinkOptions(timeout_s=5.0, backoff_s=0.5, backoff_max_s=1.0, max_attempts=3)
"""Ending a vendor session that could not be owned: a try may take `timeout_s`; up to
`max_attempts` tries, apart by the connectors' jittered backoff, so a platform that blinks
still gets the end."""
HANDOVER_CONCURRENCY = 100
"""Sessions handed over at once when the replica shuts down."""
LATE_OPEN_TIMEOUT = 60.0
"""How long an open is still awaited after its start's deadline passed, to end what it made
(connectors' own request timeouts end it sooner)."""


def create_store(redis_url: str | None, namespace: str = "gw") -> SessionStore:
    """The store that matches the hub: Redis when the gateway shares one, else memory."""
    if redis_url and not redis_url.startswith("memory://"):
        from gateway.sessions.redis_store import RedisStore

        return RedisStore(redis_url, namespace)
    return MemoryStore()


class Sessions:
    """The session router of one replica."""

    def __init__(
        self,
        registry: Registry,
        hub: Hub,
        store: SessionStore,
        http: Callable[[str], VendorHttp],
        settings_for: Callable[[str], DialectSettings],
        *,
        lease_ttl: float = 10.0,
        idle_s: float = 1800.0,
        command_timeout: float = 15.0,
        ended_ttl: float = 7 * 86400,
        history_limit: int = 1000,
        max_sessions: int = 5000,
        max_starting: int = 64,
    ) -> None:
        """`http(dialect)` is that dialect's connection pools (`gateway.vendor_http`)."""
        self.registry = registry
        self.hub = hub
        self.store = store
        self.http = http
        self.settings_for = settings_for
        self.lease_ttl = lease_ttl
        self.idle_s = idle_s
        self.command_timeout = command_timeout
        self.ended_ttl = ended_ttl
        self.history_limit = history_limit
        self.owned: dict[str, OwnedSession] = {}
        self.admission = Admission(max_sessions, max_starting, lambda: len(self.owned))
        self.renewals = 0
        """Lease renewals this replica asked the store for (one per owned session each
        `lease_ttl / 3`, batched)."""
        self.takeovers = 0
        """Sessions this replica resumed after another owner (or an idle release) let go."""
        self.retaken = 0
        """Leases of sessions running here that lapsed (a late renewal) and were taken again."""
        self.abandoned = {"late": 0, "failed": 0}
        """Vendor sessions opened and ended at once, by reason (see `_abandon`)."""
        self._late: set[asyncio.Task[None]] = set()  # opens outliving their start (`_end_late`)
        self._taking = Flights()  # one takeover attempt per conversation at a time
        self._commands = Flights()  # one run per (scope, ref) at a time
        self._scanner: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._scan_soon = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start(self._serve_forwarded, self._scan_soon.set)
        self._scanner = asyncio.create_task(self._scan(), name="sessions-scanner")
        self._keeper = asyncio.create_task(self._keep_leases(), name="sessions-leases")

    async def close(self) -> None:
        """Hand every owned session over: persist its snapshot and release its lease, so
        another replica resumes it at its next scan."""
        for task in (self._scanner, self._keeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._late:  # opens its starts gave up on: end what they make, within a bound
            _, unfinished = await asyncio.wait(set(self._late), timeout=ABANDON.timeout_s)
            for task in unfinished:
                task.cancel()
        handed_over = list(self.owned.values())
        # Thousands of sessions, each a snapshot, a release and a link to close: many at once,
        # or the drain outlasts `shutdown_timeout_s`.
        gate = asyncio.Semaphore(HANDOVER_CONCURRENCY)

        async def hand_over(session: OwnedSession) -> None:
            async with gate:
                await session.stop(release=True, persist=True)

        await asyncio.gather(*(hand_over(s) for s in handed_over), return_exceptions=True)
        if handed_over:
            with contextlib.suppress(GatewayError):
                await self.store.announce_handover()
            log.info("sessions.handed_over", sessions=len(handed_over))
        await self.store.close()

    def ready(self) -> bool:
        return self.store.ready()

    def samples(self) -> list[Sample]:
        """The replica's session load for `/metrics`."""
        return [
            *self.admission.samples(),
            *(
                Sample(
                    "sessions_abandoned_total",
                    count,
                    (("reason", reason),),
                    kind="counter",
                    help="Vendor sessions opened at the platform and ended at once, no client "
                    "having been told of them: late (the open finished after its start's "
                    "deadline) or failed (a later step of the start failed).",
                )
                for reason, count in sorted(self.abandoned.items())
            ),
            Sample(
                "session_lease_renewals_total",
                self.renewals,
                kind="counter",
                help="Lease renewals this replica asked the store for (batched).",
            ),
            Sample(
                "session_leases_retaken_total",
                self.retaken,
                kind="counter",
                help="Leases of sessions running here that lapsed before their renewal (a "
                "late keeper) and that nobody else had taken: taken again, the session kept.",
            ),
        ]

    async def _keep_leases(self) -> None:
        """Renew every owned session's lease, every third of its TTL, in one batch; tell each
        session whether its lease is still ours (it stops if not, or releases when idle)."""
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            sessions = list(self.owned.values())
            if not sessions:
                continue
            try:
                kept = await self.store.renew_all(
                    [s.conversation for s in sessions], self.lease_ttl
                )
            except GatewayError as exc:
                # The store blinked; the next round may still be within the TTL.
                log.warning("sessions.renew_failed", error=exc.message, sessions=len(sessions))
                continue
            except Exception:
                log.exception("sessions.renew_crashed")
                continue
            self.renewals += len(sessions)
            self.retaken += kept.retaken
            if kept.retaken:
                log.warning("sessions.leases_retaken", retaken=kept.retaken)
            for session in sessions:
                session.kept(session.conversation in kept.ours)

    async def _scan(self) -> None:
        """Take over runnable sessions whose owner is gone."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._scan_soon.wait(), self.lease_ttl / 2)
            self._scan_soon.clear()
            try:
                for conversation in await self.store.runnable():
                    if self.admission.load() >= self.admission.max_sessions:
                        break  # full: another replica takes the rest
                    if (
                        conversation not in self.owned
                        and await self.store.owner(conversation) is None
                        and await self._runs(conversation)
                    ):
                        with contextlib.suppress(GatewayError):
                            await self._take_over(conversation)
            except GatewayError as exc:
                log.warning("sessions.scan_failed", error=exc.message)
            except Exception:
                log.exception("sessions.scan_crashed")

    async def _runs(self, conversation: str) -> bool:
        """Whether a runnable conversation's record says it runs: an index entry can outlive
        its record's status by a crash between two writes (`gateway.sessions.redis_store`)."""
        record = await self.store.load(conversation)
        return record is not None and record.status == "active"

    # -- commands ---------------------------------------------------------------------------

    async def execute(self, command: Command, client: str = "") -> list[Reply]:
        """Carry out a frontend command wherever its session lives; the replies to send back.

        `client` is who sends it (the token's `sub`): a `ref` is that client's alone, so a
        repeat of another client's ref runs anew instead of answering with theirs.

        Raises `GatewayError` subclasses: `INVALID_REQUEST`, `UNKNOWN_DIALECT`,
        `SESSION_NOT_FOUND`, `UNSUPPORTED`, `OWNER_UNAVAILABLE`, or the vendor's refusal.
        """
        if isinstance(command, Start):
            # A start ref is the caller's for one participant: two frontends that both count
            # refs from 1 must not get each other's conversations.
            scope = f"start:{command.dialect}:{command.participant.from_}"
            start = functools.partial(self._start, client=client)
            return [await self._idempotent(scope, client, command, start)]
        if is_pattern(command.conversation):
            raise RequestError("a command names one conversation", path="$.conversation")
        if isinstance(command, Recover):
            return [await self._recover(command)]
        record = await self._record(command.conversation)
        self._check(self.registry.get(record.dialect), command)
        if record.status == "ended":
            raise RequestError(
                f"conversation {record.conversation_id} has ended", code="SESSION_ENDED"
            )
        if isinstance(command, FetchHistory):  # a read: nothing to do once
            return [await self._route(command)]
        route = functools.partial(self._route, client=client)
        return [await self._idempotent(command.conversation, client, command, route)]

    async def started_by(self, conversation: str) -> str | None:
        """The client (token `sub`) that started `conversation`'s session, if it is known."""
        record = await self.store.load(conversation)
        return record.started_by if record is not None else None

    async def _idempotent(
        self, scope: str, client: str, command: Command, run: Callable[..., object]
    ) -> Reply:
        """Run `command` once per `ref` of `client` (in `scope`): repeats get the stored
        answer. Another client's equal ref is another command."""
        if command.ref is None:
            return await run(command)  # type: ignore[no-any-return, misc]
        ref = _encoder.encode([client, command.ref]).decode()
        if (scope, ref) not in self._commands:  # a repeat of a finished command: its answer
            stored = await self.store.result(scope, ref)
            if stored is not None:
                return replies_decoder.decode(stored)[0]

        async def once() -> Reply:
            reply: Reply = await run(command)  # type: ignore[misc]
            await self.store.remember(scope, ref, _encoder.encode([reply]))
            return reply

        return await self._commands.run((scope, ref), once)

    def _check(self, adapter: Adapter, command: Command) -> None:
        needed = _CAPABILITY[type(command)]
        if needed not in adapter.capabilities:
            raise Unsupported(f"dialect {adapter.name!r} cannot {needed}")
        if isinstance(command, FetchHistory) and not 1 <= command.limit <= MAX_PLATFORM_PAGE:
            raise RequestError(f"`limit` must be between 1 and {MAX_PLATFORM_PAGE}", path="$.limit")
        if isinstance(command, Send):
            kind = command.content.__struct_config__.tag
            if kind not in adapter.content_kinds:
                raise Unsupported(
                    f"dialect {adapter.name!r} cannot send {kind!r} content "
                    f"(it sends {', '.join(sorted(adapter.content_kinds))})"
                )

    async def _record(self, conversation: str) -> SessionRecord:
        record = await self.store.load(conversation)
        if record is None:
            raise SessionNotFound(f"no session for conversation {conversation!r}")
        return record

    async def _start(self, command: Start, client: str) -> Started:
        """Open a vendor session and own it, on behalf of `client`: within `max_sessions`
        (else `CAPACITY` at once), in turn with the other starts, by the deadline (else
        `TIMEOUT`). A start that fails after the platform opened the session ends it there:
        what clients were told started is what runs."""
        adapter = self.registry.get(command.dialect)
        self._check(adapter, command)
        deadline = asyncio.get_running_loop().time() + self.command_timeout
        async with self.admission.admit(deadline):
            connector = self._connector(adapter)
            events = await self._open(connector, command)
            try:
                return await self._own_new(command, client, adapter, connector, events)
            except BaseException:
                await self._abandon(connector, "failed")
                raise

    async def _open(self, connector: Connector, command: Start) -> Sequence[Event]:
        """`connector.open(command)`, which the start's deadline does not cut short: the
        platform may be creating the session already, and cancelling our request does not
        take that back. When the start is cancelled first (its deadline passed), the open
        goes on by itself and whatever it made is ended the moment it has (`_end_late`)."""
        opening = asyncio.ensure_future(connector.open(command))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            late = asyncio.create_task(self._end_late(connector, opening))
            self._late.add(late)
            late.add_done_callback(self._late.discard)
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                await connector.close()
            raise

    async def _end_late(
        self, connector: Connector, opening: asyncio.Future[Sequence[Event]]
    ) -> None:
        """Wait for an open its start gave up on, then end the vendor session it made, so the
        platform runs none that no client was told of. It keeps its place meanwhile."""
        with self.admission.late_place():
            try:
                async with asyncio.timeout(LATE_OPEN_TIMEOUT):
                    await opening
            except BaseException:  # failed, or never finished: nothing made that we know of
                opening.cancel()
                with contextlib.suppress(Exception):
                    await connector.close()
                return
            log.warning("session.opened_late", conversation_id=connector.conversation_id)
            await self._abandon(connector, "late")

    async def _own_new(
        self,
        command: Start,
        client: str,
        adapter: Adapter,
        connector: Connector,
        events: Sequence[Event],
    ) -> Started:
        conversation = connector.conversation_id
        if conversation in self.owned or not await self.store.acquire(conversation, self.lease_ttl):
            # The platform put us into a conversation that is already live (SignalWire joins
            # by address): keep the running session, drop the extra link.
            await connector.close()
            await self.hub.publish(events)
            log.info("session.joined_live", dialect=adapter.name, conversation_id=conversation)
            return Started(ref=command.ref, conversation=conversation, status="active")
        try:
            # Publish before the record exists: a crash in between leaves no half-started
            # session.
            await self.hub.publish(events)
            record = SessionRecord(
                conversation_id=conversation,
                dialect=adapter.name,
                state=connector.snapshot(),
                started_by=client,
            )
            await self.store.save(record)
        except BaseException:
            with contextlib.suppress(GatewayError):
                await self.store.release(conversation)
            raise
        self._run(record, connector)
        status = next((e.status for e in reversed(events) if isinstance(e, Status)), "active")
        log.info("session.started", dialect=adapter.name, conversation_id=conversation)
        return Started(ref=command.ref, conversation=conversation, status=status)

    async def _abandon(self, connector: Connector, reason: str) -> None:
        """End a vendor session this replica opened but could not own, so none runs that no
        client was told of: `late` (the open finished after its start was answered) or
        `failed` (a step after the open failed, or the deadline passed during it)."""
        self.abandoned[reason] += 1
        conversation = getattr(connector, "conversation_id", "")
        for attempt in range(1, ABANDON.max_attempts + 1):
            try:
                async with asyncio.timeout(ABANDON.timeout_s):
                    await connector.send(End(conversation=conversation))
            except Exception as exc:  # the platform may blink (retried) or be gone
                log.warning(
                    "session.abandon_failed",
                    conversation_id=conversation,
                    attempt=attempt,
                    error=repr(exc),
                )
                if not ABANDON.gives_up(attempt + 1):
                    await asyncio.sleep(ABANDON.delay(attempt))
            else:
                log.info("session.abandoned", conversation_id=conversation)
                break
        with contextlib.suppress(Exception):
            await connector.close()

    async def _recover(self, command: Recover) -> Recovered:
        record = await self._record(command.conversation)
        adapter = self.registry.get(record.dialect)
        if record.status != "ended":
            self._check(adapter, command)
            if (
                record.conversation_id not in self.owned
                and await self.store.owner(record.conversation_id) is None
            ):
                await self._take_over(record.conversation_id)
            record = await self._record(command.conversation)
        rows = await self.hub.read(record.conversation_id, limit=self.history_limit)
        return Recovered(
            ref=command.ref,
            conversation=record.conversation_id,
            status="completed" if record.status == "ended" else "active",
            events=[msgspec.Raw(payload) for _, payload in rows],
            last_seq=rows[-1][0] if rows else 0,
        )

    async def _route(self, command: Command, client: str = "") -> Reply:
        conversation = command.conversation  # type: ignore[union-attr]
        deadline = time.monotonic() + self.command_timeout
        while time.monotonic() < deadline:
            session = self.owned.get(conversation)
            if session is not None:
                return await session.execute(command)
            owner = await self.store.owner(conversation)
            if owner is None or owner == self.store.replica:
                await self._take_over(conversation)
                continue
            try:
                with tracing.span(
                    "command.forward", kind="client", attributes={"gateway.owner": owner}
                ):
                    answer = await self.store.forward(
                        owner,
                        forwarding.request(forwarding.traced(command), client),
                        max(deadline - time.monotonic(), 0.1),
                    )
            except OwnerGone:
                await asyncio.sleep(min(0.2, self.lease_ttl / 10))  # its lease will lapse
                continue
            except TimeoutError:
                break
            return forwarding.unpack(answer)
        raise RequestError(
            f"the replica owning {conversation} did not answer in time", code="OWNER_UNAVAILABLE"
        )

    async def _serve_forwarded(self, body: bytes) -> bytes:
        """Answer a command another replica forwarded to this one (its owner)."""
        try:
            command, client = forwarding.command_of(body)
            with tracing.span(
                "command.serve",
                kind="server",
                carrier=tracing.command_context(command),
                attributes=tracing.command_attributes(command),
            ):
                return forwarding.replies(await self.execute(command, client))
        except GatewayError as exc:
            return forwarding.refusal(exc)
        except Exception as exc:
            log.exception("sessions.forwarded_failed")
            return forwarding.failure(exc)

    # -- ownership --------------------------------------------------------------------------

    async def _take_over(self, conversation: str) -> bool:
        """Acquire the lease and resume the session here; False if another replica got it.
        Concurrent calls for one conversation share one attempt."""
        return await self._taking.run(conversation, lambda: self._resume(conversation))

    async def _resume(self, conversation: str) -> bool:
        if conversation in self.owned:
            return True
        deadline = asyncio.get_running_loop().time() + self.command_timeout
        async with self.admission.admit(deadline, "takeover"):
            return await self._resume_admitted(conversation)

    async def _resume_admitted(self, conversation: str) -> bool:
        record = await self._record(conversation)
        if not await self.store.acquire(conversation, self.lease_ttl):
            return False
        try:
            adapter = self.registry.get(record.dialect)
            connector = self._connector(adapter)
            try:
                events = await connector.resume(record.state)
            except BaseException:
                with contextlib.suppress(Exception):
                    await connector.close()
                raise
        except BaseException:
            with contextlib.suppress(GatewayError):
                await self.store.release(conversation)
            raise
        if events:  # published before the snapshot that moved past them is saved
            await self.hub.publish(events)
        record.status = "active"
        record.state = connector.snapshot()
        await self.store.save(record)
        self._run(record, connector)
        self.takeovers += 1
        log.info("session.taken_over", conversation_id=conversation, fetched=len(events))
        return True

    def _connector(self, adapter: Adapter) -> Connector:
        """A new connector of `adapter`'s, keeping its conversation's context in the hub."""
        connector = adapter.connector(self.settings_for(adapter.name), self.http(adapter.name))
        connector.contexts = self.hub
        return connector

    def _run(self, record: SessionRecord, connector: Connector) -> OwnedSession:
        session = OwnedSession(
            record,
            connector,
            self.hub,
            self.store,
            lease_ttl=self.lease_ttl,
            idle_s=self.idle_s,
            ended_ttl=self.ended_ttl,
            on_done=self._forget,
        )
        self.owned[record.conversation_id] = session
        session.run()
        return session

    def _forget(self, conversation: str) -> None:
        self.owned.pop(conversation, None)
