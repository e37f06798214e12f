"""`GATEWAY_JWT_JWKS_URL`: an identity provider's keys fetched over real HTTP from a local
server, cached, rotated by `kid`, refreshed at a bounded rate, kept while the provider is down."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
from aiohttp import web

from tests.processes import refused_start
from tests.security.keys import jwk, private_key, signed
from tests.support import GatewayClient


class Provider:
    """An identity provider's JWKS endpoint: what it serves, and how often it was asked."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0
        self.status = 200
        self.delay = 0.0
        self.body: bytes | None = None

    def add(self, kid: str, algorithm: str = "ES256") -> Any:
        key = private_key(algorithm)
        self.keys[kid] = jwk(key, kid, algorithm)
        return key

    async def handle(self, _: web.Request) -> web.Response:
        self.fetches += 1
        await asyncio.sleep(self.delay)
        if self.body is not None:
            return web.Response(body=self.body, content_type="text/html")
        return web.json_response({"keys": list(self.keys.values())}, status=self.status)


@pytest.fixture
async def provider(aiohttp_server: Callable[..., Any]) -> tuple[Provider, str]:
    idp = Provider()
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", idp.handle)
    server = await aiohttp_server(app)
    return idp, str(server.make_url("/.well-known/jwks.json"))


async def _status(gateway: GatewayClient, token: str) -> int:
    async with gateway.client.get("/v1/dialects", params={"token": token}) as response:
        return response.status


async def test_keys_are_fetched_once_and_rotated_by_kid(
    make_gateway: Any, provider: tuple[Provider, str]
) -> None:
    idp, url = provider
    first = idp.add("k1", "ES256")
    gateway: GatewayClient = await make_gateway(auth="jwt", jwt_jwks_url=url, jwt_jwks_refresh_s=0)
    assert idp.fetches == 1  # at start
    for _ in range(5):
        assert await _status(gateway, signed(first, "ES256", kid="k1")) == 200
    assert idp.fetches == 1  # the cached set answers
    # The provider rotates: a new key k2 (another algorithm), k1 withdrawn.
    del idp.keys["k1"]
    second = idp.add("k2", "RS256")
    assert await _status(gateway, signed(second, "RS256", kid="k2")) == 200
    assert idp.fetches == 2  # the unknown kid refreshed the set
    assert await _status(gateway, signed(second, "RS256", kid="k2")) == 200
    assert idp.fetches == 2
    assert await _status(gateway, signed(first, "ES256", kid="k1")) == 401  # withdrawn
    assert await _status(gateway, signed(second, "RS256")) == 401  # no kid: no key


async def test_unknown_kids_refresh_at_a_bounded_rate(
    make_gateway: Any, provider: tuple[Provider, str]
) -> None:
    idp, url = provider
    key = idp.add("k1")
    gateway: GatewayClient = await make_gateway(
        auth="jwt", jwt_jwks_url=url, jwt_jwks_refresh_s=3600
    )
    statuses = await asyncio.gather(
        *(_status(gateway, signed(key, "ES256", kid=f"made-up-{n}")) for n in range(20))
    )
    assert statuses == [401] * 20
    assert idp.fetches == 1  # none of them reached the provider
    assert await _status(gateway, signed(key, "ES256", kid="k1")) == 200


async def test_the_last_good_keys_verify_while_the_provider_is_down(
    make_gateway: Any, provider: tuple[Provider, str]
) -> None:
    idp, url = provider
    key = idp.add("k1")
    gateway: GatewayClient = await make_gateway(
        auth="jwt", jwt_jwks_url=url, jwt_jwks_cache_s=0.05, jwt_jwks_refresh_s=3600
    )
    idp.status = 503
    await asyncio.sleep(0.1)  # the cached set expires
    for _ in range(3):
        assert await _status(gateway, signed(key, "ES256", kid="k1")) == 200
    assert idp.fetches == 2  # one failed attempt, then none within jwt_jwks_refresh_s


async def test_a_slow_provider_is_given_up_on_after_the_timeout(
    make_gateway: Any, provider: tuple[Provider, str]
) -> None:
    idp, url = provider
    key = idp.add("k1")
    idp.delay = 5.0
    started = time.monotonic()
    gateway: GatewayClient = await make_gateway(
        auth="jwt", jwt_jwks_url=url, jwt_jwks_timeout_s=0.2, jwt_jwks_refresh_s=0
    )
    assert await _status(gateway, signed(key, "ES256", kid="k1")) == 401
    assert time.monotonic() - started < 3.0  # two fetches of 0.2 s, not of 5 s
    idp.delay = 0.0
    assert await _status(gateway, signed(key, "ES256", kid="k1")) == 200


@pytest.fixture
def not_a_jwks() -> Iterator[str]:
    """A server answering its JWKS URL with a web page (a wrong URL in the settings)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>sign in</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


def test_a_url_that_is_not_a_jwks_stops_the_start(not_a_jwks: str) -> None:
    # Port 1 is never bound: the keys are fetched before the gateway listens.
    line = refused_start({"GATEWAY_JWT_JWKS_URL": not_a_jwks, "GATEWAY_PORT": "1"})
    assert line.startswith(
        f"gateway: configuration error: jwt_jwks_url: {not_a_jwks} is not a usable JWKS"
    ), line


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("file:///etc/passwd", "jwt_jwks_url = 'file:///etc/passwd': must be an https://"),
        ("nope", "jwt_jwks_url = 'nope': must be an https://"),
    ],
)
def test_a_url_that_is_not_http_is_refused(value: str, message: str) -> None:
    from gateway.config import ConfigError, load

    with pytest.raises(ConfigError, match=message):
        load(environ={"GATEWAY_JWT_JWKS_URL": value})


def test_jwt_algorithms_from_the_environment() -> None:
    from gateway.config import ConfigError, load

    settings = load(environ={"GATEWAY_JWT_ALGORITHMS": "ES256, EdDSA"})
    assert settings.jwt_algorithms == ["ES256", "EdDSA"]
    with pytest.raises(ConfigError, match="jwt_algorithms = \\['none'\\]: must be some of"):
        load(environ={"GATEWAY_JWT_ALGORITHMS": "none"})
    assert msgspec.json.encode(load(environ={}).jwt_algorithms) == (
        b'["HS256","RS256","ES256","PS256","EdDSA"]'
    )
