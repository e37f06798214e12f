"""Where the Relay socket and the REST API are, as the SDK derives them from the token.

The sources: `signalwire/signalwire-js` v3 `packages/js/src/fabric/HTTPClient.ts` (`httpHost`:
`fabric.` + the JWT header's `ch` without its first label, else `fabric.signalwire.com`),
`packages/js/src/JWTSession.ts` (the socket's host is `ch`), `packages/core/src/utils/
constants.ts` (`DEFAULT_HOST = 'wss://relay.signalwire.com'`), and v4
`packages/main/src/containers/DependencyContainer.ts` (`relayHost`, `apiHost`).
"""

from __future__ import annotations

import jwt
import pytest

from adapters.signalwire.relay import Hosts, hosts
from gateway.errors import RequestError


def _token(**header: str) -> str:
    return jwt.encode(
        {"sub": "subscriber"},
        "a key long enough for HS256, never checked",
        algorithm="HS256",
        headers=header,
    )


@pytest.mark.parametrize(
    ("token", "url", "relay_url", "expected"),
    [
        pytest.param(
            _token(),
            None,
            None,
            Hosts("https://fabric.signalwire.com", "wss://relay.signalwire.com"),
            id="no ch: the SDK's defaults",
        ),
        pytest.param(
            "an-opaque-token",
            None,
            None,
            Hosts("https://fabric.signalwire.com", "wss://relay.signalwire.com"),
            id="not a JWT: the defaults",
        ),
        pytest.param(
            _token(ch="puc.example.signalwire.com"),
            None,
            None,
            Hosts("https://fabric.example.signalwire.com", "wss://puc.example.signalwire.com"),
            id="ch: the socket at it, REST at fabric. + its domain",
        ),
        pytest.param(
            _token(ch="relay.swire.io"),
            None,
            None,
            Hosts("https://fabric.swire.io", "wss://relay.swire.io"),
            id="ch of another domain",
        ),
        pytest.param(
            _token(ch="puc.example.signalwire.com"),
            "http://127.0.0.1:8001/",
            "ws://127.0.0.1:8002/",
            Hosts("http://127.0.0.1:8001", "ws://127.0.0.1:8002/"),
            id="configured: both win over ch",
        ),
        pytest.param(
            _token(),
            None,
            "wss://relay.example.signalwire.com",
            Hosts("https://fabric.example.signalwire.com", "wss://relay.example.signalwire.com"),
            id="a configured relay stands in for ch, as the SDK's host option",
        ),
    ],
)
def test_hosts(token: str, url: str | None, relay_url: str | None, expected: Hosts) -> None:
    assert hosts(token, url, relay_url) == expected


def test_ch_is_read_from_the_header_not_the_claims() -> None:
    token = jwt.encode(
        {"ch": "puc.claims.example"},
        "a key long enough for HS256, never checked",
        algorithm="HS256",
    )
    assert hosts(token).relay == "wss://relay.signalwire.com"


@pytest.mark.parametrize(
    "relay_url", ["ws://127.0.0.1:8002/", "ws://localhost:8002/", "ws://[::1]/"]
)
def test_a_relay_without_a_domain_needs_the_rest_url(relay_url: str) -> None:
    """The SDK would make `fabric.0.0.1` of `127.0.0.1`: we refuse to guess where the token
    goes."""
    with pytest.raises(RequestError) as info:
        hosts(_token(), None, relay_url)
    assert info.value.code == "NOT_CONFIGURED"
    assert hosts(_token(), "http://127.0.0.1:8001", relay_url).rest == "http://127.0.0.1:8001"
