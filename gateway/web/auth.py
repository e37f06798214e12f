"""Who a client is and what it may do: JWT bearer tokens turned into a `Grant`.

Tokens are HS256 (a shared secret) or RS256 (a PEM public key file, or a JWKS file whose key
is picked by the token's `kid`). A token comes from `Authorization: Bearer …`, a `token` query
parameter, or, on the WebSocket, a subprotocol `bearer.<token>` offered next to `gateway.v1`.

Claims (all optional but `sub` and `exp`):

    sub       the client's id (rate limits are per client)
    read      conversation ids or patterns it may read: ["genesys:*", "wonderful:abc"]; a
              subscription pattern (a prefix and one `*` at its end) needs a claim `P*` whose
              prefix it extends (`gateway.hub.covers`)
    commands  ops it may send: ["start", "send", "typing", "read", "end", "forward", "recover"]
              or ["*"]
    dialects  dialects it may `start` on (default: every dialect)
    ingest    dialects it may POST native frames for (webhooks with signatures need no token)

A conversation a client starts is readable by it for as long as its connection lives (only if
its own `start` opened the session: see `Sessions.started_by`).
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import jwt
import msgspec

from gateway.config import ConfigError, Settings
from gateway.errors import GatewayError
from gateway.hub import covers

COMMANDS = frozenset({"start", "recover", "send", "typing", "read", "end", "forward"})


class Unauthorized(GatewayError):
    """No usable token: missing, malformed, badly signed, or expired (`TOKEN_EXPIRED`)."""

    code = "UNAUTHORIZED"
    status = 401


class Forbidden(GatewayError):
    """A valid token whose claims do not cover the request."""

    code = "FORBIDDEN"
    status = 403


class Grant(msgspec.Struct, kw_only=True):
    """What one authenticated client may do. `expires_at` is epoch seconds (None: never)."""

    subject: str
    read: tuple[str, ...] = ()
    commands: frozenset[str] = frozenset()
    dialects: tuple[str, ...] = ("*",)
    ingest: tuple[str, ...] = ()
    expires_at: float | None = None
    owned: set[str] | None = None
    """Conversations this client started through this grant (readable without a claim)."""

    def own(self, conversation: str) -> None:
        """Let this client read a conversation it started."""
        if self.owned is None:
            self.owned = set()
        self.owned.add(conversation)

    def can_read(self, target: str) -> bool:
        """`target` is a conversation id or a pattern; a pattern needs a claim that contains it
        (`gateway.hub.covers`), never one whose text merely matches it."""
        if self.owned is not None and target in self.owned:
            return True
        return any(covers(scope, target) for scope in self.read)

    def can_command(self, op: str) -> bool:
        return "*" in self.commands or op in self.commands

    def can_start(self, dialect: str) -> bool:
        return any(fnmatchcase(dialect, allowed) for allowed in self.dialects)

    def can_ingest(self, dialect: str) -> bool:
        return any(fnmatchcase(dialect, allowed) for allowed in self.ingest)

    def check_read(self, target: str) -> None:
        if not self.can_read(target):
            raise Forbidden(f"this token may not read {target!r}")

    def check_command(
        self, op: str, conversation: str | None = None, dialect: str | None = None
    ) -> None:
        if not self.can_command(op):
            raise Forbidden(f"this token may not send {op!r}")
        if conversation is not None and not self.can_read(conversation):
            raise Forbidden(f"this token may not act on {conversation!r}")
        if dialect is not None and not self.can_start(dialect):
            raise Forbidden(f"this token may not start {dialect!r} conversations")


def open_grant() -> Grant:
    """The grant of every client when authentication is off (`GATEWAY_AUTH=none`)."""
    return Grant(subject="anonymous", read=("*",), commands=frozenset({"*"}), ingest=("*",))


class Authenticator:
    """Verifies tokens with the configured key. Build it once at start: `ConfigError` if the
    key material is missing or unreadable."""

    def __init__(self, settings: Settings) -> None:
        keyed = (
            settings.jwt_secret
            or settings.jwt_secret_file
            or settings.jwt_public_key_file
            or settings.jwt_jwks_file
        )
        # Demo mode is an explicit developer's choice: without a key it lets everyone in.
        self.enabled = settings.auth == "jwt" and not (settings.demo and not keyed)
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self.leeway = settings.jwt_leeway_s
        self._secret: str | None = settings.jwt_secret
        self._public_key: Any = None
        self._jwks: jwt.PyJWKSet | None = None
        if not self.enabled:
            return
        try:
            if settings.jwt_secret_file:
                self._secret = Path(settings.jwt_secret_file).read_text().strip()
            if settings.jwt_public_key_file:
                self._public_key = Path(settings.jwt_public_key_file).read_bytes()
            if settings.jwt_jwks_file:
                self._jwks = jwt.PyJWKSet.from_json(Path(settings.jwt_jwks_file).read_text())
        except OSError as exc:
            raise ConfigError(f"auth: cannot read {exc.filename}: {exc.strerror}") from None
        except jwt.PyJWTError as exc:
            raise ConfigError(f"jwt_jwks_file: not a usable JWKS: {exc}") from None
        if not (self._secret or self._public_key or self._jwks):
            raise ConfigError(
                "auth: no JWT key configured: set GATEWAY_JWT_SECRET (HS256), "
                "GATEWAY_JWT_PUBLIC_KEY_FILE or GATEWAY_JWT_JWKS_FILE (RS256), or "
                "GATEWAY_AUTH=none for a gateway anyone may use (development only)"
            )

    def authenticate(self, token: str | None) -> Grant:
        """The grant for `token`; raises `Unauthorized` (code `TOKEN_EXPIRED` when expired)."""
        if not self.enabled:
            return open_grant()
        if not token:
            raise Unauthorized(
                "a bearer token is required (Authorization header, `token` "
                "query parameter, or `bearer.<token>` WebSocket subprotocol)"
            )
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired", code="TOKEN_EXPIRED") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from None
        return _grant(claims)

    def _decode(self, token: str) -> dict[str, Any]:
        options = {"require": ["exp", "sub"]}
        common: dict[str, Any] = {
            "audience": self.audience,
            "issuer": self.issuer,
            "leeway": self.leeway,
            "options": options,
        }
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm == "HS256" and self._secret:
            return jwt.decode(token, self._secret, algorithms=["HS256"], **common)
        if algorithm == "RS256" and self._jwks is not None:
            kid = header.get("kid")
            keys = [k for k in self._jwks.keys if kid is None or k.key_id == kid]
            if not keys:
                raise jwt.InvalidTokenError(f"no key with kid {kid!r} in the JWKS")
            return jwt.decode(token, keys[0].key, algorithms=["RS256"], **common)
        if algorithm == "RS256" and self._public_key is not None:
            return jwt.decode(token, self._public_key, algorithms=["RS256"], **common)
        raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} is not accepted here")


def _strings(value: Any, claim: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise Unauthorized(f"claim {claim!r} must be a string or a list of strings")


def _grant(claims: dict[str, Any]) -> Grant:
    commands = frozenset(_strings(claims.get("commands"), "commands"))
    return Grant(
        subject=str(claims["sub"]),
        read=_strings(claims.get("read"), "read"),
        commands=commands,
        dialects=_strings(claims.get("dialects"), "dialects") or ("*",),
        ingest=_strings(claims.get("ingest"), "ingest"),
        expires_at=float(claims["exp"]),
    )


def token_of(headers: Any, query: Any, protocols: Iterable[str] = ()) -> str | None:
    """The bearer token of a request, wherever the client put it."""
    header = headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return str(header[7:].strip())
    if query.get("token"):
        return str(query["token"])
    for protocol in protocols:
        if protocol.startswith("bearer."):
            return protocol[len("bearer.") :]
    return None
