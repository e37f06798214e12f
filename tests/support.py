"""Test helpers that speak the gateway's public contract (HTTP and the unified WebSocket)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import msgspec
from aiohttp.test_utils import TestClient

TIMEOUT = 5.0


def loopback_message(
    chat: str, n: int, text: str | None = None, role: str = "agent"
) -> dict[str, Any]:
    """A loopback-dialect message frame (`loopback:<chat>/m<n>` once decoded)."""
    return {
        "kind": "message",
        "id": f"m{n}",
        "chat": chat,
        "from": {"role": role},
        "text": text if text is not None else f"text {n}",
        "ts": 1700000000 + n,
    }


class WsClient:
    """One unified-WebSocket connection with helpers to wait for frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(msgspec.json.decode(message.data))
                self._new.set()
        self._new.set()

    async def send(self, op: str, **fields: Any) -> None:
        await self.ws.send_str(msgspec.json.encode({"op": op, **fields}).decode())

    async def send_raw(self, data: str) -> None:
        await self.ws.send_str(data)

    async def wait_for(self, predicate: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first frame (old or new) for which `predicate(frame)` holds."""
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for frame in self.frames[seen:]:
                    if predicate(frame):
                        return frame
                seen = len(self.frames)
                if self.ws.closed and self._reader.done():
                    raise AssertionError(f"socket closed ({self.ws.close_code}) while waiting")
                self._new.clear()
                await self._new.wait()

    async def reply(
        self, op: str, ref: str | None = None, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        return await self.wait_for(
            lambda f: f["op"] in (op, "error") and (ref is None or f.get("ref") == ref), timeout
        )

    def events(self, conversation: str | None = None) -> list[dict[str, Any]]:
        return [
            f["event"]
            for f in self.frames
            if f["op"] == "event"
            and (conversation is None or f["event"]["conversation_id"] == conversation)
        ]

    async def wait_events(
        self, count: int, conversation: str | None = None, timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.events(conversation)) < count:
                if self.ws.closed and self._reader.done():
                    raise AssertionError(f"socket closed ({self.ws.close_code}) while waiting")
                self._new.clear()
                await self._new.wait()
        return self.events(conversation)

    async def subscribe(self, conversation: str, since: int | None = None) -> dict[str, Any]:
        ref = f"sub-{conversation}-{len(self.frames)}"
        fields: dict[str, Any] = {"conversation": conversation, "ref": ref}
        if since is not None:
            fields["since"] = since
        await self.send("subscribe", **fields)
        frame = await self.reply("subscribed", ref)
        assert frame["op"] == "subscribed", frame
        return frame

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


class GatewayClient:
    """The gateway under test, through its public HTTP and WebSocket contract."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def ingest(
        self, dialect: str, body: Any, conversation: str | None = None, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        params = {"conversation": conversation} if conversation else None
        data = raw if raw is not None else msgspec.json.encode(body)
        async with self.client.post(
            f"/v1/dialects/{dialect}/events", data=data, params=params
        ) as response:
            return response.status, await response.json()

    async def ingest_until_accepted(self, chat: str, n: int) -> int:
        """Post loopback message `n` of `chat` until a 202, as a webhook sender retries
        (every other answer must be a retryable 503); how many times it was refused."""
        refused = 0
        while True:
            status, body = await self.ingest("loopback", loopback_message(chat, n))
            if status == 202:
                return refused
            assert status == 503 and body["error"]["code"] == "STORE_UNAVAILABLE", body
            refused += 1
            await asyncio.sleep(0.05)

    async def get(self, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
        async with self.client.get(path, params=params or None) as response:
            return response.status, await response.json()

    async def ws(self) -> WsClient:
        socket = await self.client.ws_connect("/v1/ws")
        client = WsClient(socket)
        await client.wait_for(lambda f: f["op"] == "welcome")
        return client


class Inbound:
    """Runs a connector's `inbound()` in the background; tests wait on what it collected.

    Shared by every dialect's connector tests (`await inbound.until(lambda events: ...)`);
    `await inbound.stop()` at the end (or use it through a fixture that does). With
    `publish_to`, every batch is published to that hub first, as the sessions layer does.
    """

    def __init__(self, connector: Any, timeout: float = TIMEOUT, publish_to: Any = None) -> None:
        self.events: list[Any] = []
        self.timeout = timeout
        self.hub = publish_to
        self._changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run(connector))

    async def _run(self, connector: Any) -> None:
        try:
            async for batch in connector.inbound():
                if self.hub is not None:
                    await self.hub.publish(batch)
                self.events.extend(batch)
                self._changed.set()
        finally:
            self._changed.set()

    async def until(self, predicate: Any) -> list[Any]:
        """Wait until `predicate(events)` holds; fails if inbound ends first."""
        async with asyncio.timeout(self.timeout):
            while True:
                self._changed.clear()
                if predicate(self.events):
                    return self.events
                if self.task.done():
                    self.task.result()
                    raise AssertionError(f"inbound finished without it: {self.events}")
                await self._changed.wait()

    async def finished(self) -> None:
        async with asyncio.timeout(self.timeout):
            await self.task

    def of_type(self, tag: str) -> list[Any]:
        return [e for e in self.events if e.__struct_config__.tag == tag]

    def texts(self) -> list[str]:
        return [
            e.content.text
            for e in self.of_type("message")
            if e.content.__struct_config__.tag == "text"
        ]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


async def stored(hub: Any, conversation: str) -> list[Any]:
    """The canonical events a hub holds for `conversation`, oldest first."""
    from gateway.model import event_decoder

    return [event_decoder.decode(payload) for _, payload in await hub.read(conversation)]


async def scrape(gateway: GatewayClient) -> str:
    """The gateway's `/metrics` text."""
    async with gateway.client.get("/metrics") as response:
        return await response.text()


def metric(text: str, prefix: str) -> float:
    """The sum of the samples in a `/metrics` text whose line starts with `prefix`."""
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )
