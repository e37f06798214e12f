"""The HTTP clients connectors reach their platforms with: two connection pools per dialect.

A vendor session holds connections of two kinds. A WebSocket (wonderful, signalwire's relay,
the visitor widget's Socket.IO) holds one for the session's whole life, and a long poll
(server_events) one for up to its hold time, again and again: a session that is alive holds one
of these at almost every moment. A request (a start, a send, a history page, a short poll) is
answered at once and gives its connection back. One shared pool for both is how the 101st
session used to wait forever behind the 100 held ones (issue 24): so each dialect gets

- `held`: the connections a session keeps open, at most `GATEWAY_<DIALECT>_MAX_CONNECTIONS`
  (default: the replica's `max_sessions`, one for each session it may own: the pool never is
  the limit that bites, `max_sessions` is, and it answers at once), and
- `requests`: short requests, at most `GATEWAY_<DIALECT>_MAX_REQUESTS` at once (default 100,
  kept alive for reuse), which never queue behind a held poll or socket.

A connector asks for the pool that fits each call (`VendorHttp.held` or `.requests`). A call
whose error status is one of the platform's normal answers says so (`Answers`), so that
`/metrics` does not count it as a vendor error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from gateway.metrics import Sample

DEFAULT_MAX_REQUESTS = 100
"""Short requests one dialect may have in flight at once (they are answered in milliseconds:
100 connections carry thousands a second)."""
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)
"""A request's default bounds (connectors pass their own where the platform's differ)."""


@dataclass(frozen=True)
class Answers:
    """A request's `trace_request_ctx`: the HTTP error statuses that are the platform's normal
    answer to it, not a failure (server_events' long poll that timed out empty is a 400 with
    `5511`). The gateway's tracing counts no vendor error for them (`gateway/web/telemetry.py`);
    the connector still tells its answers apart by their bodies."""

    statuses: frozenset[int]


class PoolSettingError(ValueError):
    """A dialect's pool option that is not a positive whole number; the message names it."""


@dataclass(frozen=True)
class PoolLimits:
    """How many connections each of a dialect's two pools may hold."""

    held: int
    requests: int

    @classmethod
    def read(cls, dialect: str, options: Mapping[str, str], max_sessions: int) -> PoolLimits:
        """From the dialect's options `max_connections` and `max_requests`; raises
        `PoolSettingError` naming the environment variable of a bad value."""
        return cls(
            held=_positive(dialect, options, "max_connections", max_sessions),
            requests=_positive(dialect, options, "max_requests", DEFAULT_MAX_REQUESTS),
        )


def _positive(dialect: str, options: Mapping[str, str], name: str, default: int) -> int:
    raw = options.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise PoolSettingError(
            f"GATEWAY_{dialect.upper()}_{name.upper()} = {raw!r}: must be a whole number, 1 or more"
        )
    return value


class VendorHttp:
    """One dialect's two client sessions: `held` for connections a session keeps open (a
    WebSocket, a long poll), `requests` for requests answered at once; and `shared`, what the
    dialect's connectors share for the pools' life, by a key of the dialect's (signalwire: one
    Relay socket per subscriber, `adapters/signalwire/link.py`)."""

    __slots__ = ("held", "requests", "shared")

    def __init__(self, requests: aiohttp.ClientSession, held: aiohttp.ClientSession) -> None:
        self.requests = requests
        self.held = held
        self.shared: dict[str, object] = {}


class VendorPools:
    """Every dialect's `VendorHttp`, made when a connector of the dialect first needs it (in
    the running loop) and closed together by `close()`. `traced(dialect)` gives the trace
    configs of a dialect's requests (they know their dialect: its pools are its own).
    `dialects` are reported in `/metrics` from the start (none in use, their limits), before
    their pools are made."""

    def __init__(
        self,
        limits_for: Callable[[str], PoolLimits],
        traced: Callable[[str], Sequence[aiohttp.TraceConfig]] = lambda dialect: (),
        dialects: Iterable[str] = (),
    ) -> None:
        self._limits_for = limits_for
        self._traced = traced
        self._dialects = frozenset(dialects)
        self._pools: dict[str, tuple[VendorHttp, PoolLimits]] = {}

    def __call__(self, dialect: str) -> VendorHttp:
        made = self._pools.get(dialect)
        if made is None:
            limits = self._limits_for(dialect)
            traces = list(self._traced(dialect))
            http = VendorHttp(
                requests=self._session(limits.requests, traces),
                held=self._session(limits.held, traces),
            )
            made = self._pools[dialect] = (http, limits)
        return made[0]

    def _session(self, limit: int, traces: list[aiohttp.TraceConfig]) -> aiohttp.ClientSession:
        # limit_per_host 0: one platform is usually one host, and the pool's own limit is
        # the bound that is meant. Connections are kept alive: a long poll's next poll and a
        # burst of requests reuse them.
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0)
        # No cookie jar: a pool serves many vendor sessions, and a cookie one session's platform
        # sets must not ride on another's requests (a CometD server takes every client sending
        # one browser cookie for tabs of one browser and lets only one of them hold a poll). A
        # connector that needs its session's cookies keeps them (adapters/genesys/cometd.py).
        return aiohttp.ClientSession(
            connector=connector,
            timeout=TIMEOUT,
            trace_configs=traces,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        for http, _ in self._pools.values():
            await http.requests.close()
            await http.held.close()
        self._pools.clear()

    def samples(self) -> list[Sample]:
        """Connections in use and the limit, per dialect and pool (for `/metrics`)."""
        out: list[Sample] = []
        for dialect in sorted(self._dialects | self._pools.keys()):
            made = self._pools.get(dialect)
            limits = made[1] if made else self._limits_for(dialect)
            for pool, session, limit in (
                ("held", made and made[0].held, limits.held),
                ("requests", made and made[0].requests, limits.requests),
            ):
                labels = (("dialect", dialect), ("pool", pool))
                out.append(
                    Sample(
                        "vendor_connections",
                        float(_in_use(session) if session else 0),
                        labels,
                        help="Vendor connections in use, by dialect and pool (held: "
                        "WebSockets and long polls; requests: short requests).",
                    )
                )
                out.append(
                    Sample(
                        "vendor_connections_limit",
                        float(limit),
                        labels,
                        help="The most vendor connections a pool may hold "
                        "(GATEWAY_<DIALECT>_MAX_CONNECTIONS / _MAX_REQUESTS).",
                    )
                )
        return out


def _in_use(session: aiohttp.ClientSession) -> int:
    connector = session.connector
    if connector is None or connector.closed:
        return 0
    # What the connector counts against its limit: acquired connections (a WebSocket keeps
    # its own for its life). aiohttp exposes no public count; `_acquired` is what it checks.
    acquired: Iterable[object] = getattr(connector, "_acquired", ())
    return len(list(acquired))
