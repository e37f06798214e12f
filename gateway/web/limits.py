"""Rate limits: token buckets per connection and per client (in this replica)."""

from __future__ import annotations

import time
from collections import OrderedDict

from gateway.errors import GatewayError


class RateLimited(GatewayError):
    """Too many requests or frames; `retry_after_s` says when one more will be accepted."""

    code = "RATE_LIMITED"
    status = 429
    recoverable = True


class LimitExceeded(GatewayError):
    """A fixed limit (e.g. subscriptions per socket) would be exceeded."""

    code = "LIMIT_EXCEEDED"
    status = 429


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `take()` spends one or raises."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, what: str) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            wait = round((1 - self.tokens) / self.rate, 3)
            raise RateLimited(f"too many {what}: slow down", retry_after_s=wait)
        self.tokens -= 1


class ClientLimits:
    """One bucket per client id, shared by all its connections and requests here; the least
    recently seen clients are forgotten beyond `capacity`."""

    def __init__(self, rate: float, burst: float, capacity: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, client: str, what: str) -> None:
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(self.rate, self.burst)
            if len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        bucket.take(what)
