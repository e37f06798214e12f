"""Demo mode: every loaded dialect talks to its platform emulator, started inside the process.

`gateway serve --demo` (or `Settings(demo=True)`) calls `setup_demo(app)`, which adds two
cleanup contexts to the app:

- `emulators_ctx` (first of all, so it stops last): starts the emulator of each loaded dialect
  that has one (`Adapter.demo`) on `127.0.0.1` with an ephemeral port (aiohttp `AppRunner`,
  `TCPSite`), and points the dialect's connector at it by writing its `[dialects.<name>]`
  table into the app's settings (environment variables `GATEWAY_<DIALECT>_*` still take
  precedence over it).
- `director_ctx` (last of all, so it stops first): a `*` subscription on the hub that makes the
  scripted agents send a file when a user asks for one (a user text holding the word "file").

The emulators' own scripted agents join, type, answer `echo: <text>`, and end the chat when the
user says "bye". This module knows no dialect: each one's wiring (emulator constructor, base path,
connector options, how its agent sends a file) is its emulator module's `demo_wiring()`, which
its adapter's `demo()` returns.

`Demo` does the same without an app: `async with Demo(["genesys"]) as demo: demo.settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import TracebackType
from typing import Any

import msgspec
import structlog
from aiohttp import web

from gateway.adapter import ENTRY_POINT_GROUP, DialectSettings, Registry
from gateway.web.keys import HUB, REGISTRY, SETTINGS

log = structlog.get_logger(__name__)

__all__ = ["DEMO", "Demo", "DemoFiles", "Wiring", "setup_demo", "wirings"]

FileSender = Callable[[Any, str, "DemoFiles"], Awaitable[bool]]
"""`send_file(emulator, native conversation id, files)`: the agent sends a file; False when
the emulator does not know that conversation (it lives in another process's emulator)."""


@dataclass(frozen=True)
class Wiring:
    """How one dialect's emulator is started and how its connector reaches it."""

    build: Callable[[float], Any]
    """`build(pace)` → the emulator (it has `.app`); `pace` scales the agent's delays."""
    path: str = ""
    """Appended to the emulator's base URL to make the connector's `url`."""
    options: dict[str, str] = field(default_factory=dict)
    """The connector options (`GATEWAY_<DIALECT>_<NAME>`)."""
    urls: dict[str, str] = field(default_factory=dict)
    """Connector options that are addresses on the emulator: option name → path appended to
    its base URL (a socket the platform serves apart from `url`, say)."""
    send_file: FileSender | None = None


_RECEIPT = b"Demo receipt\n\n1 x Chat dialect gateway demo ..... 0.00\n\nThank you!\n"
_DIAGRAM = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="240" height="120" viewBox="0 0 240 120">'
    b'<rect width="240" height="120" rx="12" fill="#e8f0fe"/>'
    b'<circle cx="50" cy="60" r="26" fill="#1a73e8"/>'
    b'<rect x="95" y="40" width="120" height="12" rx="6" fill="#5f6368"/>'
    b'<rect x="95" y="66" width="80" height="12" rx="6" fill="#9aa0a6"/></svg>'
)


class DemoFiles:
    """The files the scripted agents send, served by a tiny app of their own."""

    def __init__(self) -> None:
        self.base = ""
        self.ids = itertools.count(1)
        self.receipt = _RECEIPT
        self.app = web.Application()
        self.app.router.add_get("/files/receipt.txt", self._serve(_RECEIPT, "text/plain"))
        self.app.router.add_get("/files/diagram.svg", self._serve(_DIAGRAM, "image/svg+xml"))

    def url(self, name: str) -> str:
        return f"{self.base}/files/{name}"

    @staticmethod
    def _serve(body: bytes, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type)

        return handler


async def _serve(app: web.Application, host: str) -> tuple[web.AppRunner, str]:
    # Emulators hold long polls open: on shutdown, cancel them rather than wait them out.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=0.5, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{host}:{port}"


def wirings(dialects: Iterable[str] | None = None) -> dict[str, Wiring]:
    """The demo wiring of each dialect named (default: every installed one, test-only ones
    included) whose adapter has an emulator; a dialect that fails to load is left out."""
    if dialects is None:
        dialects = [ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)]
    found: dict[str, Wiring] = {}
    for adapter in Registry.load(dialects):
        try:
            wiring = adapter.demo()
        except Exception as exc:  # one broken emulator must not stop the others
            log.error("demo.wiring_failed", dialect=adapter.name, error=f"{exc!r}")
            continue
        if wiring is not None:
            found[adapter.name] = wiring
    return found


