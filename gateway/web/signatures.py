"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>`, several keys at once.

A platform (or the relay in front of it) signs each POST to `/v1/dialects/{dialect}/events`:

    X-Gateway-Timestamp: 1700000000                        (epoch seconds)
    X-Gateway-Signature: v1=<hex hmac>[, v1=<hex hmac>]    (one per key while rotating)

`GATEWAY_<DIALECT>_WEBHOOK_SECRETS` holds the active keys (comma-separated, or
`…_WEBHOOK_SECRETS_FILE`); a signature made with any of them passes. A timestamp outside the
replay window (`webhook_window_s`, default 300 s) is refused, so a captured request cannot be
replayed later.

A request's headers are read once (`check_fresh`, before its body is read) and its body is
checked against a dialect's `SigningKeys`, each secret keyed into its HMAC state once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from gateway.web.auth import Unauthorized

TIMESTAMP_HEADER = "X-Gateway-Timestamp"
SIGNATURE_HEADER = "X-Gateway-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `v1=` signature of `body` sent at `timestamp` (what a sender puts in the header)."""
    mac = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def check_fresh(
    headers: Mapping[str, str], window_s: float, now: float | None = None
) -> tuple[int, list[str]]:
    """The timestamp and the offered signatures of a request, checked for presence and
    freshness before its body is read (a caller without them never makes us wait for one).
    Raises `Unauthorized` (`SIGNATURE_MISSING`, `SIGNATURE_EXPIRED`, `SIGNATURE_INVALID`)."""
    stamp = headers.get(TIMESTAMP_HEADER)
    given = headers.get(SIGNATURE_HEADER)
    if not stamp or not given:
        raise Unauthorized(
            f"this dialect's webhooks must be signed ({TIMESTAMP_HEADER} and {SIGNATURE_HEADER})",
            code="SIGNATURE_MISSING",
        )
    try:
        timestamp = int(stamp)
    except ValueError:
        raise Unauthorized(
            f"{TIMESTAMP_HEADER} must be epoch seconds", code="SIGNATURE_INVALID"
        ) from None
    if abs((now if now is not None else time.time()) - timestamp) > window_s:
        raise Unauthorized(
            f"signature timestamp outside the {window_s:g} s window", code="SIGNATURE_EXPIRED"
        )
    return timestamp, [part.strip() for part in given.split(",") if part.strip()]


class SigningKeys:
    """One dialect's active secrets, each keyed into its HMAC-SHA256 state once (at start):
    a request's check copies that state instead of keying it again."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._keyed = [hmac.new(secret.encode(), digestmod=hashlib.sha256) for secret in secrets]

    def __len__(self) -> int:
        return len(self._keyed)

    def check(self, timestamp: int, offered: Sequence[str], body: bytes) -> None:
        """Raise `Unauthorized` (`SIGNATURE_INVALID`) unless one of the `offered` signatures
        (as `check_fresh` read them) is `body`'s at `timestamp` by one of these secrets."""
        message = b"%d." % timestamp + body
        for keyed in self._keyed:
            mac = keyed.copy()
            mac.update(message)
            expected = "v1=" + mac.hexdigest()
            if any(hmac.compare_digest(expected, candidate) for candidate in offered):
                return
        raise Unauthorized("signature does not match", code="SIGNATURE_INVALID")


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    window_s: float,
    now: float | None = None,
) -> None:
    """Raise `Unauthorized` (`SIGNATURE_MISSING`, `SIGNATURE_EXPIRED`, `SIGNATURE_INVALID`)
    unless `body` carries a fresh signature by one of `secrets`."""
    timestamp, offered = check_fresh(headers, window_s, now)
    SigningKeys(secrets).check(timestamp, offered, body)
