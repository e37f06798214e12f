"""Event log and fan-out engines, chosen by URL scheme: `memory://` (default) or `redis://`.

One small interface (`Hub`: publish, read, subscribe; contexts, remember) in `base`; one module
per engine.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import RequestError
from gateway.hub.base import Hub, Published, Sink, Subscription, is_pattern

__all__ = ["Hub", "Published", "Sink", "Subscription", "create_hub", "is_pattern"]


def create_hub(
    url: str | None,
    *,
    maxlen: int = 10_000,
    ended_ttl: float = 7 * 86400,
    namespace: str = "gw",
    **repair: Any,
) -> Hub:
    """The engine for `url`: `None`, `""` or `memory://` → memory; `redis://`, `rediss://`,
    `unix://` → Redis. Raises `RequestError` for any other scheme. `repair` holds the
    bounds on subscription repairs (`Hub`'s keyword arguments)."""
    if not url or url.startswith("memory://"):
        from gateway.hub.memory import MemoryHub

        return MemoryHub(maxlen=maxlen, ended_ttl=ended_ttl, **repair)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from gateway.hub.redis import RedisHub

        return RedisHub(url, maxlen=maxlen, ended_ttl=ended_ttl, namespace=namespace, **repair)
    raise RequestError(
        f"unsupported hub URL scheme in {url.split('://')[0]!r}: use memory:// or redis://"
    )
