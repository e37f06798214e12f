"""`GATEWAY_REDIS_URL` → a Redis client: one server, a Sentinel-managed primary, or a Cluster.

The forms (the hub and the session store both connect through `connect`):

    redis://[user:pass@]host:port[/db]        one server (`rediss://` for TLS, `unix://path`)
    redis+sentinel://[user:pass@]host:26379[,host2:26379…]/<master>[/<db>]
                                              the primary Sentinel names `<master>`
                                              (`rediss+sentinel://` for TLS to the data nodes)
    redis+cluster://[user:pass@]host:port[,host:port…]
                                              a Redis Cluster (7 or later), from its seed
                                              nodes (`rediss+cluster://` for TLS)

`user:pass@` authenticates to the data nodes (the primary and its replicas, or every cluster
node). Query options (all optional; names as redis-py's):

    sentinel_username, sentinel_password   Sentinel's own auth (`requirepass` in sentinel.conf);
                                           unset: the sentinels are asked without auth
    sentinel_ssl=true                      TLS to the sentinels too
    ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs (none|optional|required)
                                           TLS material, for the data nodes and the sentinels
    socket_timeout, socket_connect_timeout seconds (defaults 5 and 2)

A malformed URL raises `ValueError` naming what is wrong (the settings turn it into a
`ConfigError` at start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError

from gateway.redis_pool import BoundedCluster, BoundedPool

Kind = Literal["single", "sentinel", "cluster"]
REDIS_ERRORS = (RedisError, RedisClusterException)
"""What a call to Redis raises when the store cannot answer: redis-py's cluster client raises
`RedisClusterException`, not a `RedisError`, when no node of the cluster can be reached."""

Client = aioredis.Redis | RedisCluster
"""What `connect` gives: commands, pipelines and scripts read the same on both; pub/sub
differs (a cluster's shard channels are read from the node serving their slot: `node_client`)."""

SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": ("single", False),
    "rediss": ("single", True),
    "unix": ("single", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
"""URL scheme → topology and whether the data nodes speak TLS."""

_TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
_OPTIONS = frozenset(
    {
        "sentinel_username",
        "sentinel_password",
        "sentinel_ssl",
        "socket_timeout",
        "socket_connect_timeout",
        *_TLS_OPTIONS,
    }
)


@dataclass(frozen=True)
class RedisTarget:
    """A parsed `GATEWAY_REDIS_URL` (never logged whole: `safe` hides the passwords)."""

    kind: Kind
    url: str
    tls: bool = False
    hosts: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def safe(self) -> str:
        """The URL without its passwords, for messages and logs."""
        scheme, _, rest = self.url.partition("://")
        if "@" in rest.split("/", 1)[0] or "@" in rest.split("?", 1)[0]:
            rest = "***@" + rest.split("@", 1)[1]
        return f"{scheme}://{rest.split('?', 1)[0]}"

    def _tls_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k in _TLS_OPTIONS}

    def _timeouts(self) -> dict[str, Any]:
        return {
            "socket_timeout": float(self.options.get("socket_timeout", 5)),
            "socket_connect_timeout": float(self.options.get("socket_connect_timeout", 2)),
        }


def parse(url: str) -> RedisTarget:
    """`url` taken apart; `ValueError` (naming the problem) for one that is not a form above."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(
            f"scheme must be one of {', '.join(s + '://' for s in SCHEMES)}, got {scheme!r}"
        )
    kind, tls = SCHEMES[scheme]
    if kind == "single":
        return RedisTarget(kind, url, tls)
    rest, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    if unknown := sorted(set(options) - _OPTIONS):
        raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(sorted(_OPTIONS))})")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    hosts = tuple(_host(part, kind) for part in netloc.split(","))
    parts = [p for p in path.split("/") if p]
    master, db = "", 0
    if kind == "sentinel":
        if not parts or len(parts) > 2:
            raise ValueError(
                "a sentinel URL names its master: redis+sentinel://host:26379/<master>"
            )
        master = unquote(parts[0])
        if len(parts) == 2:
            if not parts[1].isdigit():
                raise ValueError(f"database must be a number, got {parts[1]!r}")
            db = int(parts[1])
    elif parts:
        raise ValueError("a cluster URL has no path (a cluster has database 0 only)")
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in options:
            try:
                if float(options[name]) <= 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{name} must be a positive number of seconds") from None
    return RedisTarget(kind, url, tls, hosts, master, db, username, password, options)


def _host(part: str, kind: str) -> tuple[str, int]:
    host, colon, port = part.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{kind} node {part!r} must be host:port")
    return host.strip("[]"), int(port)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The Sentinel-managed pool, waiting for a free connection as `BlockingConnectionPool`."""


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)


