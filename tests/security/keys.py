"""Signing keys of each asymmetric algorithm, as PEM and as JWK, and tokens they sign."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


def private_key(algorithm: str) -> Any:
    if algorithm in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    assert algorithm == "EdDSA"
    return ed25519.Ed25519PrivateKey.generate()


def pem(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def jwk(key: Any, kid: str, algorithm: str | None) -> dict[str, Any]:
    """The public JWK of `key`; `alg` only when `algorithm` is given."""
    public = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        data = jwt.algorithms.RSAAlgorithm.to_jwk(public)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        data = jwt.algorithms.ECAlgorithm.to_jwk(public)
    else:
        data = jwt.algorithms.OKPAlgorithm.to_jwk(public)
    found: dict[str, Any] = {**json.loads(data), "kid": kid, "use": "sig"}
    if algorithm is not None:
        found["alg"] = algorithm
    return found


def signed(key: Any, algorithm: str, kid: str | None = None, **claims: Any) -> str:
    headers = {"kid": kid} if kid else None
    body = {"sub": "idp-user", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)
