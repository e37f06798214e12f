"""Property tests: random and mutated input never gets anything but a declared error.

Every dialect's decoder, the ingest route (never a 5xx) and the unified WebSocket (only error
frames; the socket stays usable). Long runs: `fuzz/` (atheris), see docs/fuzzing.md.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.adapter import Registry
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.web.app import create_app
from tests.support import WsClient

FIXTURES = Path(__file__).parent.parent / "fixtures"
DIALECTS = [*sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()), "loopback"]
REGISTRY = Registry.load(DIALECTS)
DECLARED = {"MALFORMED_JSON", "INVALID_FRAME", "INVALID_REQUEST"}
SAMPLES = {
    dialect: [
        msgspec.json.decode(p.read_bytes())
        for p in sorted((FIXTURES / dialect).glob("*.json"))
        if not p.name.endswith(".expected.json") and not p.name.startswith("bad_")
    ]
    for dialect in DIALECTS
    if (FIXTURES / dialect).is_dir()
}


def _all_keys(value: Any, into: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            into.add(key)
            _all_keys(item, into)
    elif isinstance(value, list):
        for item in value:
            _all_keys(item, into)
    return into


KEYS = sorted(_all_keys(list(SAMPLES.values()), set()))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            "x" * 5_000,
            "2024-13-45T99:99:99Z",
            "1e400",
            "-1",
            "message",
            "Message",
            "chat_session_message",
            "text",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


def mutate(value: Any, rng: random.Random, replacement: Any) -> Any:
    """`value` with one node somewhere replaced, dropped or wrapped."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(sorted(value))
        copy = dict(value)
        action = rng.random()
        if action < 0.2:
            del copy[key]
        elif action < 0.6:
            copy[key] = mutate(value[key], rng, replacement)
        else:
            copy[key] = replacement
        return copy
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        copy = list(value)
        copy[index] = mutate(value[index], rng, replacement)
        return copy
    return replacement if rng.random() < 0.7 else [value]


def check_decode(dialect: str, body: bytes) -> None:
    adapter = REGISTRY.get(dialect)
    try:
        decoded = adapter.decode(body, conversation="c1")
    except GatewayError as exc:
        assert exc.code in DECLARED, (dialect, exc.body())
        return
    for event in decoded.events:  # what decodes must also encode
        msgspec.json.encode(event)


@pytest.mark.parametrize("dialect", DIALECTS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_random_json(dialect: str, value: Any) -> None:
    check_decode(dialect, msgspec.json.encode(value))


@pytest.mark.parametrize("dialect", sorted(SAMPLES))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), replacement=json_values)
def test_mutated_fixtures(dialect: str, seed: int, replacement: Any) -> None:
    rng = random.Random(seed)
    sample = rng.choice(SAMPLES[dialect])
    check_decode(dialect, msgspec.json.encode(mutate(sample, rng, replacement)))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_hostile_shapes(dialect: str) -> None:
    for body in [
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b"\x00\xff",
        b'"' + b"x" * 2_000_000 + b'"',
        b"[" + b"{}," * 50_000 + b"{}]",
        b'{"kind": []}',
        b'{"type": {}}',
        b'{"event": []}',
        b'{"method": [], "params": {"event_type": {}}}',
        b'[{"type": ["message"]}]',
        b"1" * 10_000,
        b"\xef\xbb\xbf{}",
        b'{"text": "\xff"}',  # bad UTF-8 inside strings: msgspec raises UnicodeDecodeError
        b'[{"type": "message", "data": "\xc3\x28"}]',
        b'{"events": [{"a": "\xed\xa0\x80"}]}',
    ]:
        check_decode(dialect, body)


@pytest.mark.parametrize("dialect", sorted(SAMPLES))
def test_bad_utf8_and_deep_nesting_inside_valid_bodies(dialect: str) -> None:
    """What msgspec raises besides `DecodeError` (`UnicodeDecodeError`, `RecursionError`), met
    inside every valid body, where each dialect's fast path meets it first: `MALFORMED_JSON`.
    Bad UTF-8 where a typed decoder reads nothing (a frame of an unknown event, a key no
    Struct has) too, as the exact path says of it."""
    adapter = REGISTRY.get(dialect)
    for sample in SAMPLES[dialect]:
        body = msgspec.json.encode(sample)
        if body.startswith(b"{"):  # a key of no Struct, before every other
            unknown_key = b'{"x-extra\xff":1,' + body[1:]
            with pytest.raises(GatewayError) as caught:
                adapter.decode(unknown_key, conversation="c1")
            assert caught.value.code == "MALFORMED_JSON", (dialect, unknown_key[:80])
        if b'":"' not in body:
            continue
        start = body.index(b'":"') + 3  # the first string value
        end = body.index(b'"', start)
        deep = b"[" * 3000 + b"]" * 3000
        bad_utf8 = body[:start] + b"\xff" + body[start:]
        for bad in (bad_utf8, body[: start - 1] + deep + body[end + 1 :]):
            with pytest.raises(GatewayError) as caught:
                adapter.decode(bad, conversation="c1")
            assert caught.value.code == "MALFORMED_JSON", (dialect, bad[:80])


@pytest.mark.parametrize("dialect", sorted(SAMPLES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), flips=st.integers(1, 4))
def test_byte_flipped_fixtures(dialect: str, seed: int, flips: int) -> None:
    """Below the JSON layer: random bytes of a real body replaced (bad UTF-8, broken tokens)."""
    rng = random.Random(seed)
    body = bytearray(msgspec.json.encode(rng.choice(SAMPLES[dialect])))
    for _ in range(flips):
        body[rng.randrange(len(body))] = rng.randrange(256)
    check_decode(dialect, bytes(body))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bodies=st.lists(st.tuples(st.sampled_from(DIALECTS), json_values), min_size=1, max_size=8),
    frames=st.lists(json_values | st.text(max_size=50), min_size=1, max_size=8),
)
def test_ingest_and_websocket_never_fail_hard(
    bodies: list[tuple[str, Any]], frames: list[Any]
) -> None:
    asyncio.run(_gateway_scenario(bodies, frames))


async def _gateway_scenario(bodies: list[tuple[str, Any]], frames: list[Any]) -> None:
    app = create_app(
        Settings(auth="none", dialects=DIALECTS, ws_rate=1000, ws_burst=1000),
        Registry.load(DIALECTS),
    )
    async with TestClient(TestServer(app)) as http:
        for dialect, value in bodies:
            async with http.post(
                f"/v1/dialects/{dialect}/events",
                data=msgspec.json.encode(value),
                params={"conversation": "c1"},
            ) as response:
                assert response.status in (202, 400, 413, 422), (dialect, value, response.status)
                body = await response.json()
                assert response.status == 202 or body["error"]["code"]
        ws = WsClient(await http.ws_connect("/v1/ws"))
        await ws.wait_for(lambda f: f["op"] == "welcome")
        for frame in frames:  # (frames over the size limit close the socket: tested elsewhere)
            await ws.send_raw(
                frame if isinstance(frame, str) else msgspec.json.encode(frame).decode()
            )
        await ws.ws.send_frame(b'{"op": "ping", "ref": "\xff"}', WSMsgType.TEXT)  # bad UTF-8
        await ws.send("ping", ref="alive")
        await ws.reply("pong", "alive")
        allowed = {
            "welcome",
            "error",
            "pong",
            "subscribed",
            "unsubscribed",
            "history",
            "event",
            "ack",
            "started",
            "recovered",
        }
        assert {f["op"] for f in ws.frames} <= allowed
        await ws.close()
