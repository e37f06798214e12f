"""Settings: defaults, then an optional TOML file, then `GATEWAY_*` environment, then CLI flags.

Every setting has a default, so the gateway runs with no configuration at all (memory engine,
port 8080). Values are validated once at start; a bad one stops the start with a message that
names the key and says why (`ConfigError`).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import os
import textwrap
import tomllib
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

import msgspec

from gateway.adapter import ENTRY_POINT_GROUP, DialectSettings, read_secret_files
from gateway.vendor_http import PoolLimits, PoolSettingError


class ConfigError(Exception):
    """A setting that cannot be used; the message names it (and `key`, when it is one)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


JWT_ALGORITHMS = frozenset(
    {f"{family}{bits}" for family in ("HS", "RS", "ES", "PS") for bits in (256, 384, 512)}
    | {"EdDSA"}
)
"""The signature algorithms `jwt_algorithms` may list (PyJWT's, `none` never)."""
_LISTS = {"dialects", "jwt_algorithms"}
"""Settings given comma-separated in the environment."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every setting of the gateway. Environment names are `GATEWAY_` + the upper-cased name."""

    host: str = "0.0.0.0"
    port: int = 8080
    redis_url: str | None = None
    """`redis://…` switches the hub to Redis (shared by every replica); unset means memory.
    `redis+sentinel://host:26379,…/<master>[/<db>]` follows a Sentinel-managed primary,
    `redis+cluster://host:port,…` uses a Redis Cluster (every form: gateway/redis_url.py)."""
    redis_min_replicas_ack: int = 0
    """Replicas that must confirm each ingested batch (Redis `WAIT`) before it is acknowledged;
    fewer within `redis_ack_timeout_s` answers 503 (stored, safe to retry). 0: no waiting."""
    redis_ack_timeout_s: float = 1.0
    redis_namespace: str = "gw"
    """Prefix of every Redis key and channel: gateways that must not share conversations can
    share one Redis under different namespaces."""
    dialects: list[str] | None = None
    """Dialects to load (comma-separated in the environment); unset loads every built-in one."""
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_redact: bool = True
    """Mask message text and customer identifiers in logs (any level; see docs/logging.md)."""
    max_body_bytes: int = 1_048_576
    ws_max_frame_bytes: int = 65_536
    ws_send_queue: int = 2048
    """Frames a socket may have waiting; a socket that falls further behind is closed (4008)."""
    ws_heartbeat_s: float = 30.0
    history_max_limit: int = 1000
    retention_maxlen: int = 10_000
    """Events kept per conversation log (oldest trimmed first)."""
    retention_ended_s: float = 7 * 86400
    """How long a conversation's log is kept after its `ended` event."""
    retention_idle_s: float = 30 * 86400
    """How long a conversation's log is kept after its last event when it never ends."""
    memory_max_conversations: int = 100_000
    """The memory engine's bound: beyond it, the least recently written conversations are
    forgotten (their subscribers are told the log restarted if it comes back)."""
    repair_reads_per_s: float = 1000.0
    repair_burst: int = 100
    repair_concurrency: int = 8
    """Bounds on the log reads that repair subscriptions after a Redis reconnect or a lost
    pub/sub message (per replica): reads a second, saved up, and at once (docs/scaling.md)."""
    pattern_idle_s: float = 300.0
    """A pattern subscription (`genesys:*`) forgets a conversation it saw nothing of for this
    long (to twice it), and repairs after a reconnect only those it still follows."""
    shutdown_timeout_s: float = 10.0
    demo: bool = False
    """Start every loaded dialect's platform emulator in-process and point its connector at
    it (docs/console.md); with no JWT key configured it also turns authentication off."""
    auth: Literal["jwt", "none"] = "jwt"
    """`none` lets anyone in (development only; a warning is logged at start)."""
    jwt_secret: str | None = None
    jwt_secret_file: str | None = None
    jwt_public_key_file: str | None = None
    jwt_jwks_file: str | None = None
    jwt_jwks_url: str | None = None
    """An identity provider's JWKS endpoint (https://…/jwks.json): its keys are cached and
    picked by the token's `kid`; an unknown kid refreshes them (a rotated key)."""
    jwt_jwks_cache_s: float = 300.0
    """How long the fetched JWKS is kept before it is fetched again."""
    jwt_jwks_timeout_s: float = 5.0
    """How long one fetch of the JWKS may take."""
    jwt_jwks_refresh_s: float = 30.0
    """The least time between two fetches the JWKS cache did not ask for (unknown kids, an
    unreachable provider): tokens with made-up kids cannot make the gateway hammer it."""
    jwt_algorithms: list[str] = msgspec.field(
        default_factory=lambda: ["HS256", "RS256", "ES256", "PS256", "EdDSA"]
    )
    """Signature algorithms accepted (comma-separated in the environment). HMAC ones verify with
    the secret, the others with the public keys; a token with any other `alg` is refused."""
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_s: float = 30.0
    webhook_window_s: float = 300.0
    """How old a signed webhook's timestamp may be (replay window)."""
    max_subscriptions: int = 100
    """Subscriptions one socket may hold."""
    ws_rate: float = 50.0
    ws_burst: float = 200.0
    """Client frames a socket may send per second, and in a burst."""
    client_rate: float = 100.0
    client_burst: float = 400.0
    """Frames and API requests one client (token `sub`, else its address) may make per second
    across its connections to this replica, and in a burst."""
    lease_ttl_s: float = 10.0
    """How long a replica's ownership of a vendor session lasts without renewal: the bound on
    how long a dead replica's sessions wait before another replica takes them over."""
    session_idle_s: float = 1800.0
    """A vendor session with no traffic this long is released (resumed on the next command)."""
    command_timeout_s: float = 15.0
    """How long a command may take, forwarding to the owning replica included; a start that
    has not got its vendor session by then is answered with an error and leaves none behind."""
    max_sessions: int = 5000
    """Vendor sessions this replica may own at once; past it a start is refused at once with
    `CAPACITY` (recoverable: retry, another replica may have room). Each holds about one file
    descriptor (docs/scaling.md). Per dialect, `GATEWAY_<DIALECT>_MAX_CONNECTIONS` bounds the
    held connections (WebSockets, long polls; default this) and `GATEWAY_<DIALECT>_MAX_REQUESTS`
    the short requests in flight (default 100)."""
    max_starting: int = 64
    """Starts (and takeovers) this replica runs at once; more wait their turn, each within
    `command_timeout_s`."""
    dialect_settings: dict[str, dict[str, str]] = {}
    """`[dialects.<name>]` tables of the TOML file (connector URL and credentials)."""

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("port", 0 < self.port < 65536, "must be between 1 and 65535"),
            ("redis_min_replicas_ack", self.redis_min_replicas_ack >= 0, "must be 0 or more"),
            ("redis_ack_timeout_s", self.redis_ack_timeout_s > 0, "must be positive"),
            ("max_body_bytes", self.max_body_bytes >= 1024, "must be at least 1024"),
            ("ws_max_frame_bytes", self.ws_max_frame_bytes >= 1024, "must be at least 1024"),
            ("ws_send_queue", self.ws_send_queue >= 16, "must be at least 16"),
            ("ws_heartbeat_s", self.ws_heartbeat_s > 0, "must be positive"),
            ("history_max_limit", self.history_max_limit >= 1, "must be at least 1"),
            ("retention_maxlen", self.retention_maxlen >= 1, "must be at least 1"),
            ("retention_ended_s", self.retention_ended_s > 0, "must be positive"),
            ("retention_idle_s", self.retention_idle_s >= 1, "must be at least 1"),
            ("memory_max_conversations", self.memory_max_conversations >= 1, "must be at least 1"),
            ("repair_reads_per_s", self.repair_reads_per_s > 0, "must be positive"),
            ("repair_burst", self.repair_burst >= 1, "must be at least 1"),
            ("repair_concurrency", self.repair_concurrency >= 1, "must be at least 1"),
            ("pattern_idle_s", self.pattern_idle_s > 0, "must be positive"),
            ("shutdown_timeout_s", self.shutdown_timeout_s >= 0, "must be 0 or more"),
            ("lease_ttl_s", self.lease_ttl_s >= 0.3, "must be at least 0.3"),
            ("max_subscriptions", self.max_subscriptions >= 1, "must be at least 1"),
            ("ws_rate", self.ws_rate > 0, "must be positive"),
            ("ws_burst", self.ws_burst >= 1, "must be at least 1"),
            ("client_rate", self.client_rate > 0, "must be positive"),
            ("client_burst", self.client_burst >= 1, "must be at least 1"),
            ("webhook_window_s", self.webhook_window_s > 0, "must be positive"),
            ("session_idle_s", self.session_idle_s > 0, "must be positive"),
            ("command_timeout_s", self.command_timeout_s > 0, "must be positive"),
            ("max_sessions", self.max_sessions >= 1, "must be at least 1"),
            ("max_starting", self.max_starting >= 1, "must be at least 1"),
            ("jwt_jwks_cache_s", self.jwt_jwks_cache_s > 0, "must be positive"),
            ("jwt_jwks_timeout_s", self.jwt_jwks_timeout_s > 0, "must be positive"),
            ("jwt_jwks_refresh_s", self.jwt_jwks_refresh_s >= 0, "must be 0 or more"),
            (
                "jwt_algorithms",
                bool(self.jwt_algorithms) and set(self.jwt_algorithms) <= JWT_ALGORITHMS,
                f"must be some of {', '.join(sorted(JWT_ALGORITHMS))}",
            ),
            (
                "jwt_jwks_url",
                self.jwt_jwks_url is None or self.jwt_jwks_url.startswith(("https://", "http://")),
                "must be an https:// (or http://) URL",
            ),
        ]
        for key, ok, why in checks:
            if not ok:
                raise ConfigError(f"{key} = {getattr(self, key)!r}: {why}", key)
        if (
            not self.redis_namespace
            or not self.redis_namespace.replace("-", "").replace("_", "").isalnum()
        ):
            raise ConfigError(
                f"redis_namespace = {self.redis_namespace!r}: letters, digits, - and _ only",
                "redis_namespace",
            )
        if self.redis_url and not self.redis_url.startswith("memory://"):
            from gateway.redis_url import parse

            try:
                parse(self.redis_url)
            except ValueError as exc:
                raise ConfigError(f"redis_url: {exc}", "redis_url") from None

    def dialect(self, name: str, environ: Mapping[str, str] = os.environ) -> DialectSettings:
        """A dialect's connector settings: its TOML table, overridden by its environment."""
        from_env = DialectSettings.from_env(name, environ)
        options = {**read_secret_files(self.dialect_settings.get(name, {})), **from_env.options}
        url = from_env.url or options.pop("url", None)
        options.pop("url", None)
        return DialectSettings(url=url, options=options)

    def check_dialects(self, names: list[str], environ: Mapping[str, str] = os.environ) -> None:
        """Read every dialect's settings once, so a missing secret file or a bad pool size
        stops the start."""
        for name in names:
            try:
                self.pool_limits(name, environ)
            except OSError as exc:
                raise ConfigError(
                    f"dialects.{name}: cannot read secret file {exc.filename}: {exc.strerror}"
                ) from None
            except PoolSettingError as exc:
                raise ConfigError(str(exc)) from None

    def pool_limits(self, name: str, environ: Mapping[str, str] = os.environ) -> PoolLimits:
        """The sizes of dialect `name`'s two connection pools (`gateway.vendor_http`)."""
        return PoolLimits.read(name, self.dialect(name, environ).options, self.max_sessions)