def connect(
    target: RedisTarget | str, *, max_connections: int = 64, pool_timeout: float = 5.0
) -> Client:
    """A client for the target: a bounded pool that waits up to `pool_timeout` for a
    connection, short socket timeouts and quick retries (a caller gets `RedisError` fast and
    answers 503).

    Sentinel: every new connection asks the sentinels for the current primary; a connection to
    a primary that was demoted fails (READONLY → `ConnectionError`) and is replaced.

    Cluster: redis-py's `RedisCluster` from the seed nodes, at most `max_connections` commands
    or pipelines at once (`BoundedCluster`); a command goes to the primary serving its key's
    slot and follows `MOVED`/`ASK` and failovers."""
    if isinstance(target, str):
        target = parse(target)
    if target.kind == "cluster":
        return BoundedCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
            username=target.username,
            password=target.password,
            max_connections=max_connections,
            timeout=pool_timeout,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            health_check_interval=10,
            **target._timeouts(),
            **({"ssl": True, **target._tls_kwargs()} if target.tls else {}),
        )
    common: dict[str, Any] = {**target._timeouts(), "retry": _retry()}
    if target.kind == "single":
        pool = BoundedPool.from_url(
            target.url,
            max_connections=max_connections,
            timeout=pool_timeout,
            health_check_interval=10,
            **common,
        )
        return aioredis.Redis.from_pool(pool)  # owns it: aclose() closes it
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    tls = target._tls_kwargs()
    sentinel_tls = target.options.get("sentinel_ssl", "").lower() in ("1", "true", "yes")
    sentinel = Sentinel(
        list(target.hosts),
        sentinel_kwargs={
            **target._timeouts(),
            "username": target.options.get("sentinel_username"),
            "password": target.options.get("sentinel_password"),
            **({"ssl": True, **tls} if sentinel_tls else {}),
        },
    )
    client: aioredis.Redis = sentinel.master_for(
        target.master,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=max_connections,
        timeout=pool_timeout,
        db=target.db,
        health_check_interval=10,
        retry=_retry(),
        **auth,
        **target._timeouts(),
        **({"ssl": True, **tls} if target.tls else {}),
    )
    return client


def node_client(node: ClusterNode) -> aioredis.Redis:
    """A client of its own to one cluster node (as the cluster client reaches it: auth, TLS,
    timeouts), for a pub/sub link to the shard channels that node serves."""
    pool = aioredis.ConnectionPool(
        connection_class=node.connection_class, max_connections=2, **node.connection_kwargs
    )
    return aioredis.Redis.from_pool(pool)


async def follow_primary(client: Client) -> tuple[str, int] | None:
    """Under Sentinel, ask the sentinels for the primary now and return its address: when it
    moved, the pool closes its idle connections to the old one and drops the others as they
    come back (a demoted primary keeps its clients until the sentinels reconfigure it, seconds
    later; what is written there meanwhile is lost). None for any other topology, or when no
    sentinel answers."""
    pool = getattr(client, "connection_pool", None)
    if not isinstance(pool, SentinelConnectionPool):
        return None
    try:
        address: tuple[str, int] = await pool.get_master_address()  # type: ignore[no-untyped-call]
    except REDIS_ERRORS:
        return None
    return address


async def close(client: Client) -> None:
    """Close `client`, its pool and, under Sentinel, its connections to the sentinels."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()
