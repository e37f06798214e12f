"""The Redis hub's fan-out: pub/sub links shared by every subscription of the process.

On one server (or a Sentinel-managed primary) there is one link: it subscribes to a channel (or
pattern) while at least one local subscription wants it. On a Cluster a conversation's events
are shard messages (`SPUBLISH` on `<ns>:ev:{c}`, in the conversation's slot), read from the
primary serving that slot: one link per primary, each subscribed (`SSUBSCRIBE`) to the channels
of the slots it serves. A pattern has no sharded form, so on a Cluster the publish script also
sends each event to its slot's firehose (`<ns>:fh:{<slot tag>}`, `gateway.redis_slots`), and a
process with a pattern subscription reads every slot's firehose (16384 channels over its links)
and routes by the conversation each firehose message names.

A link waits for Redis to confirm a subscription before the subscription reads its starting
point, so nothing published in between is missed. It reconnects with capped backoff; after any
reconnect (its own, or one redis-py did silently, seen as a second confirmation of the control
channel) every subscription re-reads the log from its cursors, so no subscriber stays deaf or
misses what was published while the link was down.

A link can also go deaf without breaking: a Sentinel failover may leave it subscribed on a
server that no longer gets the primary's publishes (Centrifugo's issue #1189). So every
`HEARTBEAT_S` the process publishes a beat, through the writing client (which follows the
primary, or the slot's owner), on the link's own control channel; a link that has not heard a
beat the primary accepted `DEAF_AFTER_S` ago is torn down and made again, and its subscriptions
re-read their logs. On a Cluster, a node that loses a slot (a failover, a migration) tells its
subscribers with an unsolicited `sunsubscribe`: the link is made again too, after the client
re-reads the slot map (redis-py does not move shard subscriptions by itself on our plain links).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from typing import Any

import structlog
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster

from gateway.errors import StoreUnavailable
from gateway.hub import wire
from gateway.hub.base import Subscription, pattern_subscribers
from gateway.redis_slots import SLOTS, slot, tag
from gateway.redis_url import REDIS_ERRORS, Client, follow_primary, node_client

log = structlog.get_logger(__name__)

CONFIRM_TIMEOUT = 5.0
HEARTBEAT_S = 1.0
DEAF_AFTER_S = 3.0


MAP_SETTLE_S = 5.0
"""How long a link that lost a slot waits, at most, for the slot map to show where it went."""


class _SlotMoved(StoreUnavailable):
    """A node unsubscribed a shard channel unasked: it no longer serves the channel's slot."""


