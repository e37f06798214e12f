"""An identity provider's signing keys, fetched from its JWKS URL (`GATEWAY_JWT_JWKS_URL`).

PyJWT's `PyJWKClient` does the fetching and caching: the key set is kept for
`jwt_jwks_cache_s`, and a token whose `kid` it does not hold triggers one refresh (a rotated
key), at most once per `jwt_jwks_refresh_s` so that tokens with made-up kids cannot make the
gateway hammer the provider. Its HTTP is blocking, so every fetch runs in a worker thread, one
at a time; a key found in the fresh cache is answered on the event loop.

While the provider is unreachable, the keys of the last good fetch keep verifying tokens, and a
new attempt is made at most once per `jwt_jwks_refresh_s`.
"""

from __future__ import annotations

import asyncio
import time

import jwt
import structlog

from gateway.config import ConfigError

log = structlog.get_logger(__name__)


class JwksKeys:
    """The signing keys published at one JWKS URL, by `kid`."""

    def __init__(self, url: str, *, cache_s: float, timeout_s: float, refresh_s: float) -> None:
        try:
            self.client = jwt.PyJWKClient(
                url,
                cache_jwk_set=True,
                lifespan=cache_s,
                timeout=timeout_s,
                cooldown_duration=refresh_s,
                headers={"Accept": "application/json"},
            )
        except jwt.PyJWKClientError as exc:
            raise ConfigError(f"jwt_jwks_url: {exc}", "jwt_jwks_url") from None
        self.url = url
        self.refresh_s = refresh_s
        self._last_good: jwt.PyJWKSet | None = None
        self._failed_at = -float("inf")
        self._fetching: asyncio.Lock | None = None

    def load(self) -> None:
        """Fetch the key set once (at start, before serving): `ConfigError` naming the setting
        when the URL answers with something that is not a usable JWKS. An unreachable provider
        is logged and retried when the first token needs it."""
        try:
            self._last_good = self.client.get_jwk_set(refresh=True)
            self.client.get_signing_keys()
        except jwt.PyJWKClientConnectionError as exc:
            self._failed_at = time.monotonic()
            log.warning("auth.jwks_unreachable", url=self.url, error=str(exc))
        except (jwt.PyJWTError, ValueError) as exc:  # ValueError: not JSON at all
            raise ConfigError(
                f"jwt_jwks_url: {self.url} is not a usable JWKS ({exc})", "jwt_jwks_url"
            ) from None

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The signing key `kid` names; `jwt.InvalidTokenError` when there is none."""
        if not kid:
            raise jwt.InvalidTokenError("the token names no key (`kid`) of the JWKS")
        cache = self.client.jwk_set_cache
        cached = cache.get() if cache is not None else None
        if cached is not None and (found := _match(cached, kid)) is not None:
            return found
        if self._fetching is None:
            self._fetching = asyncio.Lock()
        async with self._fetching:  # one fetch at a time; those waiting then find the cache
            if time.monotonic() - self._failed_at < self.refresh_s:
                return self._stale(kid)
            try:
                found = await asyncio.to_thread(self.client.get_signing_key, kid)
            except jwt.PyJWKClientConnectionError as exc:
                self._failed_at = time.monotonic()
                log.warning("auth.jwks_unreachable", url=self.url, error=str(exc))
                return self._stale(kid)
            except (jwt.PyJWTError, ValueError) as exc:  # no such kid, or not a JWKS (any more)
                raise jwt.InvalidTokenError(f"no usable key {kid!r} in the JWKS: {exc}") from None
            if cache is not None and (fresh := cache.get()) is not None:
                self._last_good = fresh
            return found

    def _stale(self, kid: str) -> jwt.PyJWK:
        found = _match(self._last_good, kid) if self._last_good is not None else None
        if found is None:
            raise jwt.InvalidTokenError(f"no key with kid {kid!r} (the JWKS is unreachable)")
        return found


def _match(keys: jwt.PyJWKSet, kid: str) -> jwt.PyJWK | None:
    return next(
        (k for k in keys.keys if k.key_id == kid and k.public_key_use in ("sig", None)), None
    )
