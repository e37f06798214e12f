"""`GATEWAY_REDIS_URL`'s forms taken apart (gateway/redis_url.py)."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, Settings
from gateway.redis_url import parse


def test_sentinel_form_with_auth_master_and_db() -> None:
    target = parse("redis+sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2:26380/mymaster/3")
    assert target.kind == "sentinel" and not target.tls
    assert target.hosts == (("10.0.0.1", 26379), ("10.0.0.2", 26380))
    assert (target.master, target.db) == ("mymaster", 3)
    assert (target.username, target.password) == ("app", "s@cret")
    assert target.safe == "redis+sentinel://***@10.0.0.1:26379,10.0.0.2:26380/mymaster/3"


def test_sentinel_defaults_and_options() -> None:
    target = parse(
        "rediss+sentinel://:pw@h:26379/m?sentinel_password=sp&sentinel_ssl=true"
        "&ssl_ca_certs=/ca.pem&socket_timeout=2.5"
    )
    assert target.tls and target.db == 0 and target.username is None and target.password == "pw"
    assert target.options["sentinel_password"] == "sp"
    assert target._tls_kwargs() == {"ssl_ca_certs": "/ca.pem"}
    assert target._timeouts()["socket_timeout"] == 2.5
    assert "sp" not in target.safe and "pw" not in target.safe


def test_cluster_form_is_parsed_and_taken() -> None:
    target = parse("redis+cluster://u:p@127.0.0.1:7000,127.0.0.1:7001")
    assert target.kind == "cluster" and target.hosts == (("127.0.0.1", 7000), ("127.0.0.1", 7001))
    assert (target.username, target.password) == ("u", "p")
    assert Settings(redis_url="redis+cluster://127.0.0.1:7000").redis_url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel://h:26379", "names its master"),
        ("redis+sentinel://h:26379/m/x", "database must be a number"),
        ("redis+sentinel://h/m", "must be host:port"),
        ("redis+sentinel://h:26379,:1/m", "must be host:port"),
        ("redis+cluster://h:7000/0", "no path"),
        ("redis+cluster://h:7000?bogus=1", "unknown option 'bogus'"),
        ("redis+cluster://h:7000?socket_timeout=-1", "socket_timeout must be a positive"),
        ("http://h", "scheme must be one of"),
    ],
)
def test_malformed_urls_say_what_is_wrong(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse(url)
    with pytest.raises(ConfigError, match=f"redis_url: .*{why}"):
        Settings(redis_url=url)


def test_the_session_store_and_hub_share_the_sentinel_client_settings(sentinel_url: str) -> None:
    """Both connect through `connect`: a Sentinel-managed pool, bounded and waiting."""
    from gateway.redis_url import _BlockingSentinelPool, connect

    pool = connect(sentinel_url, max_connections=7).connection_pool
    assert isinstance(pool, _BlockingSentinelPool)
    assert (pool.service_name, pool.max_connections, pool.timeout) == ("gwprimary", 7, 5.0)
