"""`SessionStore` on Redis, for replicas that share one (a server, a Sentinel-managed primary
or a Cluster).

gw:s:{c}              the session record (JSON), expiring once the session has ended
gw:sessions           set of conversations whose sessions should run
gw:lease:{c}          the owning replica's id, with a TTL the owner keeps renewing
gw:refs:{c}           hash [client, ref] → stored answer (idempotent commands), a day after use
gw:{rpc}:<id>         the shard channel replica <id> takes forwarded commands and answers on
gw:{rpc}:handover     the shard channel a replica says it released its sessions on

No command spans two slots, so every topology takes the same commands. A record and the index
are written one after the other, never in one transaction (a Cluster has them in two slots), in
the order that leaves a crash in between harmless: an `active` record is indexed before it is
written, any other is written before it leaves the index. An entry whose record is not active
(such a crash, or a record that expired) is skipped by the takeover scan.

The RPC channels are shard channels (`SPUBLISH`/`SSUBSCRIBE`, Redis 7) in one slot, `{rpc}`:
one connection per replica reads them, from the node serving that slot on a Cluster, and
`SPUBLISH` answers how many replicas took a message (a Cluster's plain `PUBLISH` counts only
the node it reached, which cannot tell an owner gone from an owner on another node).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from gateway.errors import StoreUnavailable
from gateway.redis_slots import slot
from gateway.redis_url import REDIS_ERRORS, Client, close, connect, follow_primary, node_client
from gateway.sessions.record import SessionRecord, record_decoder, record_encoder
from gateway.sessions.store import Kept, OwnerGone, RequestHandler, SessionStore

log = structlog.get_logger(__name__)


REFS_TTL = 86400
MAX_CONNECTIONS = 64
"""Redis connections the store of one replica may hold at once (the pub/sub one included)."""
RENEW_BATCH = 1000
"""Leases renewed per pipeline: one round trip for that many."""

_RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
)
_KEEP = (  # `SessionStore.renew_all`: 1 renewed, 2 taken again (it had lapsed), 0 another's
    "local owner = redis.call('GET', KEYS[1]) "
    "if owner == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "if owner then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2"
)
_RELEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) else return 0 end"
)


class _Rpc(msgspec.Struct, omit_defaults=True):
    kind: str  # "request" | "answer"
    id: str
    sender: str
    body: msgspec.Raw = msgspec.Raw(b"null")


_rpc_decoder = msgspec.json.Decoder(_Rpc)


def lease_key(conversation: str, namespace: str = "gw") -> str:
    """Where the replica owning `conversation`'s vendor session keeps its lease."""
    return f"{namespace}:lease:{{{conversation}}}"


