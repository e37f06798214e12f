"""Fixtures of the console tests: the gateway in demo mode with the console, and a browser.

The browser is Debian's Chromium (`/usr/bin/chromium`, or `GATEWAY_TEST_CHROMIUM`) driven by
Playwright's Python package; `scripts/install-browser.sh` installs both. Without them the
browser tests skip with the reason. Screenshots go to `test-artifacts/console/`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.demo import setup_demo, wirings
from gateway.web.app import create_app
from gateway.web.console import setup_console
from tests.support import GatewayClient

DIALECTS = sorted(wirings())  # the five platforms and loopback
PACE = 0.25  # the scripted agents' delays, scaled down for tests
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def demo_app(**overrides: Any) -> web.Application:
    """The gateway as `gateway serve --demo` will build it, plus the console."""
    settings = Settings(
        **{"dialects": DIALECTS, "auth": "none", "command_timeout_s": 10.0, **overrides}
    )
    app = create_app(settings)
    setup_demo(app, pace=PACE)
    setup_console(app)
    return app


@pytest.fixture
async def demo(aiohttp_client: Callable[..., Any]) -> GatewayClient:
    """The demo gateway (memory hub) on a test server."""
    client: TestClient[Any, Any] = await aiohttp_client(demo_app())
    return GatewayClient(client)


def chromium_path() -> str | None:
    path = os.environ.get("GATEWAY_TEST_CHROMIUM") or shutil.which("chromium") or None
    if path is None and Path("/usr/bin/chromium").exists():
        path = "/usr/bin/chromium"
    return path


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the `playwright` package is not installed (scripts/install-browser.sh)"
    if chromium_path() is None:
        return "Chromium is not installed at /usr/bin/chromium (scripts/install-browser.sh)"
    return None


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


async def launch_browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()
