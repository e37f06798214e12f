"""JWT authentication and claim scopes on the HTTP API and the unified WebSocket."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.processes import refused_start
from tests.security.conftest import token
from tests.security.keys import ALGORITHMS, jwk, pem, private_key, signed
from tests.support import GatewayClient, WsClient, loopback_message

READER = {"read": ["loopback:a*"], "ingest": ["loopback"]}


async def status_and_code(response: aiohttp.ClientResponse) -> tuple[int, str]:
    return response.status, (await response.json())["error"]["code"]


async def test_http_needs_a_valid_token(make_secure: Any) -> None:
    gateway: GatewayClient = await make_secure()
    client = gateway.client
    async with client.get("/v1/dialects") as response:
        assert await status_and_code(response) == (401, "UNAUTHORIZED")
    async with client.get("/v1/dialects", headers={"Authorization": "Bearer nonsense"}) as response:
        assert await status_and_code(response) == (401, "UNAUTHORIZED")
    wrong = token(secret="another-secret-of-a-decent-length-000000")
    async with client.get("/v1/dialects", headers={"Authorization": f"Bearer {wrong}"}) as response:
        assert await status_and_code(response) == (401, "UNAUTHORIZED")
    expired = token(ttl=-120)
    async with client.get("/v1/dialects", params={"token": expired}) as response:
        assert await status_and_code(response) == (401, "TOKEN_EXPIRED")
    async with client.get("/v1/dialects", params={"token": token()}) as response:
        assert response.status == 200
    for open_path in ("/healthz", "/readyz", "/metrics", "/v1/schema"):
        async with client.get(open_path) as response:
            assert response.status == 200, open_path


async def test_reads_are_scoped(make_secure: Any, conversation: str) -> None:
    gateway: GatewayClient = await make_secure()
    mine, theirs = f"a{conversation}", f"b{conversation}"
    ingest_token = token(ingest=["loopback"])
    for chat in (mine, theirs):
        async with gateway.client.post(
            "/v1/dialects/loopback/events",
            json=loopback_message(chat, 1),
            params={"token": ingest_token},
        ) as response:
            assert response.status == 202
    reader = token(**READER)
    async with gateway.client.get(
        f"/v1/conversations/loopback:{mine}/events", params={"token": reader}
    ) as response:
        assert response.status == 200
    async with gateway.client.get(
        f"/v1/conversations/loopback:{theirs}/events", params={"token": reader}
    ) as response:
        assert await status_and_code(response) == (403, "FORBIDDEN")
    async with gateway.client.post(
        "/v1/dialects/loopback/events",
        json=loopback_message(mine, 2),
        params={"token": token(read=["*"])},
    ) as response:
        assert await status_and_code(response) == (403, "FORBIDDEN")
    async with gateway.client.post(
        "/v1/conversations",
        params={"token": reader},
        json={"dialect": "loopback", "participant": {"from": "x"}},
    ) as response:
        assert await status_and_code(response) == (403, "FORBIDDEN")


async def ws(gateway: GatewayClient, **kwargs: Any) -> WsClient:
    client = WsClient(await gateway.client.ws_connect("/v1/ws", **kwargs))
    await client.wait_for(lambda f: f["op"] == "welcome")
    return client


async def test_websocket_handshake_and_scopes(make_secure: Any, conversation: str) -> None:
    gateway: GatewayClient = await make_secure()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gateway.client.ws_connect("/v1/ws")
    assert refused.value.status == 401
    by_header = await ws(gateway, headers={"Authorization": f"Bearer {token(**READER)}"})
    by_protocol = await ws(gateway, protocols=("gateway.v1", f"bearer.{token(**READER)}"))
    assert by_protocol.ws.protocol == "gateway.v1"
    client = await ws(gateway, params={"token": token(**READER)})
    await client.subscribe(f"loopback:a{conversation}")
    for op, fields in [
        ("subscribe", {"conversation": f"loopback:b{conversation}"}),
        ("subscribe", {"conversation": "loopback:*"}),
        ("subscribe", {"conversation": "*"}),
        ("history", {"conversation": f"loopback:b{conversation}"}),
        (
            "send",
            {"conversation": f"loopback:a{conversation}", "content": {"kind": "text", "text": "x"}},
        ),
        ("start", {"dialect": "loopback", "participant": {"from": "u"}}),
    ]:
        await client.send(op, ref=op, **fields)
        error = await client.reply("error", op)
        assert error["code"] == "FORBIDDEN", (op, fields, error)
    for c in (by_header, by_protocol, client):
        await c.close()


async def test_expired_token_closes_the_socket(make_secure: Any) -> None:
    gateway: GatewayClient = await make_secure(jwt_leeway_s=0)
    client = await ws(gateway, params={"token": token(ttl=2, **READER)})
    async with asyncio.timeout(8):
        await client._reader
    assert client.ws.close_code == 4401


def _rsa_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("source", ["public_key_file", "jwks_file"])
async def test_rs256(make_gateway: Any, tmp_path: Path, source: str) -> None:
    key, public = _rsa_key()
    if source == "public_key_file":
        path = tmp_path / "key.pem"
        path.write_bytes(public)
    else:
        numbers = key.public_key().public_numbers()
        path = tmp_path / "jwks.json"
        path.write_text(
            json.dumps(
                {
                    "keys": [
                        {
                            "kty": "RSA",
                            "kid": "k1",
                            "alg": "RS256",
                            "use": "sig",
                            "n": _b64(numbers.n),
                            "e": _b64(numbers.e),
                        }
                    ]
                }
            )
        )
    gateway: GatewayClient = await make_gateway(auth="jwt", **{f"jwt_{source}": str(path)})
    good = jwt.encode(
        {"sub": "rs", "exp": int(time.time()) + 60}, key, algorithm="RS256", headers={"kid": "k1"}
    )
    async with gateway.client.get("/v1/dialects", params={"token": good}) as response:
        assert response.status == 200
    other, _ = _rsa_key()
    forged = jwt.encode(
        {"sub": "rs", "exp": int(time.time()) + 60}, other, algorithm="RS256", headers={"kid": "k1"}
    )
    async with gateway.client.get("/v1/dialects", params={"token": forged}) as response:
        assert await status_and_code(response) == (401, "UNAUTHORIZED")
    hs = token()  # an HS256 token must not pass where RS256 keys are configured
    async with gateway.client.get("/v1/dialects", params={"token": hs}) as response:
        assert await status_and_code(response) == (401, "UNAUTHORIZED")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("source", ["public_key_file", "jwks_file"])
async def test_every_asymmetric_algorithm(
    make_gateway: Any, tmp_path: Path, algorithm: str, source: str
) -> None:
    key = private_key(algorithm)
    path = tmp_path / "key"
    if source == "public_key_file":
        path.write_bytes(pem(key))
    else:
        path.write_text(json.dumps({"keys": [jwk(key, "k1", algorithm)]}))
    gateway: GatewayClient = await make_gateway(auth="jwt", **{f"jwt_{source}": str(path)})

    async def status(token: str) -> int:
        async with gateway.client.get("/v1/dialects", params={"token": token}) as response:
            return response.status

    assert await status(signed(key, algorithm, kid="k1")) == 200
    assert await status(signed(private_key(algorithm), algorithm, kid="k1")) == 401  # forged
    assert await status(token()) == 401  # HS256: no secret configured
    # Not on the accepted list: refused even though the key would verify it.
    narrow: GatewayClient = await make_gateway(
        auth="jwt", jwt_algorithms=["HS256"], **{f"jwt_{source}": str(path)}
    )
    async with narrow.client.get(
        "/v1/dialects", params={"token": signed(key, algorithm, kid="k1")}
    ) as response:
        assert await status_and_code(response) == (401, "UNAUTHORIZED")
        assert "not accepted" in (await response.json())["error"]["message"]


async def test_a_jwk_naming_its_algorithm_verifies_only_that_one(
    make_gateway: Any, tmp_path: Path
) -> None:
    key = private_key("RS256")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(key, "k1", "RS256")]}))
    gateway: GatewayClient = await make_gateway(auth="jwt", jwt_jwks_file=str(path))
    for algorithm, expected in (("RS256", 200), ("PS256", 401)):
        async with gateway.client.get(
            "/v1/dialects", params={"token": signed(key, algorithm, kid="k1")}
        ) as response:
            assert response.status == expected, algorithm


@pytest.mark.parametrize(
    ("setting", "content", "message"),
    [
        (
            "jwt_public_key_file",
            b"not a key",
            "jwt_public_key_file: {path} is not a PEM public key",
        ),
        ("jwt_jwks_file", b"<html>", "jwt_jwks_file: {path} is not a usable JWKS"),
        ("jwt_jwks_file", b'{"keys": []}', "jwt_jwks_file: {path} is not a usable JWKS"),
        ("jwt_secret_file", None, "jwt_secret_file: cannot read {path}: No such file"),
    ],
)
def test_bad_key_material_is_a_one_line_configuration_error(
    tmp_path: Path, setting: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_bytes(content)
    line = refused_start({f"GATEWAY_{setting.upper()}": str(path)}, "--port", "1")
    assert line.startswith("gateway: configuration error: " + message.format(path=path)), line
