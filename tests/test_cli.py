"""`gateway decode` (offline translation) and `gateway serve` argument handling."""

from __future__ import annotations

import io
import subprocess
import sys

import msgspec

from gateway.cli import decode
from gateway.config import Settings
from tests.processes import gateway_cli, refused_start
from tests.support import loopback_message


def run_decode(data: bytes, dialect: str = "loopback") -> tuple[int, list[dict], str]:  # type: ignore[type-arg]
    out, err = io.BytesIO(), io.StringIO()
    status = decode(dialect, io.BytesIO(data), out, err)
    lines = [msgspec.json.decode(line) for line in out.getvalue().splitlines()]
    return status, lines, err.getvalue()


def test_decodes_a_json_body() -> None:
    body = msgspec.json.encode([loopback_message("c1", 1), loopback_message("c1", 2)])
    status, events, err = run_decode(body)
    assert status == 0 and err == ""
    assert [e["id"] for e in events] == ["loopback:c1/m1", "loopback:c1/m2"]
    assert all("seq" not in e for e in events)  # offline: nothing is sequenced


def test_decodes_jsonl() -> None:
    lines = b"\n".join(msgspec.json.encode(loopback_message("c1", n)) for n in (1, 2, 3))
    status, events, _ = run_decode(lines + b"\n\n")
    assert status == 0
    assert [e["content"]["text"] for e in events] == ["text 1", "text 2", "text 3"]


def test_errors_are_the_ingest_errors() -> None:
    status, _, err = run_decode(b"{nope")
    assert status == 1
    assert msgspec.json.decode(err)["error"]["code"] == "MALFORMED_JSON"
    bad = msgspec.json.encode(loopback_message("c1", 1)) + b"\n" + b'{"kind": "message", "chat": 1}'
    status, _, err = run_decode(bad)
    error = msgspec.json.decode(err)["error"]
    assert (status, error["code"], error["line"]) == (1, "INVALID_FRAME", 2)
    status, _, err = run_decode(b"{}", dialect="klingon")
    assert (status, msgspec.json.decode(err)["error"]["code"]) == (1, "UNKNOWN_DIALECT")


def test_command_line_entry_point() -> None:
    body = msgspec.json.encode(loopback_message("c9", 1))
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "decode", "--dialect", "loopback"],
        input=body,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert msgspec.json.decode(done.stdout)["id"] == "loopback:c9/m1"


def test_bad_configuration_stops_the_start() -> None:
    line = refused_start({}, "--port", "0")
    assert line.endswith("port = 0: must be between 1 and 65535 (from command line)")


def test_serve_help_lists_every_setting_with_its_environment_variable() -> None:
    done = gateway_cli("serve", "--help")
    assert done.returncode == 0, done.stderr
    for key in set(Settings.__struct_fields__) - {"dialect_settings"}:
        assert f"GATEWAY_{key.upper()} " in done.stdout, key
    # What is not a GATEWAY_ setting says where it is documented.
    assert "GATEWAY_<DIALECT>_URL" in done.stdout and "docs/dialects/" in done.stdout
    assert "OTEL_" in done.stdout and "docs/observability.md" in done.stdout


def test_decode_lists_the_installed_dialects() -> None:
    done = gateway_cli("decode", "--dialect", "klingon")
    assert done.returncode == 2
    assert "invalid choice: 'klingon'" in done.stderr
    assert "genesys" in done.stderr and "wonderful" in done.stderr


def test_an_unknown_dialect_stops_the_start_naming_its_source() -> None:
    assert refused_start({"GATEWAY_DIALECTS": "genesys,klingon"}) == (
        "gateway: configuration error: dialects: unknown dialect 'klingon' (installed: "
        "genesys, loopback, server_events, signalwire, visitor_widget, wonderful) "
        "(from environment GATEWAY_DIALECTS)"
    )