class RedisFanOut:
    """Routes a conversation's published events to the local subscriptions."""

    def __init__(self, redis: Client, namespace: str, max_backoff: float) -> None:
        self._redis = redis
        self.sharded = isinstance(redis, RedisCluster)
        self._namespace = namespace
        self._prefix = f"{namespace}:ev:"
        self._token = secrets.token_hex(6)  # this process's control channels
        self.ack_channel = f"{namespace}:ack"  # nobody listens: a write for WAIT to count from
        self.max_backoff = max_backoff
        self.reconnects = 0
        self.passes = 0  # subscription passes of its links (a burst's callers share them)
        self._exact: defaultdict[str, list[Subscription]] = defaultdict(list)
        self._patterns: defaultdict[str, list[Subscription]] = defaultdict(list)
        self._links: dict[str, _Link] = {}
        self._target_slots: dict[str, int] = {}  # an exact target's slot (Cluster), kept
        self._moving: asyncio.Task[None] | None = None  # re-reading the slot map (Cluster)
        self.link_up = asyncio.Event()  # set by a link that starts listening
        self._closing = False

    @property
    def listening(self) -> bool:
        return bool(self._links) and all(link.listening for link in self._links.values())

    def channel(self, conversation: str) -> str:
        """The channel a conversation's stored events are published on (on a Cluster, in the
        conversation's slot)."""
        if self.sharded:
            return self._prefix + "{" + conversation + "}"
        return self._prefix + conversation

    def firehose(self, conversation: str) -> str:
        """On a Cluster, the channel of the conversation's slot that feeds patterns; "" else."""
        if not self.sharded:
            return ""
        return self._firehose_of(slot(self.channel(conversation)))

    def _firehose_of(self, of: int) -> str:
        return f"{self._namespace}:fh:{{{tag(of)}}}"

    def publish_command(self) -> str:
        """The command a conversation's events go out with: `SPUBLISH` on a Cluster."""
        return "SPUBLISH" if self.sharded else "PUBLISH"

    def publish_commands(self, conversation: str, payload: bytes | str) -> list[tuple[Any, ...]]:
        """The commands that publish an event stored (or ephemeral) outside the script, as the
        script would have published it."""
        command = self.publish_command()
        commands: list[tuple[Any, ...]] = [(command, self.channel(conversation), payload)]
        if self.sharded:
            data = payload.encode() if isinstance(payload, str) else payload
            message = firehose_message(conversation, data)
            commands.append((command, self.firehose(conversation), message))
        return commands

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if isinstance(self._redis, RedisCluster):
            try:
                await self._redis.initialize()
            except REDIS_ERRORS as exc:
                raise StoreUnavailable(f"Redis Cluster is unreachable: {exc}") from exc
            self._reconcile(self._redis)
        else:
            self._add(_Link(self, "", self._redis, f"{self._namespace}:ctl:{self._token}"))
        try:
            await asyncio.wait_for(self._all_listening(), CONFIRM_TIMEOUT)
        except TimeoutError:
            raise StoreUnavailable("Redis pub/sub did not come up") from None

    async def _all_listening(self) -> None:
        while not self.listening:
            self.link_up.clear()
            await self.link_up.wait()

    async def close(self) -> None:
        self._closing = True
        if self._moving is not None:
            self._moving.cancel()
        for link in list(self._links.values()):
            await link.stop()
        for table in (self._exact, self._patterns):
            for subscriptions in list(table.values()):
                for subscription in list(subscriptions):
                    subscription.close()

    def _add(self, link: _Link) -> None:
        self._links[link.name] = link
        link.start()

    # -- the Cluster's shards -------------------------------------------------------------------

    def _reconcile(self, cluster: RedisCluster) -> bool:
        """One link per primary serving slots, as the client's slot map says: links added for
        new primaries, stopped for nodes that serve none now. Whether anything changed."""
        owned: defaultdict[str, list[int]] = defaultdict(list)
        nodes: dict[str, ClusterNode] = {}
        for index, serving in cluster.nodes_manager.slots_cache.items():
            if serving:
                owned[serving[0].name].append(index)
                nodes[serving[0].name] = serving[0]
        gone = [name for name in self._links if name not in owned]
        for name in gone:
            self._retire(name)
        changed = bool(gone)
        for name, slots in owned.items():
            current = self._links.get(name)
            if current is not None and current.slots == frozenset(slots):
                continue
            changed = True
            if current is not None:  # it serves other slots now: made again for them
                self._retire(name)
            control = f"{self._namespace}:ctl:{{{tag(min(slots))}}}:{self._token}"
            self._add(_Link(self, name, node_client(nodes[name]), control, frozenset(slots)))
        return changed

    def _retire(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._links.pop(name).stop())
        task.add_done_callback(lambda t: None)

    def slots_moved(self, certain: bool = False) -> None:
        """A link lost its node or a slot: re-read the slot map (once at a time), move the links
        to the primaries serving the slots now, and once they all listen, have every
        subscription re-read its log from its cursor. `certain`: a node gave a slot up, so the
        map must change; the node asked may not know of the failover yet (gossip lags), and a
        link re-made on the stale map would listen where nothing is published."""
        if self._moving is None or self._moving.done():
            self._moving = asyncio.get_running_loop().create_task(self._follow_slots(certain))

    async def _follow_slots(self, certain: bool) -> None:
        assert isinstance(self._redis, RedisCluster)
        backoff = 0.05
        settle_by = time.monotonic() + MAP_SETTLE_S
        while not self._closing:
            try:
                await self._redis.nodes_manager.initialize()
            except REDIS_ERRORS as exc:
                log.warning("hub.slot_map_unreadable", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if self._reconcile(self._redis):
                log.warning("hub.slots_moved", primaries=sorted(self._links))
            elif certain and time.monotonic() < settle_by:
                await asyncio.sleep(backoff)  # the map is stale: ask again
                backoff = min(backoff * 2, self.max_backoff)
                continue
            break
        await self._all_listening()
        self.recheck_all()

    # -- subscriptions --------------------------------------------------------------------------

    def owner(self, channel: bytes) -> _Link | None:
        """The link that reads `channel` (the only one, off a Cluster)."""
        if not self.sharded:
            return next(iter(self._links.values()), None)
        assert isinstance(self._redis, RedisCluster)
        serving = self._redis.nodes_manager.slots_cache.get(slot(channel))
        return self._links.get(serving[0].name) if serving else None

    def wanted(self, link: _Link) -> tuple[set[bytes], set[bytes]]:
        """The channels and patterns `link` should be subscribed to now."""
        if not self.sharded:
            exact = {(self._prefix + t).encode() for t in self._exact}
            return exact, {(self._prefix + t).encode() for t in self._patterns}
        exact = set()
        for target in self._exact:
            of = self._target_slots.get(target)
            if of is None:
                of = self._target_slots[target] = slot(self.channel(target))
            if of in link.slots:
                exact.add(self.channel(target).encode())
        if self._patterns:
            exact.update(self._firehose_of(s).encode() for s in link.slots)
        return exact, set()

    async def attach(self, subscription: Subscription) -> None:
        table = self._exact if subscription.exact else self._patterns
        table[subscription.target].append(subscription)
        try:
            if not self.listening:
                raise StoreUnavailable("event store unavailable: pub/sub link is down")
            links = list(self._links.values())
            await asyncio.gather(*(link.sync() for link in links))
            pending = [f for link in links for f in link.pending_for(self._channels(subscription))]
            if pending:
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*pending)), CONFIRM_TIMEOUT)
        except (*REDIS_ERRORS, TimeoutError) as exc:
            self.detach(subscription)
            raise StoreUnavailable(f"event store unavailable: {exc}") from exc
        except BaseException:
            self.detach(subscription)
            raise

    def _channels(self, subscription: Subscription) -> Iterable[bytes]:
        if subscription.exact:
            return (self.channel(subscription.target).encode(),)
        if self.sharded:
            return (self._firehose_of(s).encode() for s in range(SLOTS))
        return ((self._prefix + subscription.target).encode(),)

    def detach(self, subscription: Subscription) -> None:
        table = self._exact if subscription.exact else self._patterns
        subscriptions = table.get(subscription.target)
        if subscriptions is None or subscription not in subscriptions:
            return
        subscriptions.remove(subscription)
        if not subscriptions:
            del table[subscription.target]
            self._target_slots.pop(subscription.target, None)
            for link in list(self._links.values()):
                task = asyncio.get_running_loop().create_task(link.sync_quietly())
                task.add_done_callback(lambda t: None)

    def recheck_all(self) -> None:
        self.reconnects += 1
        log.info("hub.reconnected", reconnects=self.reconnects)
        for table in (self._exact, self._patterns):
            for subscriptions in list(table.values()):
                for subscription in subscriptions:
                    subscription.recheck()

    def route(self, channel: bytes, pattern: bytes | None, payload: bytes) -> None:
        """Hand a message of a link to the subscriptions it is for."""
        prefix_len = len(self._prefix)
        if pattern is not None:
            subscriptions = self._patterns.get(pattern[prefix_len:].decode())
            conversation = channel[prefix_len:].decode()
        elif channel.startswith(self._prefix.encode()):
            conversation = channel[prefix_len:].decode()
            if self.sharded:
                conversation = conversation[1:-1]  # the braces of `{c}`
            subscriptions = self._exact.get(conversation)
        else:  # a firehose: `<len>:<conversation><payload>`
            conversation, payload = read_firehose(payload)
            subscriptions = pattern_subscribers(self._patterns, conversation)
        if subscriptions:
            seq = wire.read_seq(payload)
            epoch = wire.read_epoch(payload) if seq else ""
            for subscription in tuple(subscriptions):
                subscription.on_event(conversation, seq, epoch, payload)

    async def beat(self, control: bytes, number: int) -> bool:
        """Publish beat `number` on `control` through the writing client; whether a primary
        took it."""
        try:
            await self._redis.execute_command(self.publish_command(), control, number)
        except REDIS_ERRORS:
            return False  # no primary to publish on: writes fail too, and ready() says so
        return True


