"""The TypeScript SDK (`clients/typescript/`): its types match `GET /v1/schema`, the console's
copy of its build matches its sources, and its own Node tests pass against real gateways (the
memory engine, and Redis with two replicas).

The Node tests (`clients/typescript/test/*.test.mjs`) start `gateway serve` processes
themselves: they SIGTERM one, pause a socket until the gateway evicts it, let a token expire.
"""

from __future__ import annotations

import filecmp
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.node import CONSOLE_SDK, SDK, install, node_missing, run, tsc
from tests.support import GatewayClient

_missing = node_missing()
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")


@pytest.fixture(scope="module")
def built() -> Iterator[None]:
    install()
    tsc("-p", "tsconfig.json")
    yield


@pytest.mark.parametrize("hub_url", ["memory"], indirect=True)
async def test_types_match_the_gateways_schema(
    built: None, gateway: GatewayClient, tmp_path: Path
) -> None:
    status, schema = await gateway.get("/v1/schema")
    assert status == 200
    saved = tmp_path / "schema.json"
    saved.write_text(json.dumps(schema))
    # Fails, naming the fix, when src/schema.ts is not what the schema generates.
    run("node", "scripts/generate-types.mjs", saved, "--check")


def test_console_copy_matches_a_fresh_build(built: None, tmp_path: Path) -> None:
    tsc("-p", "tsconfig.console.json", "--outDir", tmp_path)
    fresh = sorted(p.name for p in tmp_path.iterdir())
    assert fresh == sorted(p.name for p in CONSOLE_SDK.iterdir()), "files differ: run npm run build"
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, CONSOLE_SDK, fresh, shallow=False)
    assert not mismatch and not errors, (
        f"gateway/web/static/sdk/ is stale ({mismatch or errors}): run `npm run build` in "
        "clients/typescript and commit the result"
    )


@pytest.mark.parametrize("engine", ["memory", "redis"])
def test_node_suite_against_real_gateways(
    built: None, engine: str, request: pytest.FixtureRequest
) -> None:
    env = {"GATEWAY_TEST_PYTHON": sys.executable, "GATEWAY_TEST_REDIS_URL": ""}
    if engine == "redis":
        env["GATEWAY_TEST_REDIS_URL"] = str(request.getfixturevalue("redis_url"))
    tests = sorted(str(p.relative_to(SDK)) for p in (SDK / "test").glob("*.test.mjs"))
    output = run("node", "--test", "--test-concurrency=1", *tests, env=env, timeout=480)
    assert "# fail 0" in output and "# pass 0" not in output, output
    if engine == "redis":
        assert "# skipped 0" in output, output  # the two-replica case ran
