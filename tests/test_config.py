"""Settings: defaults, TOML, environment, flags; every bad value is named with its source."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import datetime
from pathlib import Path

import pytest
import structlog

from gateway.config import ConfigError, Settings, describe, load
from gateway.logging import bind, bound, configure, get_logger, reset
from gateway.vendor_http import DEFAULT_MAX_REQUESTS, PoolLimits


def test_defaults_need_no_configuration() -> None:
    settings = load(environ={})
    assert (settings.host, settings.port, settings.redis_url) == ("0.0.0.0", 8080, None)


def test_precedence_toml_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        'port = 9000\nlog_level = "debug"\nws_send_queue = 100\n'
        '[dialects.genesys]\nurl = "https://gms/genesys/2/chat/svc"\napikey = "k1"\n'
    )
    settings = load(
        config,
        environ={"GATEWAY_PORT": "9100", "GATEWAY_DIALECTS": "genesys, wonderful"},
        overrides={"port": 9200, "host": None},
    )
    assert settings.port == 9200
    assert settings.log_level == "debug" and settings.ws_send_queue == 100
    assert settings.dialects == ["genesys", "wonderful"]
    genesys = settings.dialect("genesys", environ={"GATEWAY_GENESYS_APIKEY": "k2"})
    assert genesys.url == "https://gms/genesys/2/chat/svc"
    assert genesys.options == {"apikey": "k2"}


def test_secrets_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    settings = Settings(dialect_settings={"wonderful": {"api_key_file": str(secret)}})
    assert settings.dialect("wonderful", environ={}).options == {"api_key": "s3cret"}
    env = {"GATEWAY_SIGNALWIRE_TOKEN_FILE": str(secret)}
    assert Settings().dialect("signalwire", environ=env).options == {"token": "s3cret"}
    with pytest.raises(ConfigError, match=r"dialects\.signalwire: cannot read secret file"):
        Settings().check_dialects(["signalwire"], environ={"GATEWAY_SIGNALWIRE_TOKEN_FILE": "/no"})


def test_connection_pools_are_sized_per_dialect() -> None:
    settings = Settings(max_sessions=3000, dialect_settings={"wonderful": {"max_requests": "20"}})
    env = {"GATEWAY_SERVER_EVENTS_MAX_CONNECTIONS": "8000"}
    assert settings.pool_limits("server_events", env) == PoolLimits(8000, DEFAULT_MAX_REQUESTS)
    assert settings.pool_limits("wonderful", env) == PoolLimits(3000, 20)  # held: max_sessions
    for bad in ("0", "many", "-5"):
        environ = {"GATEWAY_GENESYS_MAX_REQUESTS": bad}
        with pytest.raises(ConfigError, match=r"GATEWAY_GENESYS_MAX_REQUESTS = .*whole number"):
            settings.check_dialects(["genesys"], environ)
    listed = describe()
    assert "GATEWAY_MAX_SESSIONS" in listed and "MAX_CONNECTIONS" in listed


@pytest.mark.parametrize(
    ("environ", "toml", "message"),
    [
        ({"GATEWAY_PORT": "eighty"}, "", "port: Expected `int`"),
        (
            {"GATEWAY_PORT": "0"},
            "",
            "port = 0: must be between 1 and 65535 (from environment GATEWAY_PORT)",
        ),
        ({}, "ws_send_queue = 3\n", "ws_send_queue = 3: must be at least 16 (from /"),
        ({"GATEWAY_LOG_LEVEL": "loud"}, "", "log_level: Invalid enum value 'loud'"),
        ({"GATEWAY_REDIS_URL": "http://x"}, "", "redis_url: scheme must be one of"),
        (
            {"GATEWAY_REDIS_NAMESPACE": "a b"},
            "",
            "redis_namespace = 'a b': letters, digits, - and _ only (from environment",
        ),
        (
            {"GATEWAY_DIALECTS": "genesys, klingon"},
            "",
            "dialects: unknown dialect 'klingon' (installed: genesys, loopback, server_events, "
            "signalwire, visitor_widget, wonderful) (from environment GATEWAY_DIALECTS)",
        ),
        ({"GATEWAY_LEASE_TTL_S": "0.01"}, "", "lease_ttl_s = 0.01: must be at least 0.3"),
        ({"GATEWAY_MAX_SESSIONS": "0"}, "", "max_sessions = 0: must be at least 1"),
        ({"GATEWAY_MAX_STARTING": "0"}, "", "max_starting = 0: must be at least 1"),
        ({}, "colour = 'blue'\n", "colour: unknown setting"),
        ({}, "port = [\n", "config file"),
        ({}, "[dialects]\ngenesys = 3\n", "[dialects.<name>] must be tables"),
    ],
)
def test_bad_values_are_named(
    tmp_path: Path, environ: dict[str, str], toml: str, message: str
) -> None:
    config = None
    if toml:
        config = tmp_path / "bad.toml"
        config.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(config, environ=environ)


def test_logs_are_json_off_a_tty_with_redaction() -> None:
    stream = io.StringIO()
    configure("auto", "info", stream=stream)
    try:
        with bound(request_id="r1", dialect="genesys"):
            structlog.get_logger("t").info(
                "ingest.accepted", text="my card is 4111", token="abc", accepted=2
            )
            structlog.get_logger("t").debug("hidden")
        logging.getLogger("aiohttp.server").warning("from the stdlib")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert lines[0]["event"] == "ingest.accepted" and lines[0]["level"] == "info"
        assert (lines[0]["request_id"], lines[0]["dialect"], lines[0]["accepted"]) == (
            "r1",
            "genesys",
            2,
        )
        assert lines[0]["text"] == "***" and lines[0]["token"] == "***"
        assert "4111" not in stream.getvalue()
        assert [line["event"] for line in lines] == ["ingest.accepted", "from the stdlib"]
        stream.truncate(0)
        stream.seek(0)
        configure("json", "info", stream=stream, redact=False)
        structlog.get_logger("t").info("x", text="visible", apikey="never")
        line = json.loads(stream.getvalue())
        assert (line["text"], line["apikey"]) == ("visible", "***")
    finally:
        configure("console", "info")
        reset()


def test_module_loggers_follow_each_configuration() -> None:
    log = get_logger("gateway.t")
    first, second = io.StringIO(), io.StringIO()
    try:
        configure("json", "info", stream=first)
        log.info("a.b", n=1)
        log.debug("hidden")
        configure("json", "warning", stream=second)
        log.info("filtered.now")
        log.warning("c.d", token="abc")
        (one,) = [json.loads(line) for line in first.getvalue().splitlines()]
        assert (one["event"], one["n"], one["logger"], one["level"]) == ("a.b", 1, "gateway.t",
                                                                          "info")  # fmt: skip
        (two,) = [json.loads(line) for line in second.getvalue().splitlines()]
        assert (two["event"], two["token"]) == ("c.d", "***")
    finally:
        configure("console", "info")
        reset()


def test_bound_context_goes_with_its_block_and_lines_keep_their_timestamp_form() -> None:
    stream = io.StringIO()
    configure("json", "info", stream=stream)
    log = get_logger("gateway.t")
    try:
        with bound(request_id="r1"):
            bind(dialect="genesys")  # as the ingest handler does inside the request's block
            log.info("inside", dialect="own")  # a call's own field wins over a bound one
            log.info("inside.bound")
        log.info("after")
        inside, bound_line, after = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert (inside["request_id"], inside["dialect"]) == ("r1", "own")
        assert (bound_line["request_id"], bound_line["dialect"]) == ("r1", "genesys")
        assert "request_id" not in after and "dialect" not in after
        stamp = after["timestamp"]
        assert stamp.endswith("Z") and "+" not in stamp
        parsed = datetime.fromisoformat(stamp.removesuffix("Z") + "+00:00")
        assert parsed.isoformat().replace("+00:00", "Z") == stamp  # `isoformat()`'s text
    finally:
        configure("console", "info")
        reset()
