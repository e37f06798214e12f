"""The `redis://` hub: logs in Redis Streams, fan-out through one pub/sub connection per process.

Per conversation `c` (the braces keep its keys in one Redis Cluster slot), under the
namespace `gw` (`GATEWAY_REDIS_NAMESPACE`: gateways that must not share data share a Redis
under different namespaces):

    gw:{c}:seq   INCR counter: the last seq assigned
    gw:{c}:ids   hash event id → seq: the dedup index
    gw:{c}:log   stream of stored events, entry id `<seq>-0`, field `e` = the event's JSON
    gw:{c}:ctx   hash: the conversation's context, fields `own_address` and `role:<party id>`
    gw:{c}:epoch the log's epoch: a random id set with its first event; a log the store lost
                 starts again with another, which events and subscriptions carry
    gw:ev:c      pub/sub channel the stored events are published on (patterns: gw:ev:genesys:*);
                 on a Cluster the shard channel gw:ev:{c} (SPUBLISH), and the slot's firehose
                 gw:fh:{<tag>} for patterns (hub/redis_fanout.py)

`PUBLISH_SCRIPT` does dedup + seq + append + publish for one conversation's events atomically,
so seq order is publish order. A batch is one pipeline of one script call per conversation: one
round trip, shared with concurrent batches' calls (`gateway.hub.group_commit`).
`REMEMBER_SCRIPT` writes a context field by field (HSET: replicas writing different parties
at once both land) and gives it its log's end. The five keys expire
together: `ended_ttl` after `ended`, and `idle_ttl` after the last event (a conversation that
never ends does not stay forever) give or take 1 %: a call that stores events moves an open
log's end only once it is that far off, so a busy conversation does not rewrite five expiries
per event. The dedup index keeps the ids of the
last `maxlen` events, as the log does. The listener reconnects with capped backoff; after a
reconnect every subscription re-reads the log from its cursors (bounded: `gateway.hub.repair`),
so no subscriber stays deaf or misses what was published while the link was down.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar, cast, get_args

import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from gateway.context import EMPTY, ConversationContext
from gateway.errors import StoreUnavailable
from gateway.hub import wire
from gateway.hub.base import Hub, Published, Subscription
from gateway.hub.group_commit import Command, GroupCommit
from gateway.hub.redis_fanout import RedisFanOut
from gateway.hub.repair import LogState, Page
from gateway.model import EPHEMERAL, Ended, Event, Role, event_encoder
from gateway.redis_url import REDIS_ERRORS, close, connect, parse

log = structlog.get_logger(__name__)

T = TypeVar("T")

PUBLISH_SCRIPT = """
-- KEYS: seq counter, id->seq hash, log stream, context hash, epoch
-- ARGV: channel ('': publish nothing, return the payloads for the caller to publish once
--       replicas confirmed them), maxlen, ttl after `ended` (s), an epoch for a log that has
--       none, ttl after the last event (s, idle), the publish command (PUBLISH, or SPUBLISH
--       on a Cluster), the slot's firehose channel ('': none; its messages are prefixed
--       with `<length>:<conversation>`, hub/redis_fanout.py), the conversation; then per
--       event: id, JSON without seq, ended (0|1)
-- `seq` and `epoch` go right after the first comma, which closes the type tag (hub/wire.py).
local out = {}
local ttl  -- the keys' expiry after this call's last stored event (none stored: unchanged)
local held = {}
local epoch = redis.call('GET', KEYS[5])
if not epoch then  -- a new log (or one the store lost, starting again): a new epoch
  epoch = ARGV[4]
  redis.call('SET', KEYS[5], epoch)
  local ends = redis.call('TTL', KEYS[1])
  if ends > 0 then redis.call('EXPIRE', KEYS[5], ends) end
