"""One vendor session run by the replica that holds its lease.

It pumps the connector's inbound events into the hub, persists the connector's snapshot after
every published batch (so a replica that takes over resumes from there and the hub drops what
it re-reads), carries out commands one at a time, and lets go when the session ends, goes
idle, or the lease is lost. Its lease is renewed by the replica's keeper (`Sessions`), with
every other session's in one batch, which tells it through `kept`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import msgspec
import structlog

from gateway import metrics
from gateway.adapter import Connector
from gateway.codec import derived_id
from gateway.errors import GatewayError, SessionNotFound
from gateway.hub import Hub, Published, wire
from gateway.logging import bound
from gateway.model import Command, Ended, Error, Event, FetchHistory, Link, Message, now_at
from gateway.sessions.record import SessionRecord
from gateway.sessions.replies import Ack, PlatformHistory

if TYPE_CHECKING:
    from gateway.sessions.store import SessionStore

log = structlog.get_logger(__name__)
_snapshot = msgspec.json.Encoder()


def _digest(state: object) -> bytes:
    """A snapshot's fingerprint (kept per session instead of its encoding: a tenth the size)."""
    return hashlib.blake2b(_snapshot.encode(state), digest_size=16).digest()


class OwnedSession:
    """A running session. `on_done(conversation)` is called once it stops, for any reason."""

    def __init__(
        self,
        record: SessionRecord,
        connector: Connector,
        hub: Hub,
        store: SessionStore,
        *,
        lease_ttl: float,
        idle_s: float,
        ended_ttl: float,
        on_done: Callable[[str], None],
    ) -> None:
        self.record = record
        self.conversation = record.conversation_id
        self.connector = connector
        self.hub = hub
        self.store = store
        self.lease_ttl = lease_ttl
        self.idle_s = idle_s
        self.ended_ttl = ended_ttl
        self.on_done = on_done
        self.last_activity = time.monotonic()
        self.link: str = "up"
        """The vendor link as the connector last reported it (`up`, `down`, `retrying`)."""
        self._lock = asyncio.Lock()  # commands and snapshots, one at a time
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stopping_idle: asyncio.Future[None] | None = None
        self._saved = _digest(record.state)  # the record is stored with this state

    def run(self) -> None:
        with bound(conversation_id=self.conversation, dialect=self.record.dialect):
            self._tasks = [asyncio.create_task(self._pump(), name=f"pump-{self.conversation}")]

    async def publish(self, events: Sequence[Event]) -> list[Published]:
        self.last_activity = time.monotonic()
        return await self.hub.publish(events)

    async def _persist(self, status: str | None = None) -> None:
        """Save the record with the connector's snapshot, when either changed: most batches
        (typing, receipts, a poll's link news) move no snapshot, and at thousands of sessions
        a write per batch is what queues the store's connections."""
        state = self.connector.snapshot()
        saved = _digest(state)
        if (status is None or status == self.record.status) and saved == self._saved:
            return
        if status is not None:
            self.record.status = status  # type: ignore[assignment]
        self.record.state = state
        ttl = self.ended_ttl if self.record.status == "ended" else None
        await self.store.save(self.record, ttl)
        self._saved = saved

    async def _pump(self) -> None:
        ended = False
        try:
            async for batch in self.connector.inbound():
                if not batch:
                    continue
                for event in batch:
                    if isinstance(event, Link):
                        self.link = "up" if event.state == "restored" else event.state
                    elif isinstance(event, Error) and event.code == "INVALID_FRAME":
                        metrics.CONNECTOR_FRAMES_REJECTED.labels(self.record.dialect).inc()
                        log.warning("session.frame_rejected", reason=event.message)
                ended = any(isinstance(e, Ended) for e in batch)
                if ended:
                    # The record says `ended` before anyone can see the `ended` event, so a
                    # frontend acting on it (recover, send) finds the session completed.
                    async with self._lock:
                        await self._persist("ended")
                await self._publish_retrying(batch)
                if ended or self._stopping:
                    break
                async with self._lock:
                    await self._persist()
        except asyncio.CancelledError:
            raise
        except SessionNotFound as exc:
            # The platform no longer knows the session: that is its end.
            async with self._lock:
                await self._persist("ended")
            await self._publish_retrying(
                [
                    Ended(
                        id=derived_id(self.conversation, "ended", "not-found"),
                        conversation_id=self.conversation,
                        dialect=self.record.dialect,
                        at=now_at(),
                        reason="error",
                        by="system",
                        text=exc.message,
                    )
                ]
            )
            ended = True

        except Exception:
            log.exception("session.pump_failed")
        finally:
            if ended:
                log.info("session.ended")
                await self.stop(release=True)
            elif not self._stopping:
                # The connector gave up: let the lease lapse so another try (here or on
                # another replica) resumes from the last snapshot.
                await self.stop(release=True)

    async def _publish_retrying(self, batch: Sequence[Event]) -> None:
        """Publish until the store takes it: an inbound batch is never dropped."""
        delay = 0.05
        while True:
            try:
                await self.publish(batch)
                return
            except GatewayError as exc:
                log.warning("session.publish_retry", error=exc.message, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def kept(self, still_ours: bool) -> None:
        """The replica's lease keeper (`Sessions`) renewed this session's lease, in one batch
        with the others: stop if it was no longer ours; release the session when it has been
        idle too long."""
        if self._stopping:
            return
        if not still_ours:
            log.warning("session.lease_lost", conversation_id=self.conversation)
            self._spawn_stop(release=False)
        elif self._stopping_idle is None and time.monotonic() - self.last_activity > self.idle_s:
            self._stopping_idle = asyncio.ensure_future(self._release_idle())

    async def _release_idle(self) -> None:
        log.info("session.idle_released", conversation_id=self.conversation)
        async with self._lock:
            await self._persist("idle")
        await self.stop(release=True)

    def _spawn_stop(self, release: bool) -> None:
        task = asyncio.ensure_future(self.stop(release=release))
        task.add_done_callback(lambda t: None)

    async def execute(self, command: Command) -> Ack | PlatformHistory:
        """Carry out a command and publish what it made; the ack names the message it sent.
        A `history` read asks the platform and publishes nothing."""
        self.last_activity = time.monotonic()
        if isinstance(command, FetchHistory):
            page = await self.connector.history(command.cursor, command.limit)
            return PlatformHistory(
                ref=command.ref,
                conversation=self.conversation,
                source="platform",
                events=[msgspec.Raw(wire.encode(event)) for event in page.events],
                has_next=page.next is not None,
                has_prev=page.prev is not None,
                next=page.next,
                prev=page.prev,
            )
        async with self._lock:
            events = await self.connector.send(command)
            ended = any(isinstance(e, Ended) for e in events)
            if ended:  # as in the pump: the record says so before the event is seen
                await self._persist("ended")
            published = await self.publish(events) if events else []
            await self._persist()
        # The pump keeps running until the connector's inbound ends: what the platform still
        # says after the end (a participant leaving) belongs to the transcript.
        ack = Ack(ref=command.ref, conversation=self.conversation)
        for event, result in zip(events, published, strict=True):
            if isinstance(event, Message) or ack.id is None:
                ack = Ack(
                    ref=command.ref, conversation=self.conversation, id=result.id, seq=result.seq
                )
                if isinstance(event, Message):
                    break
        return ack

    async def stop(self, *, release: bool, persist: bool = False) -> None:
        """Stop pumping and renewing, close the connector (the vendor session stays), save
        its snapshot if `persist`, and give the lease up if `release`. Safe to call twice."""
        if self._stopping:
            return
        self._stopping = True
        current = asyncio.current_task()
        await _cancel([t for t in self._tasks if t is not current])
        if persist:
            with contextlib.suppress(GatewayError):
                async with self._lock:
                    await self._persist()
        with contextlib.suppress(Exception):
            await self.connector.close()
        if release:
            with contextlib.suppress(GatewayError):
                await self.store.release(self.conversation)
        self.on_done(self.conversation)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel and wait for `tasks`, cancelling again if one swallowed it (client libraries
    have been known to turn a cancellation inside a request into their own error)."""
    pending = [t for t in tasks if not t.done()]
    while pending:
        for task in pending:
            task.cancel()
        _, still = await asyncio.wait(pending, timeout=0.5)
        pending = list(still)
    for task in tasks:
        if not task.cancelled():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
