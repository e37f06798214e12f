"""Who a client is and what it may do: JWT bearer tokens turned into a `Grant`.

Tokens are signed with a shared secret (HS256) or an identity provider's key (RS256, ES256,
PS256, EdDSA): a PEM public key file, a JWKS file, or a JWKS URL fetched and cached with its
keys rotated by `kid` (`gateway/web/jwks.py`). `jwt_algorithms` lists the algorithms accepted.
A token comes from `Authorization: Bearer …`, a `token` query parameter, or, on the
WebSocket, a subprotocol `bearer.<token>` offered next to `gateway.v1`.

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
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from gateway.config import ConfigError, Settings
from gateway.errors import GatewayError
from gateway.hub import covers
from gateway.web.jwks import JwksKeys

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


HMAC = frozenset({"HS256", "HS384", "HS512"})


class Authenticator:
    """Verifies tokens with the configured keys. Build it once at start: `ConfigError` naming
    the setting if the key material is missing, unreadable or unusable.

    A secret verifies the HMAC algorithms only, and keys (a PEM file, a JWKS file, a JWKS URL)
    only the asymmetric ones: a public key is never taken for an HMAC secret. Of those, only
    the algorithms in `jwt_algorithms` are accepted."""

    def __init__(self, settings: Settings) -> None:
        keyed = (
            settings.jwt_secret
            or settings.jwt_secret_file
            or settings.jwt_public_key_file
            or settings.jwt_jwks_file
            or settings.jwt_jwks_url
        )
        # Demo mode is an explicit developer's choice: without a key it lets everyone in.
        self.enabled = settings.auth == "jwt" and not (settings.demo and not keyed)
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self.leeway = settings.jwt_leeway_s
        self.algorithms = frozenset(settings.jwt_algorithms)
        self._secret: str | None = settings.jwt_secret
        self._public_key: Any = None
        self._jwks: jwt.PyJWKSet | None = None
        self.jwks_url: JwksKeys | None = None
        if not self.enabled:
            return
        if settings.jwt_secret_file:
            self._secret = _read("jwt_secret_file", settings.jwt_secret_file).decode().strip()
        if settings.jwt_public_key_file:
            pem = _read("jwt_public_key_file", settings.jwt_public_key_file)
            try:
                self._public_key = serialization.load_pem_public_key(pem)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                raise ConfigError(
                    f"jwt_public_key_file: {settings.jwt_public_key_file} is not a PEM public "
                    f"key ({_first_line(exc)})",
                    "jwt_public_key_file",
                ) from None
        if settings.jwt_jwks_file:
            raw = _read("jwt_jwks_file", settings.jwt_jwks_file)
            try:
                self._jwks = jwt.PyJWKSet.from_json(raw.decode())
            except (jwt.PyJWTError, ValueError) as exc:
                raise ConfigError(
                    f"jwt_jwks_file: {settings.jwt_jwks_file} is not a usable JWKS "
                    f"({_first_line(exc)})",
                    "jwt_jwks_file",
                ) from None
        if settings.jwt_jwks_url:
            self.jwks_url = JwksKeys(
                settings.jwt_jwks_url,
                cache_s=settings.jwt_jwks_cache_s,
                timeout_s=settings.jwt_jwks_timeout_s,
                refresh_s=settings.jwt_jwks_refresh_s,
            )
        if not (self._secret or self._public_key or self._jwks or self.jwks_url):
            raise ConfigError(
                "auth: no JWT key configured: set GATEWAY_JWT_SECRET (HS256), "
                "GATEWAY_JWT_PUBLIC_KEY_FILE, GATEWAY_JWT_JWKS_FILE or GATEWAY_JWT_JWKS_URL "
                "(RS256, ES256, PS256, EdDSA), or GATEWAY_AUTH=none for a gateway anyone may "
                "use (development only)",
                "auth",
            )

    async def authenticate(self, token: str | None) -> Grant:
        """The grant for `token`; raises `Unauthorized` (code `TOKEN_EXPIRED` when expired)."""
        if not self.enabled:
            return open_grant()
        if not token:
            raise Unauthorized(
                "a bearer token is required (Authorization header, `token` "
                "query parameter, or `bearer.<token>` WebSocket subprotocol)"
            )
        try:
            claims = await self._decode(token)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired", code="TOKEN_EXPIRED") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from None
        return _grant(claims)

    async def _decode(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} is not accepted here")
        key: Any
        if algorithm in HMAC:
            key = self._secret
        elif self.jwks_url is not None:
            key = _verifying(await self.jwks_url.key(header.get("kid")))
        elif self._jwks is not None:
            kid = header.get("kid")
            keys = [k for k in self._jwks.keys if kid is None or k.key_id == kid]
            if not keys:
                raise jwt.InvalidTokenError(f"no key with kid {kid!r} in the JWKS")
            key = _verifying(keys[0])
        else:
            key = self._public_key
        if key is None:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} is not accepted here")
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=self.audience,
            issuer=self.issuer,
            leeway=self.leeway,
            options={"require": ["exp", "sub"]},
        )


def _verifying(jwk: jwt.PyJWK) -> Any:
    """A JWK that names its algorithm verifies that one only (PyJWT checks it against the
    token's); one that does not verifies any algorithm its key type can."""
    return jwk if "alg" in jwk._jwk_data else jwk.key


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}", setting) from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


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