end
for i = 9, #ARGV, 3 do
  local known = redis.call('HGET', KEYS[2], ARGV[i])
  if known then
    out[#out + 1] = -tonumber(known)
  else
    local seq = redis.call('INCR', KEYS[1])
    if seq == 1 then  -- the first event adopts a context remembered before it (REMEMBER_SCRIPT)
      redis.call('PERSIST', KEYS[4])
    end
    redis.call('HSET', KEYS[2], ARGV[i], seq)
    local gone = seq - tonumber(ARGV[2])  -- the dedup index keeps the ids of the last maxlen
    if gone > 0 then  -- (read before XADD, whose approximate trim keeps at least maxlen)
      local old = redis.call('XRANGE', KEYS[3], gone .. '-0', gone .. '-0')
      if old[1] then
        local ok, event = pcall(cjson.decode, old[1][2][2])
        if ok then redis.call('HDEL', KEYS[2], event.id) end
      end
    end
    local json = ARGV[i + 1]
    local cut = string.find(json, ',', 1, true)
    local payload = string.sub(json, 1, cut) .. '"seq":' .. seq .. ',"epoch":"' .. epoch
      .. '",' .. string.sub(json, cut + 1)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', payload)
    if ARGV[1] == '' then
      held[#held + 1] = payload
    else
      redis.call(ARGV[6], ARGV[1], payload)
      if ARGV[7] ~= '' then
        redis.call(ARGV[6], ARGV[7], #ARGV[8] .. ':' .. ARGV[8] .. payload)
      end
    end
    ttl = ARGV[5]  -- kept `idle` after its last event, or `ended ttl` after `ended`
    if ARGV[i + 2] == '1' then ttl = ARGV[3] end
    out[#out + 1] = seq
  end
end
if ttl then  -- an open log's end is moved once it is 1 % off where it should be
  local left = redis.call('PTTL', KEYS[1])
  if ttl ~= ARGV[5] or left < ARGV[5] * 990 or left > ARGV[5] * 1000 then
    redis.call('EXPIRE', KEYS[1], ttl)
    local ends = redis.call('PEXPIRETIME', KEYS[1])  -- the same instant for all five
    for k = 2, 5 do redis.call('PEXPIREAT', KEYS[k], ends) end
  end
end
if ARGV[1] == '' then return {out, held} end
return out
"""

REMEMBER_SCRIPT = """
-- KEYS: context hash, the log's seq counter
-- ARGV: how long a context whose log has no event yet is kept (s); then field, value pairs
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
-- The context ends when its log does, at the same instant (an open log ends when idle).
local ends = redis.call('PEXPIRETIME', KEYS[2])
if ends > 0 then
  redis.call('PEXPIREAT', KEYS[1], ends)
elseif ends == -1 then
  redis.call('PERSIST', KEYS[1])
else  -- no log yet: kept as an ended one is, until PUBLISH_SCRIPT's first event adopts it
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 0
"""

OWN_ADDRESS = "own_address"
ROLE = "role:"
ROLES: frozenset[str] = frozenset(get_args(Role))


def stream_keys(conversation: str, namespace: str = "gw") -> tuple[str, str, str]:
    """The seq counter, dedup hash and log stream keys of a conversation."""
    base = namespace + ":{" + conversation + "}"
    return base + ":seq", base + ":ids", base + ":log"


def epoch_key(conversation: str, namespace: str = "gw") -> str:
    """The key holding a conversation log's epoch."""
    return namespace + ":{" + conversation + "}:epoch"


def context_key(conversation: str, namespace: str = "gw") -> str:
    """The hash holding a conversation's context (beside its log, in the same slot)."""
    return namespace + ":{" + conversation + "}:ctx"


class RedisHub(Hub):
    """A hub on Redis (7 or later: a server, a Sentinel-managed primary or a Cluster) at `url`;
    every replica sharing it shares the logs."""

    def __init__(
        self,
        url: str,
        *,
        maxlen: int = 10_000,
        ended_ttl: float = 7 * 86400,
        idle_ttl: float = 30 * 86400,
        max_backoff: float = 2.0,
        max_connections: int = 64,
        namespace: str = "gw",
        min_replicas_ack: int = 0,
        ack_timeout: float = 1.0,
        **repair: Any,
    ) -> None:
        super().__init__(**repair)
        self.target = parse(url)
        self.url = self.target.safe
        self.namespace = namespace
        self.min_replicas_ack = min_replicas_ack
        self.ack_timeout_ms = max(int(ack_timeout * 1000), 1)
        self.maxlen = maxlen
        self.ended_ttl = int(ended_ttl)
        self.idle_ttl = max(int(idle_ttl), 1)
        # A bounded pool: a burst of requests waits for a connection instead of opening
        # hundreds. Fail fast otherwise: the caller answers 503 and the sender retries.
        self._redis = connect(self.target, max_connections=max_connections)
        self._reads = 0
        self._publish_sha = ""  # until start() loads them, a call reloads and tries again
        self._remember_sha = ""
        self._fanout = RedisFanOut(self._redis, namespace, max_backoff)
        # With `min_replicas_ack`, a batch of writes ends with a WAIT on each primary written to.
        self._writes = GroupCommit(self._redis, confirm=self._queue_wait)

    @property
    def reconnects(self) -> int:  # type: ignore[override]  # read-only: the fan-out counts
        return self._fanout.reconnects

    @property
    def subscription_passes(self) -> int:
        """The fan-out links' subscription passes so far (concurrent subscribers share one)."""
        return self._fanout.passes

    @property
    def round_trips(self) -> int:  # type: ignore[override]  # concurrent writes share one
        return self._reads + self._writes.batches

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._load_scripts()
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(f"Redis at {self.url} is unreachable: {exc}") from exc
        await self._fanout.start()

    async def close(self) -> None:
        await self._writes.close()
        await self._fanout.close()
        await close(self._redis)

    async def ready(self) -> bool:
        """The fan-out listens and the server answers as a primary: a primary Sentinel just
        demoted, or one that stopped, makes the replica unready until the new one answers."""
        if not self._fanout.listening:
            return False
        try:
            if isinstance(self._redis, RedisCluster):  # each primary answers
                return bool(await self._redis.ping(target_nodes=RedisCluster.PRIMARIES))
            role = await self._redis.execute_command("ROLE")  # type: ignore[no-untyped-call]
        except REDIS_ERRORS:
            return False
        return bool(role) and role[0] in (b"master", "master")

    # -- writing --------------------------------------------------------------------------------

    async def _load_scripts(self) -> None:
        self._publish_sha = await self._redis.script_load(PUBLISH_SCRIPT)
        self._remember_sha = await self._redis.script_load(REMEMBER_SCRIPT)

    async def _scripted(self, run: Callable[[], Awaitable[T]]) -> T:
        """`run()`, which calls the hub's scripts; once more after reloading them if the server
        lost its script cache (it restarted). Raises `StoreUnavailable` for any Redis error."""
        try:
            try:
                return await run()
            except NoScriptError:
                await self._load_scripts()
                return await run()
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(f"event store unavailable: {exc}") from exc

    async def publish(self, events: Sequence[Event]) -> list[Published]:
        if not events:
            return []
        return await self._scripted(lambda: self._publish(events))

    async def _publish(self, events: Sequence[Event]) -> list[Published]:
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
        wait = self.min_replicas_ack > 0 and bool(calls)
        commands: list[Command] = []
        for _, args in calls:
            if wait:
                args[5] = ""  # published below, once replicas confirmed the batch
            commands.append(("EVALSHA", self._publish_sha, 5, *args))
        for index in ephemeral:
            event = events[index]
            payload = event_encoder.encode(event)
            commands += self._fanout.publish_commands(event.conversation_id, payload)
        replies = await self._writes.execute(commands, confirm=groups.keys() if wait else ())
        if wait:
            replies = await self._confirmed(calls, replies, len(replies) - len(commands))
        results: list[Published | None] = [None] * len(events)
        for (conversation, _), reply in zip(calls, replies, strict=False):
            for index, seq in zip(groups[conversation], reply, strict=True):
                results[index] = Published(events[index].id, abs(seq), duplicate=seq < 0)
        for index in ephemeral:
            results[index] = Published(events[index].id, 0)
        return results  # type: ignore[return-value]

    def _queue_wait(self, pipe: Any, conversations: Collection[str]) -> int:
        """Queue on `pipe` what has each primary the batch is written to (the one primary, off
        a Cluster) confirm its replication: a write for WAIT to count from (a batch of
        duplicates writes nothing, and WAIT counts from the connection's last write: this one
        makes it count from now, past the original writes), then WAIT, on the connection the
        pipeline writes that primary's scripts on. The number of replies queued."""
        targets: list[dict[str, Any]] = [{}]
        if isinstance(self._redis, RedisCluster):
            nodes = {self._redis.get_node_from_key(self._seq_key(c)) for c in conversations}
            targets = [{"target_nodes": node} for node in nodes]
        for target in targets:
            pipe.execute_command("PUBLISH", self._fanout.ack_channel, b"", **target)
            pipe.execute_command("WAIT", self.min_replicas_ack, self.ack_timeout_ms, **target)
        return 2 * len(targets)

    async def _confirmed(
        self, calls: list[tuple[str, list[Any]]], replies: list[Any], waits: int
    ) -> list[Any]:
        """After a batch stored with `WAIT`: raise `StoreUnavailable` unless enough replicas
        of every primary written to confirmed it; else publish its events (only now: a
        subscriber is never shown an event a failover could still lose) and return the
        scripts' seqs."""
        acked = min(int(reply) for reply in replies[-waits:][1::2])
        if acked < self.min_replicas_ack:
            raise StoreUnavailable(
                f"event store: {acked} of {self.min_replicas_ack} replicas confirmed the batch "
                f"within {self.ack_timeout_ms} ms (stored; safe to retry)"
            )
        seqs = []
        pipe = self._redis.pipeline(transaction=False)
        for (conversation, _), (stored, payloads) in zip(calls, replies, strict=False):
            seqs.append(stored)
            for payload in payloads:
                for command in self._fanout.publish_commands(conversation, payload):
                    pipe.execute_command(*command)
        await pipe.execute()
        return seqs

    def _script_args(self, conversation: str, events: list[Event]) -> list[Any]:
        args: list[Any] = [
            *stream_keys(conversation, self.namespace),
            context_key(conversation, self.namespace),
            epoch_key(conversation, self.namespace),
            self._fanout.channel(conversation),
            self.maxlen,
            self.ended_ttl,
            f"{random.getrandbits(32):08x}",  # unique, not secret: no system call
            self.idle_ttl,
            self._fanout.publish_command(),
            self._fanout.firehose(conversation),
            conversation,
        ]
        encode = wire.encode
        for event in events:
            args += (event.id, encode(event), 1 if isinstance(event, Ended) else 0)
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
        value = await self._call(self._redis.get, self._seq_key(conversation))
        return int(value) if value is not None else 0

    async def state(self, conversation: str) -> LogState:
        seq_key, _, log_key = stream_keys(conversation, self.namespace)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(seq_key)
        pipe.get(epoch_key(conversation, self.namespace))
        pipe.xrange(log_key, "-", "+", count=1)
        head, epoch, first = await self._call(pipe.execute)
        return _state(head, epoch, _seq(first[0][0]) if first else 0)

    async def read_page(self, conversation: str, after: int, limit: int) -> Page:
        seq_key, _, log_key = stream_keys(conversation, self.namespace)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(seq_key)
        pipe.get(epoch_key(conversation, self.namespace))
        pipe.xrange(log_key, f"{after + 1}-0", "+", count=limit)
        head, epoch, rows = await self._call(pipe.execute)
        return Page(
            after=after,
            state=_state(head, epoch, _seq(rows[0][0]) if rows else 0),
            rows=[(_seq(entry_id), fields[b"e"]) for entry_id, fields in rows],
            more=len(rows) >= limit,
        )

    # -- conversation context -----------------------------------------------------------------

    async def contexts(self, conversations: Collection[str]) -> dict[str, ConversationContext]:
        names = list(conversations)
        if not names:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for conversation in names:
            pipe.hgetall(context_key(conversation, self.namespace))
        rows = await self._call(pipe.execute)
        return {conversation: _context(row) for conversation, row in zip(names, rows, strict=True)}

    async def remember(self, learned: Mapping[str, ConversationContext]) -> None:
        calls = [(c, _fields(context)) for c, context in learned.items() if context != EMPTY]
        if calls:
            await self._scripted(lambda: self._remember(calls))

    async def _remember(self, calls: list[tuple[str, list[str]]]) -> None:
        commands: list[Command] = []
        for conversation, fields in calls:
            keys = context_key(conversation, self.namespace), self._seq_key(conversation)
            commands.append(("EVALSHA", self._remember_sha, 2, *keys, self.ended_ttl, *fields))
        await self._writes.execute(commands)

    def _seq_key(self, conversation: str) -> str:
        return stream_keys(conversation, self.namespace)[0]

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        self._reads += 1
        try:
            return await method(*args, **kwargs)
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(f"event store unavailable: {exc}") from exc

    # -- subscriptions --------------------------------------------------------------------------

    async def _attach(self, subscription: Subscription) -> None:
        await self._fanout.attach(subscription)

    def _detach(self, subscription: Subscription) -> None:
        self._fanout.detach(subscription)


def _fields(context: ConversationContext) -> list[str]:
    """The context hash fields (name, value, …) that lay `context` over a stored one."""
    fields = [] if context.own_address is None else [OWN_ADDRESS, context.own_address]
    for party, role in context.roles.items():
        fields += (ROLE + party, role)
    return fields


def _context(row: dict[bytes, bytes]) -> ConversationContext:
    """A context hash as read back (`EMPTY` when there is none). A role this version does not
    know (written by a newer one) is left out: context then says nothing about that party."""
    own_address = None
    roles: dict[str, Role] = {}
    for field, value in row.items():
        name, text = field.decode(), value.decode()
        if name == OWN_ADDRESS:
            own_address = text
        elif name.startswith(ROLE) and text in ROLES:
            roles[name.removeprefix(ROLE)] = cast(Role, text)
    return ConversationContext(own_address=own_address, roles=roles) if row else EMPTY


def _seq(entry_id: bytes) -> int:
    """The seq of a log entry (its stream id is `<seq>-0`)."""
    return int(entry_id.split(b"-", 1)[0])


def _state(head: bytes | None, epoch: bytes | None, first: int) -> LogState:
    return LogState(
        head=int(head) if head is not None else 0,
        epoch=epoch.decode() if epoch is not None else "",
        first=first,
    )