_FIELDS = set(Settings.__struct_fields__) - {"dialect_settings"}


def describe() -> str:
    """Every setting as `gateway serve --help` lists it: name, environment variable, default and
    the docstring its field carries in `Settings` (read from this module's source)."""
    notes: dict[str, str] = {}
    try:
        tree = ast.parse(inspect.getsource(Settings))
    except (OSError, TypeError):  # no source shipped: names and defaults alone
        tree = None
    if tree is not None:
        body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
        for field, doc in itertools.pairwise(body):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                notes[field.target.id] = " ".join(doc.value.value.split())
    defaults = Settings()
    lines = ["settings (TOML key; environment GATEWAY_<KEY>; default):"]
    for key in Settings.__struct_fields__:
        if key not in _FIELDS:
            continue
        default = getattr(defaults, key)
        shown = "unset" if default is None else msgspec.json.encode(default).decode()
        lines.append(f"  {key:<20} GATEWAY_{key.upper():<22} {shown}")
        if key in notes:
            lines += textwrap.wrap(
                notes[key], 96, initial_indent="      ", subsequent_indent="      "
            )
    lines += [
        "dialect connectors: GATEWAY_<DIALECT>_URL and GATEWAY_<DIALECT>_<OPTION> (or",
        "  [dialects.<dialect>] in the TOML file; <option>_file reads a secret from a file);",
        "  each dialect's options: docs/dialects/<dialect>.md",
        "  every dialect also takes MAX_CONNECTIONS (held connections: WebSockets, long polls;",
        "  default max_sessions) and MAX_REQUESTS (short requests in flight; default 100)",
        "tracing: the standard OTEL_* environment (off unless it names an exporter or an",
        "  endpoint; needs the [otel] extra): docs/observability.md",
    ]
    return "\n".join(lines)


