"""The `redis://` hub: logs in Redis Streams, fan-out through one pub/sub connection per process.

Per conversation `c` (the braces keep the three keys in one Redis Cluster slot), under the
namespace `gw` (`GATEWAY_REDIS_NAMESPACE`: gateways that must not share data share a Redis
under different namespaces):

    gw:{c}:seq   INCR counter: the last seq assigned
    gw:{c}:ids   hash event id → seq: the dedup index
    gw:{c}:log   stream of stored events, entry id `<seq>-0`, field `e` = the event's JSON
    gw:ev:c      pub/sub channel the stored events are published on (patterns: gw:ev:genesys:*)

`PUBLISH_SCRIPT` does dedup + seq + append + publish for one conversation's events atomically,
so seq order is publish order. A batch is one pipeline of one script call per conversation: one
round trip. The listener reconnects with capped backoff; after a reconnect every subscription
re-reads the log from its cursors, so no subscriber stays deaf or misses what was published
while the link was down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.client import PubSub
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from gateway.errors import StoreUnavailable
from gateway.hub import wire
from gateway.hub.base import Hub, Published, Subscription
from gateway.model import EPHEMERAL, Ended, Event, event_encoder

log = structlog.get_logger(__name__)

PUBLISH_SCRIPT = """
-- KEYS: seq counter, id->seq hash, log stream
-- ARGV: channel, maxlen, ttl after `ended` (s); then per event: id, head, tail, ended (0|1)
local out = {}
for i = 4, #ARGV, 4 do
  local known = redis.call('HGET', KEYS[2], ARGV[i])
  if known then
    out[#out + 1] = -tonumber(known)
  else
    local seq = redis.call('INCR', KEYS[1])
    redis.call('HSET', KEYS[2], ARGV[i], seq)
    local payload = ARGV[i + 1] .. '"seq":' .. seq .. ',' .. ARGV[i + 2]
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', payload)
    redis.call('PUBLISH', ARGV[1], payload)
    if ARGV[i + 3] == '1' then
      for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ARGV[3]) end
    end
    out[#out + 1] = seq
  end
end
return out
"""

CONFIRM_TIMEOUT = 5.0


def stream_keys(conversation: str, namespace: str = "gw") -> tuple[str, str, str]:
    """The seq counter, dedup hash and log stream keys of a conversation."""
    base = namespace + ":{" + conversation + "}"
    return base + ":seq", base + ":ids", base + ":log"


class RedisHub(Hub):
    """A hub on a Redis server (7 or later) at `url`; every replica sharing it shares the logs."""

    def __init__(
        self,
        url: str,
        *,
        maxlen: int = 10_000,
        ended_ttl: float = 7 * 86400,
        max_backoff: float = 2.0,
        max_connections: int = 64,
        namespace: str = "gw",
    ) -> None:
        self.url = url
        self.namespace = namespace
        self._prefix = f"{namespace}:ev:"
        self._control = f"{namespace}:ctl".encode()  # always subscribed: the link never idles
        self.maxlen = maxlen
        self.ended_ttl = int(ended_ttl)
        self.max_backoff = max_backoff
        self.reconnects = 0
        # A bounded pool: a burst of requests waits for a connection instead of opening
        # hundreds. Fail fast otherwise: the caller answers 503 and the sender retries.
        self._pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=5,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=10,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        )
        self._redis: aioredis.Redis = aioredis.Redis(connection_pool=self._pool)
        self._sha: str | None = None
        self._exact: defaultdict[str, list[Subscription]] = defaultdict(list)
        self._patterns: defaultdict[str, list[Subscription]] = defaultdict(list)
        self._pubsub: PubSub | None = None
        self._active: set[bytes] = set()  # channels and patterns subscribed on this link
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self._sync_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self._sha = await self._redis.script_load(PUBLISH_SCRIPT)
        except RedisError as exc:
            raise StoreUnavailable(f"Redis at {_safe(self.url)} is unreachable: {exc}") from exc
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
        await self._redis.aclose()
        await self._pool.disconnect()

    async def ready(self) -> bool:
        if not self._listening.is_set():
            return False
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    # -- writing --------------------------------------------------------------------------------

    async def publish(self, events: Sequence[Event]) -> list[Published]:
        if not events:
            return []
        try:
            return await self._publish(events)
        except NoScriptError:  # the server restarted and lost its script cache
            try:
                self._sha = await self._redis.script_load(PUBLISH_SCRIPT)
                return await self._publish(events)
            except RedisError as exc:
                raise StoreUnavailable(f"event store unavailable: {exc}") from exc
        except RedisError as exc:
            raise StoreUnavailable(f"event store unavailable: {exc}") from exc

    async def _publish(self, events: Sequence[Event]) -> list[Published]:
        self.round_trips += 1
        groups: dict[str, list[int]] = {}
        ephemeral: list[int] = []
        for index, event in enumerate(events):
            if isinstance(event, EPHEMERAL):
                ephemeral.append(index)
            else:
                groups.setdefault(event.conversation_id, []).append(index)
        calls = [
            (conversation, self._script_args(conversation, [events[i] for i in indexes]))
            for conversation, indexes in groups.items()
        ]
        if len(calls) == 1 and not ephemeral:  # the common webhook case: no pipeline needed
            replies = [await self._redis.evalsha(self._sha or "", 3, *calls[0][1])]
        else:
            pipe = self._redis.pipeline(transaction=False)
            for _, args in calls:
                pipe.evalsha(self._sha or "", 3, *args)
            for index in ephemeral:
                event = events[index]
                pipe.publish(self._prefix + event.conversation_id, event_encoder.encode(event))
            replies = await pipe.execute()
        results: list[Published | None] = [None] * len(events)
        for (conversation, _), reply in zip(calls, replies, strict=False):
            for index, seq in zip(groups[conversation], reply, strict=True):
                results[index] = Published(events[index].id, abs(seq), duplicate=seq < 0)
        for index in ephemeral:
            results[index] = Published(events[index].id, 0)
        return results  # type: ignore[return-value]

    def _script_args(self, conversation: str, events: list[Event]) -> list[Any]:
        args: list[Any] = [
            *stream_keys(conversation, self.namespace),
            self._prefix + conversation,
            self.maxlen,
            self.ended_ttl,
        ]
        for event in events:
            head, tail = wire.encode_parts(event)
            args += (event.id, head, tail, 1 if isinstance(event, Ended) else 0)
        return args

    # -- reading --------------------------------------------------------------------------------

    async def read(
        self, conversation: str, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        if limit <= 0:
            return []
        rows = await self._call(
            self._redis.xrange,
            stream_keys(conversation, self.namespace)[2],
            f"{after + 1}-0",
            "+",
            count=limit,
        )
        return [(int(entry_id.split(b"-", 1)[0]), fields[b"e"]) for entry_id, fields in rows]

    async def read_before(
        self, conversation: str, *, before: int | None = None, limit: int = 50
    ) -> list[tuple[int, bytes]]:
        if limit <= 0 or (before is not None and before <= 1):
            return []
        end = "+" if before is None else f"{before - 1}-0"
        rows = await self._call(
            self._redis.xrevrange,
            stream_keys(conversation, self.namespace)[2],
            end,
            "-",
            count=limit,
        )
        return [(int(entry_id.split(b"-", 1)[0]), fields[b"e"]) for entry_id, fields in rows[::-1]]

    async def head(self, conversation: str) -> int:
        value = await self._call(self._redis.get, stream_keys(conversation, self.namespace)[0])
        return int(value) if value is not None else 0

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        self.round_trips += 1
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            raise StoreUnavailable(f"event store unavailable: {exc}") from exc

    # -- subscriptions --------------------------------------------------------------------------

    def _channel(self, subscription: Subscription) -> bytes:
        return (self._prefix + subscription.target).encode()

    async def _attach(self, subscription: Subscription) -> None:
        table = self._exact if subscription.exact else self._patterns
        table[subscription.target].append(subscription)
        channel = self._channel(subscription)
        try:
            if not self._listening.is_set():
                raise StoreUnavailable("event store unavailable: pub/sub link is down")
            await self._sync()
            pending = self._pending.get(channel)
            if pending is not None:
                await asyncio.wait_for(asyncio.shield(pending), CONFIRM_TIMEOUT)
        except (RedisError, TimeoutError) as exc:
            self._detach(subscription)
            raise StoreUnavailable(f"event store unavailable: {exc}") from exc
        except BaseException:
            self._detach(subscription)
            raise

    def _detach(self, subscription: Subscription) -> None:
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
                try:
                    await self._await_confirmations(reader)
                    self._listening.set()
                    if not first:
                        self._recheck_all()
                    first = False
                    backoff = 0.05
                    await reader
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader
            except asyncio.CancelledError:
                self._listening.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except Exception as exc:
                self._listening.clear()
                self._pubsub = None
                log.warning("hub.link_lost", error=str(exc), retry_in=backoff)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
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
                for subscription in tuple(subscriptions):
                    subscription.on_event(conversation, seq, payload)


def _safe(url: str) -> str:
    """`url` without its password, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
