"""Event log and fan-out engines, chosen by URL scheme: `memory://` (default) or `redis://`.

One small interface (`Hub`: publish, read, subscribe; contexts, remember) in `base`; one module
per engine.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import RequestError
from gateway.hub.base import (
    MAX_SEQ,
    Hub,
    Published,
    Sink,
    Subscription,
    check_target,
    covers,
    is_pattern,
)
from gateway.redis_url import SCHEMES

__all__ = [
    "MAX_SEQ",
    "Hub",
    "Published",
    "Sink",
    "Subscription",
    "check_target",
    "covers",
    "create_hub",
    "is_pattern",
]


def create_hub(
    url: str | None,
    *,
    maxlen: int = 10_000,
    ended_ttl: float = 7 * 86400,
    namespace: str = "gw",
    idle_ttl: float = 30 * 86400,
    max_conversations: int = 100_000,
    min_replicas_ack: int = 0,
    ack_timeout: float = 1.0,
    **repair: Any,
) -> Hub:
    """The engine for `url`: `None`, `""` or `memory://` → memory; any form
    `gateway.redis_url` takes (`redis://`, `redis+sentinel://`, `redis+cluster://`, …) →
    Redis. Raises `RequestError` for any other scheme.
    `max_conversations` bounds the memory engine (Redis is bounded by its `maxmemory`);
    `min_replicas_ack` and `ack_timeout` ask Redis to confirm replication of each batch
    (`WAIT`; the memory engine has no replicas); `repair` holds the bounds on subscription
    repairs (`Hub`'s keyword arguments)."""
    if not url or url.startswith("memory://"):
        from gateway.hub.memory import MemoryHub

        return MemoryHub(
            maxlen=maxlen,
            ended_ttl=ended_ttl,
            idle_ttl=idle_ttl,
            max_conversations=max_conversations,
            **repair,
        )
    if url.split("://", 1)[0] in SCHEMES:
        from gateway.hub.redis import RedisHub

        return RedisHub(
            url,
            maxlen=maxlen,
            ended_ttl=ended_ttl,
            idle_ttl=idle_ttl,
            namespace=namespace,
            min_replicas_ack=min_replicas_ack,
            ack_timeout=ack_timeout,
            **repair,
        )
    raise RequestError(
        f"unsupported hub URL scheme in {url.split('://')[0]!r}: use memory://, redis://, "
        "redis+sentinel:// or redis+cluster://"
    )