def firehose_message(conversation: str, payload: bytes) -> bytes:
    """A firehose message: the conversation (its length, `:`, itself), then the event."""
    name = conversation.encode()
    return b"%d:%s%s" % (len(name), name, payload)


def read_firehose(message: bytes) -> tuple[str, bytes]:
    """The conversation and event of a firehose message."""
    length, _, rest = message.partition(b":")
    size = int(length)
    return rest[:size].decode(), rest[size:]


class _Link:
    """One pub/sub connection: to the server (off a Cluster) or to one primary of a Cluster,
    subscribed to what `RedisFanOut.wanted` says, confirming, listening, beating."""

    def __init__(
        self,
        fanout: RedisFanOut,
        name: str,
        redis: Client,
        control: str,
        slots: frozenset[int] = frozenset(),
    ) -> None:
        self.fanout = fanout
        self.name = name  # the node's host:port on a Cluster
        self.slots = slots  # the slots it serves (Cluster)
        self._redis = redis
        self._own_client = fanout.sharded  # a node client of its own, closed with the link
        self._control = control.encode()
        self._sharded = fanout.sharded
        self._beat = 0  # the last beat published
        self._heard = 0  # the last beat heard on the link
        self._sent: deque[tuple[int, float]] = deque()  # beats the primary took, not yet heard
        self._pubsub: PubSub | None = None
        self._active: set[bytes] = set()  # channels and patterns subscribed on this link
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self._leaving: Counter[bytes] = Counter()  # SUNSUBSCRIBEs sent, not yet confirmed
        self._sync_lock = asyncio.Lock()
        self._next_pass: asyncio.Task[None] | None = None  # a sync pass not yet reading
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def start(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(), name=f"hub-listener {self.name}".strip()
        )

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._own_client:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    def pending_for(self, channels: Iterable[bytes]) -> list[asyncio.Future[None]]:
        return [f for c in channels if (f := self._pending.get(c)) is not None]

    async def sync_quietly(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS, StoreUnavailable):
            await self.sync()

    async def sync(self) -> None:
        """Bring the link's subscriptions in line with the tables (order-proof: it diffs).

        A pass diffs every wanted channel, so callers share passes: a caller joins the pass
        that has not yet read the tables, if there is one, else queues the next. A burst of
        N attaches costs a few passes, not N passes over N channels."""
        if self._next_pass is None:
            self._next_pass = asyncio.get_running_loop().create_task(self._sync_pass())
            self._next_pass.add_done_callback(_retrieved)
        await asyncio.shield(self._next_pass)

    async def _sync_pass(self) -> None:
        async with self._sync_lock:
            self._next_pass = None  # the tables are read from here on: later callers queue
            self.fanout.passes += 1
            pubsub = self._pubsub
            if pubsub is None:
                return
            want_exact, want_patterns = self.fanout.wanted(self)
            have = self._active - {self._control}
            subscribe = [c for c in want_exact if c not in have]
            psubscribe = [c for c in want_patterns if c not in have]
            unsubscribe = [c for c in have if c not in want_exact and c not in want_patterns]
            loop = asyncio.get_running_loop()
            for channel in subscribe + psubscribe:
                self._pending[channel] = loop.create_future()
            self._active.update(subscribe, psubscribe)
            self._active.difference_update(unsubscribe)
            if self._sharded:
                await _send_each(pubsub, "SSUBSCRIBE", subscribe)
                self._leaving.update(unsubscribe)
                await _send_each(pubsub, "SUNSUBSCRIBE", unsubscribe)
                return
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
                if self._sharded:
                    await pubsub.ssubscribe(self._control)
                else:
                    await pubsub.subscribe(self._control)
                async with self._sync_lock:
                    self._active = {self._control}
                    self._leaving.clear()
                    self._pubsub = pubsub
                await self.sync()
                reader = asyncio.create_task(self._read(pubsub))
                watch = asyncio.create_task(self._watch(pubsub))
                try:
                    await self._await_confirmations(reader)
                    self._listening.set()
                    self.fanout.link_up.set()
                    if not first:
                        self.fanout.recheck_all()
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
                log.warning("hub.link_lost", node=self.name, error=str(exc), retry_in=backoff)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(StoreUnavailable("pub/sub link lost"))
                        future.exception()  # retrieved: nobody may be waiting on it
                self._pending.clear()
                if self._sharded:  # its node may be gone, or serve other slots: ask again
                    self.fanout.slots_moved(certain=isinstance(exc, _SlotMoved))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.fanout.max_backoff)

    async def _await_confirmations(self, reader: asyncio.Task[None]) -> None:
        """Wait until Redis confirmed every (p|s)subscribe sent on this link, or it died."""
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
            if not self._sharded:
                primary = await follow_primary(self._redis)
                link = pubsub.connection
                if primary is not None and link is not None and (link.host, link.port) != primary:
                    log.warning("hub.primary_moved", primary=f"{primary[0]}:{primary[1]}")
                    raise StoreUnavailable("the primary moved: the link follows it")
            self._beat += 1
            if await self.fanout.beat(self._control, self._beat):
                self._sent.append((self._beat, time.monotonic()))
            while self._sent and self._sent[0][0] <= self._heard:
                self._sent.popleft()
            if self._sent and time.monotonic() - self._sent[0][1] > DEAF_AFTER_S:
                log.warning("hub.link_deaf", node=self.name, missed=len(self._sent))
                raise StoreUnavailable("pub/sub link deaf: heartbeats not heard")

    async def _read(self, pubsub: PubSub) -> None:
        """Route every message of the link to the subscriptions it is for, in arrival order."""
        route = self.fanout.route
        control_confirmed = False
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind in ("message", "smessage"):
                if message["channel"] == self._control:
                    self._heard = max(self._heard, int(message["data"]))
                    continue
                route(message["channel"], None, message["data"])
            elif kind == "pmessage":
                route(message["channel"], message["pattern"], message["data"])
            elif kind in ("subscribe", "psubscribe", "ssubscribe"):
                channel = message["channel"]
                if channel == self._control:
                    if control_confirmed:  # redis-py reconnected and resubscribed by itself
                        if self._sharded:  # in one SSUBSCRIBE: refused past one slot
                            raise StoreUnavailable("shard link reconnected: made again")
                        self.fanout.recheck_all()
                    control_confirmed = True
                future = self._pending.pop(channel, None)
                if future is not None and not future.done():
                    future.set_result(None)
            elif kind == "sunsubscribe":
                channel = message["channel"]
                if self._leaving[channel] > 0:  # ours (the channel may be wanted again since)
                    self._leaving[channel] -= 1
                    if not self._leaving[channel]:
                        del self._leaving[channel]
                elif channel in self._active:  # not asked for: the node lost the slot
                    raise _SlotMoved(f"slot of {channel!r} moved off {self.name}")


async def _send_each(pubsub: PubSub, command: str, channels: list[bytes]) -> None:
    """`command` once per channel (a shard command's channels must share a slot), written in
    one go: a firehose is 16384 channels, which one `ssubscribe` call each took seconds to
    send. The channels are recorded as `ssubscribe`/`sunsubscribe` record them."""
    connection = pubsub.connection
    if not channels or connection is None:
        return
    packed = connection.pack_commands([(command, channel) for channel in channels])
    await connection.send_packed_command(packed, check_health=False)
    if command == "SSUBSCRIBE":
        pubsub.shard_channels.update(dict.fromkeys(channels))
    else:
        for channel in channels:
            pubsub.shard_channels.pop(channel, None)


def _retrieved(task: asyncio.Task[None]) -> None:
    """A shared pass whose callers all left still has its exception read (no warning)."""
    if not task.cancelled():
        task.exception()