class Demo:
    """The emulators of `dialects` (those that have one), each on its own ephemeral port.

    After `start()`: `emulators[name]` is the emulator (its test controls work), `urls[name]` its
    base URL and `settings[name]` the `DialectSettings` that point the connector at it.
    """

    def __init__(
        self,
        dialects: Iterable[str] | None = None,
        *,
        pace: float = 1.0,
        host: str = "127.0.0.1",
        wiring: dict[str, Wiring] | None = None,
    ) -> None:
        self.wiring = wiring if wiring is not None else wirings(dialects)
        wanted = list(self.wiring) if dialects is None else list(dialects)
        self.dialects = [d for d in wanted if d in self.wiring]
        self.pace = pace
        self.host = host
        self.files = DemoFiles()
        self.emulators: dict[str, Any] = {}
        self.urls: dict[str, str] = {}
        self.settings: dict[str, DialectSettings] = {}
        self.failed: dict[str, str] = {}
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        runner, self.files.base = await _serve(self.files.app, self.host)
        self._runners.append(runner)
        for name in self.dialects:
            wiring = self.wiring[name]
            try:
                emulator = wiring.build(self.pace)
                runner, base = await _serve(emulator.app, self.host)
            except Exception as exc:  # one broken emulator must not stop the others
                self.failed[name] = f"{type(exc).__name__}: {exc}"
                log.error("demo.emulator_failed", dialect=name, error=self.failed[name])
                continue
            self._runners.append(runner)
            self.emulators[name] = emulator
            self.urls[name] = base
            urls = {option: base + path for option, path in wiring.urls.items()}
            self.settings[name] = DialectSettings(
                url=base + wiring.path, options={**wiring.options, **urls}
            )
            log.info("demo.emulator_started", dialect=name, url=base + wiring.path)

    async def close(self) -> None:
        for runner in reversed(self._runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> Demo:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def tables(self) -> dict[str, dict[str, str]]:
        """The `[dialects.<name>]` tables (`url` + options) of every started emulator."""
        return {name: {"url": s.url or "", **s.options} for name, s in self.settings.items()}

    async def send_file(self, conversation: str, dialect: str) -> bool:
        """Have the scripted agent of `conversation` send a file (or a link, where the
        platform carries no files); False when no emulator here holds that conversation."""
        wiring, emulator = self.wiring.get(dialect), self.emulators.get(dialect)
        if wiring is None or wiring.send_file is None or emulator is None:
            return False
        native = conversation.partition(":")[2]
        return await wiring.send_file(emulator, native, self.files)


DEMO = web.AppKey("demo", Demo)


def setup_demo(app: web.Application, *, pace: float = 1.0) -> None:
    """Run `app` in demo mode: call it from `create_app` (after the app's own contexts)."""

    async def emulators_ctx(app: web.Application) -> AsyncIterator[None]:
        demo = Demo([adapter.name for adapter in app[REGISTRY]], pace=pace)
        await demo.start()
        settings = app[SETTINGS]
        settings.dialect_settings = {**settings.dialect_settings, **demo.tables()}
        app[DEMO] = demo
        log.info("demo.ready", dialects=sorted(demo.emulators), failed=sorted(demo.failed))
        yield
        await demo.close()

    app.cleanup_ctx.insert(0, emulators_ctx)  # up before anything uses a connector, down last
    app.cleanup_ctx.append(_director_ctx)  # needs the hub; stops before the sessions do


_WANTS_FILE = re.compile(r"\bfiles?\b", re.IGNORECASE)
_event = msgspec.json.Decoder(dict[str, Any])


class _Director:
    """A hub sink on `*`: a user text asking for a "file" makes the agent send one."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.tasks: set[asyncio.Task[None]] = set()

    def deliver(self, conversation: str, seq: int, payload: bytes) -> None:
        try:
            event = _event.decode(payload)
        except msgspec.DecodeError:
            return
        content = event.get("content") or {}
        if (
            event.get("type") == "message"
            and (event.get("sender") or {}).get("role") == "user"
            and content.get("kind") == "text"
            and _WANTS_FILE.search(str(content.get("text", "")))
        ):
            task = asyncio.get_running_loop().create_task(
                self._send(conversation, str(event.get("dialect")))
            )
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drained(self) -> None:
        return None

    def restarted(self, conversation: str, epoch: str) -> None:
        pass  # a pattern subscription: never told

    async def _send(self, conversation: str, dialect: str) -> None:
        await asyncio.sleep(0.5 * self.demo.pace)
        try:
            sent = await self.demo.send_file(conversation, dialect)
        except Exception:
            log.exception("demo.send_file_failed", conversation_id=conversation)
            return
        if sent:
            log.info("demo.file_sent", conversation_id=conversation)


async def _director_ctx(app: web.Application) -> AsyncIterator[None]:
    demo = app.get(DEMO)
    if demo is None:
        yield
        return
    director = _Director(demo)
    subscription = await app[HUB].subscribe("*", director)
    subscription.start()
    yield
    await app[HUB].wait_closed([subscription])
    for task in list(director.tasks):
        task.cancel()
    await asyncio.gather(*director.tasks, return_exceptions=True)