def load(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from the TOML file (if given), the environment and `overrides` (CLI flags).

    Raises `ConfigError` naming the key (and its source) when a value is unknown or invalid.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except OSError as exc:
            raise ConfigError(f"config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from None
        dialects = data.pop("dialects", {})
        if not isinstance(dialects, dict) or not all(
            isinstance(v, dict) for v in dialects.values()
        ):
            raise ConfigError(f"{config_file}: [dialects.<name>] must be tables")
        values["dialect_settings"] = {
            name: {k: str(v) for k, v in table.items()} for name, table in dialects.items()
        }
        for key, value in data.items():
            values[key] = value
            sources[key] = f"{config_file}"
    for key in _FIELDS:
        env_key = f"GATEWAY_{key.upper()}"
        if env_key in environ:
            raw = environ[env_key]
            values[key] = [d.strip() for d in raw.split(",") if d.strip()] if key in _LISTS else raw
            sources[key] = f"environment {env_key}"
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
            sources[key] = "command line"
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except ConfigError as exc:  # a range check of `Settings.__post_init__`
        where = sources.get(exc.key or "", "")
        raise ConfigError(f"{exc}" + (f" (from {where})" if where else ""), exc.key) from None
    except msgspec.ValidationError as exc:
        message = str(exc)
        if message.startswith("Object contains unknown field"):
            key = message.split("`")[1]
            message = f"unknown setting (known: {', '.join(sorted(_FIELDS))})"
        else:
            key = message.rpartition("`$.")[2].rstrip("`").split(".")[0].split("[")[0]
        where = sources.get(key, "")
        raise ConfigError(
            f"{key}: {message}" + (f" (from {where})" if where else ""), key
        ) from None
    unknown = sorted(set(settings.dialects or ()) - set(installed_dialects()))
    if unknown:
        where = sources.get("dialects", "")
        raise ConfigError(
            f"dialects: unknown dialect{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} (installed: {', '.join(installed_dialects())})"
            + (f" (from {where})" if where else ""),
            "dialects",
        )
    return settings


def installed_dialects() -> list[str]:
    """The names of the dialects installed in this environment (`gateway.adapters` entry
    points), whether or not they load."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
