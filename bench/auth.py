"""Credentials the bench gives the gateway: production mode (JWT auth on, signed webhooks).

The gateway runs with `GATEWAY_AUTH=jwt` and an HS256 secret; sockets present a token in the
`token` query parameter, webhooks carry an HMAC signature (`gateway.web.signatures`). The
per-client rate limits are lifted (`client_rate`/`client_burst`): a load test from one address
is not what they are for, and throughput is what is measured here.
"""

from __future__ import annotations

import time

SECRET = "bench-jwt-secret-0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "bench-webhook-secret"


def gateway_env(auth: bool = True) -> dict[str, str]:
    env = {"GATEWAY_CLIENT_RATE": "1000000000", "GATEWAY_CLIENT_BURST": "1000000000"}
    if auth:
        env |= {
            "GATEWAY_AUTH": "jwt",
            "GATEWAY_JWT_SECRET": SECRET,
            "GATEWAY_WONDERFUL_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        }
    else:
        env["GATEWAY_AUTH"] = "none"
    return env


def token(subject: str = "bench", read: tuple[str, ...] = ("*",)) -> str:
    import jwt

    claims = {
        "sub": subject,
        "exp": int(time.time()) + 3600,
        "read": list(read),
        "commands": ["*"],
        "ingest": ["*"],
    }
    return str(jwt.encode(claims, SECRET, algorithm="HS256"))


def signed(body: bytes) -> dict[str, str]:
    """The webhook signature headers for `body`, signed now."""
    from gateway.web.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    now = int(time.time())
    return {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(WEBHOOK_SECRET, now, body)}
