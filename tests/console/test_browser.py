"""The console in headless Chromium, against the gateway in demo mode.

One gateway and one browser for the module (they take a second to start); each test opens its
own page. Screenshots land in `test-artifacts/console/`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
from aiohttp import web

from tests.console.conftest import DIALECTS, browser_missing, demo_app, launch_browser
from tests.support import loopback_message

_missing = browser_missing()
pytestmark = [
    pytest.mark.skipif(_missing is not None, reason=_missing or ""),
    pytest.mark.asyncio(loop_scope="module"),
]

WAIT_MS = 10_000


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[str]:
    runner, url = await _serve(demo_app())
    yield url
    await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async for browser in launch_browser():
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any, server: str) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(server + "/")
    await page.wait_for_selector("#conn[data-state=connected]", timeout=WAIT_MS)
    yield page
    await context.close()
    assert not errors, f"the page raised: {errors}"


async def _start(page: Any, dialect: str) -> str:
    await page.select_option("#start-dialect", dialect)
    await page.click("#start-button")
    title = page.locator("#conv-title")
    await title.filter(has_text=f"{dialect}:").wait_for(timeout=WAIT_MS)
    return str(await title.text_content())


async def _say(page: Any, text: str) -> None:
    await page.fill("#send-text", text)
    await page.press("#send-text", "Enter")


def _messages(page: Any, text: str, user: bool) -> Any:
    role = ".role-user" if user else ":not(.role-user)"
    return page.locator(f"#log .event-message{role}", has_text=text)


async def _seqs(page: Any) -> list[int]:
    values = await page.locator("#log > li").evaluate_all(
        "nodes => nodes.map(n => Number(n.dataset.seq))"
    )
    return [int(v) for v in values]


async def test_start_and_chat_on_every_dialect(page: Any, artifacts: Path) -> None:
    names = await page.locator("#dialects .dialect .name").all_text_contents()
    assert sorted(names) == DIALECTS
    for dialect in DIALECTS:
        conversation = await _start(page, dialect)
        text = f"hello from the test on {dialect}"
        await _say(page, text)
        await _messages(page, f"echo: {text}", user=False).first.wait_for(timeout=WAIT_MS)
        assert await _messages(page, text, user=True).count() == 1, dialect
        seqs = await _seqs(page)
        assert seqs == sorted(set(seqs)), f"{dialect}: events out of order or twice: {seqs}"
        assert conversation in await page.locator("#conversations").text_content()
        await page.screenshot(path=str(artifacts / f"dialect-{dialect}.png"), full_page=True)
    # The canonical JSON toggle shows each event's wire form.
    await page.check("#show-json")
    assert await page.locator("#log .json").first.is_visible()
    await page.screenshot(path=str(artifacts / "canonical-json.png"), full_page=True)


async def test_files_and_end(page: Any, artifacts: Path) -> None:
    await _start(page, "server_events")
    await _say(page, "can I have the file?")
    await page.locator("#log .event-message .file a", has_text="receipt.txt").wait_for(
        timeout=WAIT_MS
    )
    await _start(page, "wonderful")
    await _say(page, "a file please")
    image = page.locator("#log .event-message figure.image img")
    await image.wait_for(timeout=WAIT_MS)
    assert (await image.get_attribute("src") or "").endswith("/files/diagram.svg")
    await _say(page, "bye")
    await page.locator("#log .event-ended").wait_for(timeout=WAIT_MS)
    assert await page.locator("#send-form button").is_disabled()
    await page.screenshot(path=str(artifacts / "files-and-end.png"), full_page=True)


async def test_socket_drop_resumes_with_since_and_no_duplicate(
    page: Any, server: str, artifacts: Path
) -> None:
    conversation = await _start(page, "loopback")
    await _say(page, "before the drop")
    await _messages(page, "echo: before the drop", user=False).wait_for(timeout=WAIT_MS)

    # Drop the socket and hold the reconnect while an event arrives: it must be replayed.
    await page.evaluate("window.gatewayConsole.dropSocket(1500)")
    await page.wait_for_selector("#conn[data-state=disconnected]", timeout=WAIT_MS)
    chat = conversation.partition(":")[2]
    request = page.request
    response = await request.post(
        f"{server}/v1/dialects/loopback/events",
        data=loopback_message(chat, 900, "sent while you were away"),
    )
    assert response.status == 202, await response.text()

    await page.wait_for_selector(
        "#conn[data-state=connected][data-reconnects='1']", timeout=WAIT_MS
    )
    assert "resumed" in (await page.locator("#conn").text_content() or "")
    away = _messages(page, "sent while you were away", user=False)
    await away.wait_for(timeout=WAIT_MS)

    await _say(page, "after the drop")
    await _messages(page, "echo: after the drop", user=False).wait_for(timeout=WAIT_MS)
    assert await away.count() == 1
    assert await _messages(page, "before the drop", user=True).count() == 1
    assert await _messages(page, "after the drop", user=True).count() == 1
    seqs = await _seqs(page)
    assert seqs == list(range(1, len(seqs) + 1)), f"a gap or a duplicate: {seqs}"
    await page.screenshot(path=str(artifacts / "reconnected.png"), full_page=True)


async def test_platform_history_panel(page: Any, artifacts: Path) -> None:
    """signalwire pages its own history: the panel shows the platform's messages, read, not
    added to the log; a dialect without the capability has the button disabled. (The demo's
    signalwire agent is one address: earlier tests' messages may be in its history too.)"""
    await _start(page, "loopback")
    assert await page.locator("#history-button").is_disabled()
    await _start(page, "signalwire")
    for text in ("first question", "second question"):
        await _say(page, text)
        await _messages(page, f"echo: {text}", user=False).wait_for(timeout=WAIT_MS)
    before = await _seqs(page)
    await page.click("#history-button")
    history = page.locator("#history-log .event-message")
    await history.filter(has_text="echo: second question").wait_for(timeout=WAIT_MS)
    texts = await history.all_text_contents()
    order = [
        next(i for i, t in enumerate(texts) if wanted in t)
        for wanted in ("first question", "echo: first question", "second question")
    ]
    assert order == sorted(order), texts  # oldest first, as the log
    assert sum("first question" in t and "echo" not in t for t in texts) == 1
    mine = page.locator("#history-log .event-message.role-user", has_text="question")
    assert await mine.count() == 2  # the user's own rows map to the user
    assert "from the platform" in (await page.locator("#history-status").text_content() or "")
    assert await _seqs(page) == before  # read, never added to the conversation's log
    await page.screenshot(path=str(artifacts / "platform-history.png"), full_page=True)


async def test_decode_panel_shows_canonical_events(page: Any, artifacts: Path) -> None:
    await page.select_option("#decode-dialect", "loopback")
    frame = '{"kind": "message", "id": "m1", "chat": "pasted", "from": {"role": "agent"}, '
    frame += '"text": "pasted frame"}'
    await page.fill("#decode-body", frame)
    await page.click("#decode-form button[type=submit]")
    await page.wait_for_selector("#decode-status[data-result=ok]", timeout=WAIT_MS)
    events = page.locator("#decode-out .event-message")
    assert await events.count() == 1
    assert "pasted frame" in (await events.first.text_content() or "")
    assert '"conversation_id": "loopback:pasted"' in (
        await page.locator("#decode-out").text_content() or ""
    )
    await page.screenshot(path=str(artifacts / "decode.png"), full_page=True)

    await page.fill("#decode-body", "{not json")
    await page.click("#decode-form button[type=submit]")
    await page.wait_for_selector("#decode-status[data-result=error]", timeout=WAIT_MS)
    assert "MALFORMED_JSON" in (await page.locator("#decode-status").text_content() or "")
    assert await page.locator("#decode-out > li").count() == 0


async def test_token_field_with_auth_on(browser: Any, artifacts: Path) -> None:
    secret = "console-test-secret-0123456789abcdef"
    runner, url = await _serve(demo_app(dialects=["loopback"], auth="jwt", jwt_secret=secret))
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(url + "/")
        await page.wait_for_selector("#conn[data-state=disconnected]", timeout=WAIT_MS)
        claims = {"sub": "console-test", "exp": int(time.time()) + 600, "read": ["*"]}
        claims["commands"] = ["*"]
        await page.fill("#token", jwt.encode(claims, secret, algorithm="HS256"))
        await page.click("#token-form button")
        await page.wait_for_selector("#conn[data-state=connected]", timeout=WAIT_MS)
        await page.locator("#dialects .dialect").first.wait_for(timeout=WAIT_MS)
        await _start(page, "loopback")
        await _say(page, "with a token")
        await _messages(page, "echo: with a token", user=False).wait_for(timeout=WAIT_MS)
        await page.screenshot(path=str(artifacts / "auth.png"), full_page=True)
    finally:
        await context.close()
        await runner.cleanup()


async def test_receipts_are_marks_and_the_user_is_user(page: Any, artifacts: Path) -> None:
    """A read receipt marks the message it acknowledges (no row with a raw id); the user's
    own lines say `user`, not the name they started with; the file glyph is an inline SVG."""
    await page.fill("#start-form [name=name]", "Ana Example")
    await _start(page, "server_events")
    await _say(page, "a file, please")
    await _messages(page, "echo: a file, please", user=False).wait_for(timeout=WAIT_MS)
    mine = _messages(page, "a file, please", user=True)
    assert (await mine.locator(".who").text_content()) == "user"
    await page.locator("#log .event-message .receipt-mark").first.wait_for(timeout=WAIT_MS)
    assert await page.locator("#log .event-receipt:visible").count() == 0
    assert await page.locator("#log .event-message .file svg.icon").count() >= 1
    await page.screenshot(path=str(artifacts / "receipts.png"), full_page=True)


async def test_the_console_speaks_through_the_sdk(page: Any) -> None:
    """The page's socket is the SDK's: its client object, its states, no token in the URL."""
    state = await page.evaluate(
        "() => ({state: window.gatewayConsole.state.client.state,"
        " welcome: window.gatewayConsole.state.client.welcome.op})"
    )
    assert state == {"state": "connected", "welcome": "welcome"}
