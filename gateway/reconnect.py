"""The one reconnect policy of every connector, and the option names that configure it.

Every connector reads the same options (`GATEWAY_<DIALECT>_<NAME>`, or `[dialects.<dialect>]`
in the TOML file), each a number:

| option | meaning |
|---|---|
| `timeout_s` | one HTTP request to the platform, or one WebSocket connect |
| `backoff_s` | the first reconnect delay's upper bound |
| `backoff_max_s` | the cap of a reconnect delay |
| `max_attempts` | reconnect attempts before the session is given up (`0`: never give up) |
| `heartbeat_s` | how often a held socket is pinged (finds half-open links) |
| `poll_interval_s` | the pause between two polls, on platforms polled without holding |

A dialect gives its own defaults (the vendor SDK's, where it has them). The delay before
attempt `n` (1-based) is drawn uniformly from `[0, min(backoff_max_s, backoff_s · 2^(n-1))]`
("full jitter"): after an outage, the replicas and sessions that lost the platform at once
come back spread out instead of in one wave.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.errors import RequestError

OPTION_NAMES = (
    "timeout_s",
    "backoff_s",
    "backoff_max_s",
    "max_attempts",
    "heartbeat_s",
    "poll_interval_s",
)


class LinkOptions(msgspec.Struct, frozen=True, kw_only=True):
    """A connector's link settings: the common options, read once per session."""

    timeout_s: float = 30.0
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    max_attempts: int = 8
    heartbeat_s: float = 30.0
    poll_interval_s: float = 2.0

    @classmethod
    def read(cls, options: Mapping[str, str], **defaults: Any) -> LinkOptions:
        """The common options of `options` (a dialect's settings), over `defaults` (the
        dialect's own), over this class's. Raises `RequestError` (parameter: the option) for a
        value that is not a number of the right kind, or out of range."""
        values = dict(defaults)
        for name in OPTION_NAMES:
            if name in options:
                values[name] = options[name]
        try:
            link = msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            name = str(exc).rpartition("`$.")[2].rstrip("`")
            raise RequestError(f"connector option {name}: {exc}", parameter=name) from None
        for name, ok in (
            ("timeout_s", link.timeout_s > 0),
            ("backoff_s", link.backoff_s >= 0),
            ("backoff_max_s", link.backoff_max_s >= link.backoff_s),
            ("max_attempts", link.max_attempts >= 0),
            ("heartbeat_s", link.heartbeat_s > 0),
            ("poll_interval_s", link.poll_interval_s >= 0),
        ):
            if not ok:
                value = getattr(link, name)
                raise RequestError(
                    f"connector option {name} = {value}: out of range", parameter=name
                )
        return link

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt `attempt` (1-based), jittered."""
        ceiling = min(self.backoff_max_s, self.backoff_s * 2 ** min(attempt - 1, 32))
        return random.uniform(0.0, ceiling)

    def gives_up(self, attempt: int) -> bool:
        """Whether attempt `attempt` (1-based) is past `max_attempts` (never, when it is 0)."""
        return self.max_attempts > 0 and attempt > self.max_attempts