class RedisStore(SessionStore):
    def __init__(self, url: str, namespace: str = "gw") -> None:
        self.replica = secrets.token_hex(8)
        self.namespace = namespace
        self._runnable = f"{namespace}:sessions"
        self._handover = self._rpc("handover").encode()  # "I released my sessions"
        self._redis: Client = connect(url, max_connections=MAX_CONNECTIONS)
        self._renew = self._redis.register_script(_RENEW)
        self._keep = self._redis.register_script(_KEEP)
        self._release = self._redis.register_script(_RELEASE)
        self._channel = self._rpc(self.replica).encode()
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._serve: RequestHandler | None = None
        self._on_handover: Callable[[], None] = lambda: None
        self._listener: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None
        self._listening = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def _record_key(self, conversation: str) -> str:
        return f"{self.namespace}:s:{{{conversation}}}"

    def _refs_key(self, scope: str) -> str:
        return f"{self.namespace}:refs:{{{scope}}}"

    def _rpc(self, replica: str) -> str:
        return f"{self.namespace}:{{rpc}}:{replica}"

    async def start(self, serve: RequestHandler, on_handover: Callable[[], None]) -> None:
        self._serve = serve
        self._on_handover = on_handover
        self._listener = asyncio.create_task(self._listen(), name="sessions-rpc")
        self._follower = asyncio.create_task(self._follow(), name="sessions-primary")
        try:
            await asyncio.wait_for(self._listening.wait(), 5)
        except TimeoutError:
            raise StoreUnavailable("session store pub/sub did not come up") from None

    async def close(self) -> None:
        for task in (self._listener, self._follower):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in list(self._tasks):
            task.cancel()
        await close(self._redis)

    def ready(self) -> bool:
        return self._listening.is_set()

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except NoScriptError:
            raise
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(f"session store unavailable: {exc}") from exc

    # -- records --------------------------------------------------------------------------

    async def load(self, conversation: str) -> SessionRecord | None:
        raw = await self._call(self._redis.get, self._record_key(conversation))
        return record_decoder.decode(raw) if raw is not None else None

    async def save(self, record: SessionRecord, ttl: float | None = None) -> None:
        import time

        record.updated_at = time.time()
        key = self._record_key(record.conversation_id)
        px = int(ttl * 1000) if ttl is not None else None
        if record.status == "active":  # indexed first (the module's docstring says why)
            await self._call(self._redis.sadd, self._runnable, record.conversation_id)
        await self._call(self._redis.set, key, record_encoder.encode(record), px=px)
        if record.status != "active":
            await self._call(self._redis.srem, self._runnable, record.conversation_id)

    async def runnable(self) -> list[str]:
        members = await self._call(self._redis.smembers, self._runnable)
        return sorted(m.decode() for m in members)

    # -- leases ---------------------------------------------------------------------------

    async def acquire(self, conversation: str, ttl: float) -> bool:
        return bool(
            await self._call(
                self._redis.set,
                lease_key(conversation, self.namespace),
                self.replica,
                nx=True,
                px=int(ttl * 1000),
            )
        )

    async def renew(self, conversation: str, ttl: float) -> bool:
        return bool(
            await self._call(
                self._renew,
                keys=[lease_key(conversation, self.namespace)],
                args=[self.replica, int(ttl * 1000)],
            )
        )

    async def renew_all(self, conversations: list[str], ttl: float) -> Kept:
        ms = int(ttl * 1000)
        batches = [
            conversations[start : start + RENEW_BATCH]
            for start in range(0, len(conversations), RENEW_BATCH)
        ]
        kept = Kept()
        for batch, answers in zip(
            batches, await asyncio.gather(*(self._keep_batch(b, ms) for b in batches)), strict=True
        ):
            for conversation, answer in zip(batch, answers, strict=True):
                if answer:
                    kept.ours.add(conversation)
                    kept.retaken += answer == 2
        return kept

    async def _keep_batch(self, batch: list[str], ms: int) -> list[int]:
        """One pipeline of the keep script by its hash (the script object's own call checks
        its client's type per call, which at thousands of leases was most of an idle
        replica's CPU); loaded again when a node restarted, or was promoted, without it."""
        try:
            answers: list[int] = await self._call(self._keep_pipeline, batch, ms)
        except NoScriptError:
            await self._call(self._redis.script_load, _KEEP)
            answers = await self._call(self._keep_pipeline, batch, ms)
        return answers

    async def _keep_pipeline(self, batch: list[str], ms: int) -> list[int]:
        pipe = self._redis.pipeline(transaction=False)
        for conversation in batch:
            pipe.evalsha(
                self._keep.sha, 1, lease_key(conversation, self.namespace), self.replica, ms
            )
        answers: list[int] = await pipe.execute()
        return answers

    async def release(self, conversation: str) -> None:
        await self._call(
            self._release, keys=[lease_key(conversation, self.namespace)], args=[self.replica]
        )

    async def owner(self, conversation: str) -> str | None:
        value = await self._call(self._redis.get, lease_key(conversation, self.namespace))
        return value.decode() if value is not None else None

    # -- command results ------------------------------------------------------------------

    async def result(self, scope: str, ref: str) -> bytes | None:
        value: bytes | None = await self._call(self._redis.hget, self._refs_key(scope), ref)
        return value

    async def remember(self, scope: str, ref: str, answer: bytes) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._refs_key(scope), ref, answer)
        pipe.expire(self._refs_key(scope), REFS_TTL)
        await self._call(pipe.execute)

    # -- forwarding -----------------------------------------------------------------------

    async def announce_handover(self) -> None:
        await self._call(self._redis.spublish, self._handover, self.replica)

    async def forward(self, owner: str, command: bytes, wait_s: float) -> bytes:
        request_id = secrets.token_hex(8)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            message = msgspec.json.encode(
                _Rpc("request", request_id, self.replica, msgspec.Raw(command))
            )
            receivers = await self._call(self._redis.spublish, self._rpc(owner), message)
            if not receivers:
                raise OwnerGone(owner)
            return await asyncio.wait_for(future, wait_s)
        finally:
            self._waiting.pop(request_id, None)

    async def _answer(self, request: _Rpc) -> None:
        assert self._serve is not None
        body = await self._serve(bytes(request.body))
        message = msgspec.json.encode(_Rpc("answer", request.id, self.replica, msgspec.Raw(body)))
        with contextlib.suppress(*REDIS_ERRORS):
            await self._redis.spublish(self._rpc(request.sender), message)

    async def _follow(self) -> None:
        """Under Sentinel, follow the primary each second: leases and records are written
        where the sentinels say, and the RPC link moves there too (gateway.redis_url)."""
        while True:
            await asyncio.sleep(1.0)
            primary = await follow_primary(self._redis)
            pubsub = self._pubsub
            link = pubsub.connection if pubsub is not None else None
            if primary is not None and link is not None and (link.host, link.port) != primary:
                log.warning("sessions.primary_moved", primary=f"{primary[0]}:{primary[1]}")
                await link.disconnect()  # the listener sees it and subscribes again there

    async def _link(self) -> Client:
        """The client the RPC link reads through: the store's own, or on a Cluster one to the
        primary serving the channels' slot now (after reading the slot map again)."""
        if not isinstance(self._redis, RedisCluster):
            return self._redis
        await self._redis.nodes_manager.initialize()
        return node_client(self._redis.nodes_manager.get_node_from_slot(slot(self._channel)))

    async def _listen(self) -> None:
        backoff = 0.05
        while True:
            link: Client | None = None
            pubsub: PubSub | None = None
            try:
                link = await self._link()
                pubsub = self._pubsub = link.pubsub()
                await pubsub.ssubscribe(self._channel, self._handover)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "ssubscribe":
                        self._listening.set()
                        backoff = 0.05
                        continue
                    if message["type"] == "sunsubscribe":  # not asked for: the slot moved
                        raise StoreUnavailable("the RPC channels' slot moved")
                    if message["type"] != "smessage":
                        continue
                    if message["channel"] == self._handover:
                        if message["data"] != self.replica.encode():
                            self._on_handover()
                        continue
                    rpc = _rpc_decoder.decode(message["data"])
                    if rpc.kind == "request":
                        task = asyncio.create_task(self._answer(rpc))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    else:
                        future = self._waiting.get(rpc.id)
                        if future is not None and not future.done():
                            future.set_result(bytes(rpc.body))
            except asyncio.CancelledError:
                await self._drop(link, pubsub)
                raise
            except Exception as exc:
                self._listening.clear()
                log.warning("sessions.rpc_link_lost", error=str(exc), retry_in=backoff)
                await self._drop(link, pubsub)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _drop(self, link: Client | None, pubsub: PubSub | None) -> None:
        """Close the RPC link's pub/sub (and its node client, on a Cluster)."""
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
            if link is not None and link is not self._redis:
                await link.aclose()
