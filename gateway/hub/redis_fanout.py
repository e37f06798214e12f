"""The Redis hub's fan-out: one pub/sub connection per process, shared by every subscription.

The link subscribes to a channel (or pattern) while at least one local subscription wants it,
and waits for Redis to confirm before the subscription reads its starting point, so nothing
published in between is missed. It reconnects with capped backoff; after any reconnect (its own,
or one redis-py did silently, seen as a second confirmation of the control channel) every
subscription re-reads the log from its cursors, so no subscriber stays deaf or misses what was
published while the link was down.

A link can also go deaf without breaking: a Sentinel failover may leave it subscribed on a
server that no longer gets the primary's publishes (Centrifugo's issue #1189). So every
`HEARTBEAT_S` the process publishes a beat, through the writing pool (which follows the
primary), on its own control channel; a link that has not heard a beat the primary accepted
`DEAF_AFTER_S` ago is torn down and made again, and its subscriptions re-read their logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import defaultdict, deque

import redis.asyncio as aioredis
import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from gateway.errors import StoreUnavailable
from gateway.hub import wire
from gateway.hub.base import Subscription
from gateway.redis_url import follow_primary

log = structlog.get_logger(__name__)

CONFIRM_TIMEOUT = 5.0
HEARTBEAT_S = 1.0
DEAF_AFTER_S = 3.0


class RedisFanOut:
    """Routes `<namespace>:ev:<conversation>` messages to the local subscriptions."""

    def __init__(self, redis: aioredis.Redis, namespace: str, max_backoff: float) -> None:
        self._redis = redis
        self._prefix = f"{namespace}:ev:"
        # Always subscribed (the link never idles), and this process's alone: beats are not
        # heard by every other replica.
        self._control = f"{namespace}:ctl:{secrets.token_hex(6)}".encode()
        self.ack_channel = f"{namespace}:ack"  # nobody listens: a write for WAIT to count from
        self._beat = 0  # the last beat published
        self._heard = 0  # the last beat heard on the link
        self._sent: deque[tuple[int, float]] = deque()  # beats the primary took, not yet heard
        self.max_backoff = max_backoff
        self.reconnects = 0
        self._exact: defaultdict[str, list[Subscription]] = defaultdict(list)
        self._patterns: defaultdict[str, list[Subscription]] = defaultdict(list)
        self._pubsub: PubSub | None = None
        self._active: set[bytes] = set()  # channels and patterns subscribed on this link
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self._sync_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def channel(self, conversation: str) -> str:
        """The channel a conversation's stored events are published on."""
        return self._prefix + conversation

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="hub-listener")
        try:
            await asyncio.wait_for(self._listening.wait(), CONFIRM_TIMEOUT)
        except TimeoutError:
            raise StoreUnavailable("Redis pub/sub did not come up") from None

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for table in (self._exact, self._patterns):
            for subscriptions in list(table.values()):
                for subscription in list(subscriptions):
                    subscription.close()

    def _channel_of(self, subscription: Subscription) -> bytes:
        return (self._prefix + subscription.target).encode()

    async def attach(self, subscription: Subscription) -> None:
        table = self._exact if subscription.exact else self._patterns
        table[subscription.target].append(subscription)
        channel = self._channel_of(subscription)
        try:
            if not self._listening.is_set():
                raise StoreUnavailable("event store unavailable: pub/sub link is down")
            await self._sync()
            pending = self._pending.get(channel)
            if pending is not None:
                await asyncio.wait_for(asyncio.shield(pending), CONFIRM_TIMEOUT)
        except (RedisError, TimeoutError) as exc:
            self.detach(subscription)
            raise StoreUnavailable(f"event store unavailable: {exc}") from exc
        except BaseException:
            self.detach(subscription)
            raise

    def detach(self, subscription: Subscription) -> None:
        table = self._exact if subscription.exact else self._patterns
        subscriptions = table.get(subscription.target)
        if subscriptions is None or subscription not in subscriptions:
            return
        subscriptions.remove(subscription)
        if not subscriptions:
            del table[subscription.target]
            task = asyncio.get_running_loop().create_task(self._sync_quietly())
            task.add_done_callback(lambda t: None)

    async def _sync_quietly(self) -> None:
        with contextlib.suppress(RedisError, StoreUnavailable):
            await self._sync()

    async def _sync(self) -> None:
        """Bring the link's subscriptions in line with the tables (order-proof: it diffs)."""
        async with self._sync_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            want_exact = {(self._prefix + t).encode() for t in self._exact}
            want_patterns = {(self._prefix + t).encode() for t in self._patterns}
            have = self._active - {self._control}
            subscribe = [c for c in want_exact if c not in have]
            psubscribe = [c for c in want_patterns if c not in have]
            unsubscribe = [c for c in have if c not in want_exact and c not in want_patterns]
            loop = asyncio.get_running_loop()
            for channel in subscribe + psubscribe:
                self._pending[channel] = loop.create_future()
            self._active.update(subscribe, psubscribe)
            self._active.difference_update(unsubscribe)
            if subscribe:
                await pubsub.subscribe(*subscribe)
            if psubscribe:
                await pubsub.psubscribe(*psubscribe)
            exact_gone = [
                c for c in unsubscribe if b"*" not in c and b"?" not in c and b"[" not in c
            ]
            if exact_gone:
                await pubsub.unsubscribe(*exact_gone)
            if patterns_gone := [c for c in unsubscribe if c not in exact_gone]:
                await pubsub.punsubscribe(*patterns_gone)

    async def _listen(self) -> None:
        backoff = 0.05
        first = True
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._control)
                async with self._sync_lock:
                    self._active = {self._control}
                    self._pubsub = pubsub
                await self._sync()
                reader = asyncio.create_task(self._read(pubsub))
                watch = asyncio.create_task(self._watch(pubsub))
                try:
                    await self._await_confirmations(reader)
                    self._listening.set()
                    if not first:
                        self._recheck_all()
                    first = False
                    backoff = 0.05
                    done, _ = await asyncio.wait(
                        [reader, watch], return_when=asyncio.FIRST_COMPLETED
                    )
                    done.pop().result()  # re-raises what ended the link
                finally:
                    for task in (reader, watch):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
            except asyncio.CancelledError:
                self._listening.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except Exception as exc:
                self._listening.clear()
                self._pubsub = None
                log.warning("hub.link_lost", error=str(exc), retry_in=backoff)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(StoreUnavailable("pub/sub link lost"))
                        future.exception()  # retrieved: nobody may be waiting on it
                self._pending.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _await_confirmations(self, reader: asyncio.Task[None]) -> None:
        """Wait until Redis confirmed every (p)subscribe sent on this link, or the link died."""
        pending = [f for f in self._pending.values() if not f.done()]
        confirmed: asyncio.Future[list[None]] = asyncio.ensure_future(asyncio.gather(*pending))
        try:
            await asyncio.wait(
                [confirmed, reader],  # type: ignore[type-var]
                timeout=CONFIRM_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            confirmed.cancel()
        if reader.done():
            reader.result()  # re-raises what broke the link
        if not confirmed.done() or confirmed.cancelled():
            raise StoreUnavailable("Redis did not confirm the subscriptions")

    async def _watch(self, pubsub: PubSub) -> None:
        """Publish a beat every `HEARTBEAT_S`; raise once the link missed one the primary took
        `DEAF_AFTER_S` ago (the link is deaf: it must be made again). Under Sentinel, also ask
        the sentinels for the primary each time: a demoted primary keeps its clients (until the
        sentinels reconfigure it, seconds later), so the pool drops its connections to it and
        the link, when on it, is made again on the new one."""
        self._sent.clear()
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            primary = await follow_primary(self._redis)
            link = pubsub.connection
            if primary is not None and link is not None and (link.host, link.port) != primary:
                log.warning("hub.primary_moved", primary=f"{primary[0]}:{primary[1]}")
                raise StoreUnavailable("the primary moved: the link follows it")
            self._beat += 1
            try:
                await self._redis.publish(self._control, self._beat)
            except RedisError:
                pass  # no primary to publish on: writes fail too, and ready() says so
            else:
                self._sent.append((self._beat, time.monotonic()))
            while self._sent and self._sent[0][0] <= self._heard:
                self._sent.popleft()
            if self._sent and time.monotonic() - self._sent[0][1] > DEAF_AFTER_S:
                log.warning("hub.link_deaf", missed=len(self._sent))
                raise StoreUnavailable("pub/sub link deaf: heartbeats not heard")

    def _recheck_all(self) -> None:
        self.reconnects += 1
        log.info("hub.reconnected", reconnects=self.reconnects)
        for table in (self._exact, self._patterns):
            for subscriptions in list(table.values()):
                for subscription in subscriptions:
                    subscription.recheck()

    async def _read(self, pubsub: PubSub) -> None:
        """Route every message of the link to the subscriptions it is for, in arrival order."""
        prefix_len = len(self._prefix)
        exact, patterns = self._exact, self._patterns
        control_confirmed = False
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                if message["channel"] == self._control:
                    self._heard = max(self._heard, int(message["data"]))
                    continue
                subscriptions = exact.get(message["channel"][prefix_len:].decode())
            elif kind == "pmessage":
                subscriptions = patterns.get(message["pattern"][prefix_len:].decode())
            else:
                if kind in ("subscribe", "psubscribe"):
                    channel = message["channel"]
                    if channel == self._control:
                        if control_confirmed:  # redis-py reconnected and resubscribed by itself
                            self._recheck_all()
                        control_confirmed = True
                    future = self._pending.pop(channel, None)
                    if future is not None and not future.done():
                        future.set_result(None)
                continue
            if subscriptions:
                conversation = message["channel"][prefix_len:].decode()
                payload = message["data"]
                seq = wire.read_seq(payload)
                epoch = wire.read_epoch(payload) if seq else ""
                for subscription in tuple(subscriptions):
                    subscription.on_event(conversation, seq, epoch, payload)
