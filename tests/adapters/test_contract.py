"""Every installed dialect against the shared contract and its own fixture table.

`tests/fixtures/<dialect>/<case>.json` is a native body as POSTed to ingest; beside it
`<case>.expected.json` holds `{"conversation", "events", "ignored"}` (or `{"conversation",
"error": {"code", "index"?, "path"?}}` for a body that must be refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.adapter import Adapter, Registry
from gateway.errors import GatewayError
from gateway.model import Event, event_encoder

FIXTURES = Path(__file__).parent.parent / "fixtures"
REGISTRY = Registry.load([p.name for p in FIXTURES.iterdir() if p.is_dir()] + ["loopback"])
ADAPTERS = {adapter.name: adapter for adapter in REGISTRY}


def _cases() -> list[Any]:
    cases = []
    for expected in sorted(FIXTURES.glob("*/*.expected.json")):
        body = expected.with_name(expected.name.replace(".expected.json", ".json"))
        cases.append(
            pytest.param(
                expected.parent.name, body, expected, id=f"{expected.parent.name}/{body.stem}"
            )
        )
    return cases


def _as_json(events: list[Event]) -> list[Any]:
    return [msgspec.json.decode(event_encoder.encode(e)) for e in events]


def test_every_fixture_dialect_loads() -> None:
    assert not REGISTRY.failures, REGISTRY.failures


@pytest.mark.parametrize(("dialect", "body_path", "expected_path"), _cases())
def test_fixture(dialect: str, body_path: Path, expected_path: Path) -> None:
    adapter = ADAPTERS[dialect]
    expected = msgspec.json.decode(expected_path.read_bytes())
    body = body_path.read_bytes()
    if "error" in expected:
        with pytest.raises(GatewayError) as caught:
            adapter.decode(body, conversation=expected.get("conversation"))
        got = caught.value.body()
        for key, value in expected["error"].items():
            assert got.get(key) == value, (key, got)
        return
    decoded = adapter.decode(body, conversation=expected.get("conversation"))
    assert _as_json(decoded.events) == expected["events"]
    assert decoded.ignored == expected.get("ignored", 0)
    # Deterministic ids: the same body decodes to the same events (so re-posts deduplicate).
    again = adapter.decode(body, conversation=expected.get("conversation"))
    assert _as_json(again.events) == expected["events"]


@pytest.fixture(params=sorted(ADAPTERS), ids=str)
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return ADAPTERS[request.param]


def test_declares_itself(adapter: Adapter) -> None:
    described = adapter.describe()
    assert described["name"] == adapter.name
    assert "ingest" in described["capabilities"]
    if "send" in adapter.capabilities:
        assert adapter.content_kinds, "a dialect that sends must say which content kinds"


def test_a_dialect_must_decode() -> None:
    """A dialect gives the shared pipeline its spec: without one, defining it fails."""
    with pytest.raises(TypeError, match="has no decoding spec"):

        class Mute(Adapter):  # defining the class is what fails
            name = "mute"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"nul",
        b"[1,",
        b"\xff\xfe",
        b'"just a string"',
        b"42",
        b"null",
        b"[[[]]]",
        b'{"type": null}',
        b'[{"event": 5}]',
        b'{"a": {"b": {"c": [1, {"d": null}]}}}',
    ],
)
def test_garbage_gets_a_declared_error_or_is_ignored(adapter: Adapter, body: bytes) -> None:
    try:
        decoded = adapter.decode(body, conversation="c1")
    except GatewayError as exc:
        assert exc.code in {"MALFORMED_JSON", "INVALID_FRAME", "INVALID_REQUEST"}, exc.body()
        assert exc.status in (400, 422)
        return
    assert all(e.conversation_id for e in decoded.events)
