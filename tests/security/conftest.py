"""A gateway with authentication on, and tokens to talk to it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from tests.support import GatewayClient

SECRET = "test-secret-of-a-decent-length-0123456789"


def token(sub: str = "client-1", ttl: float = 300, secret: str = SECRET, **claims: Any) -> str:
    """An HS256 token for `sub` with `claims` (read, commands, dialects, ingest)."""
    return jwt.encode(
        {"sub": sub, "exp": int(time.time() + ttl), **claims}, secret, algorithm="HS256"
    )


@pytest.fixture
def make_secure(make_gateway: Callable[..., Any]) -> Callable[..., Any]:
    async def make(**overrides: Any) -> GatewayClient:
        return await make_gateway(  # type: ignore[no-any-return]
            **{"auth": "jwt", "jwt_secret": SECRET, **overrides}
        )

    return make
