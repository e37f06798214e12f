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
from pathlib import Path

import pytest

from tests.clients.node import CONSOLE_SDK, SDK, install, node_missing, run, tsc
from tests.support import GatewayClient

_missing = node_missing()
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")


@pytest.fixture(scope="module")
def built() -> None:
    install()
    tsc("-p", "tsconfig.json")


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


def test_the_readme_example_type_checks(built: None, tmp_path: Path) -> None:
    """The README's "Use it from a frontend" example compiles against the SDK's declarations."""
    readme = (SDK.parents[1] / "README.md").read_text()
    example = readme.split("### Use it from a frontend", 1)[1].split("```ts\n", 1)[1]
    example = example.split("```", 1)[0]
    stubs = (
        "declare function fetchToken(): Promise<string>;\n"
        "declare const banner: { show(state: string): void };\n"
        "declare function render(event: Event): void;\n"
        "declare function toast(code: string, recoverable: boolean): void;\n"
    )
    source = tmp_path / "example.ts"
    source.write_text(
        example.replace('"@chat-gateway/client"', f'"{SDK / "dist" / "index.js"}"')
        + "\nimport type { Event } from "
        + f'"{SDK / "dist" / "index.js"}";\n'
        + stubs
        + "export {};\n"
    )
    tsc(
        "--noEmit",
        "--strict",
        "--target",
        "ES2022",
        "--module",
        "ES2022",
        "--moduleResolution",
        "bundler",
        "--lib",
        "ES2022,DOM",
        source,
    )
