"""The floor: bare aiohttp WebSockets fed by one Redis pub/sub connection, and bare webhooks.

`GET /ws?channel=C` (or `?pattern=P`) upgrades, subscribes the socket locally (the first socket
of a channel makes the one Redis SUBSCRIBE / PSUBSCRIBE), answers `{"op":"subscribed"}` once
Redis confirmed, and then gets every message of the channel as `{"op":"event","event":<msg>}`,
the frame built once per message and written to each socket. No log, no sequence, no dedup, no
queue: what aiohttp and redis-py can do at the least.

`POST /v1/dialects/{dialect}/events` takes one JSON frame (a Wonderful `{"data": {"eventId",
"sessionId"}}`), decodes it with msgspec, and in one redis-py pipeline appends it to a stream
(`XADD`, MAXLEN ~ 10000) and publishes it to the channel its sockets read
(`floor:<dialect>:<sessionId>`); it answers 202 with the gateway's reply shape. No auth, no
log, no dedup, no sequence: the least a webhook can cost.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict

import msgspec
import redis.asyncio as aioredis
from aiohttp import WSMsgType, web

from bench.common import HOST, raise_fd_limit

HEAD = b'{"op":"event","event":'


class _Inner(msgspec.Struct):
    eventId: str  # the platform's names
    sessionId: str


class _Frame(msgspec.Struct):
    data: _Inner


_decode = msgspec.json.Decoder(_Frame).decode
_encode = msgspec.json.Encoder().encode


class Floor:
    def __init__(self, url: str) -> None:
        self.redis = aioredis.Redis.from_url(url)
        self.pubsub = self.redis.pubsub()
        self.channels: defaultdict[bytes, set[web.WebSocketResponse]] = defaultdict(set)
        self.patterns: defaultdict[bytes, set[web.WebSocketResponse]] = defaultdict(set)
        self.confirmed: dict[bytes, asyncio.Future[None]] = {}
        self.lock = asyncio.Lock()

    async def start(self, app: web.Application) -> None:
        await self.pubsub.subscribe("floor:control")
        self.reader = asyncio.create_task(self.read())

    async def stop(self, app: web.Application) -> None:
        self.reader.cancel()
        await self.pubsub.aclose()
        await self.redis.aclose()

    async def read(self) -> None:
        channels, patterns = self.channels, self.patterns
        while True:
            message = await self.pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                sockets = channels.get(message["channel"])
            elif kind == "pmessage":
                sockets = patterns.get(message["pattern"])
            else:
                future = self.confirmed.get(message["channel"])
                if future is not None and not future.done():
                    future.set_result(None)
                continue
            if sockets:
                frame = HEAD + message["data"] + b"}"
                for ws in tuple(sockets):
                    try:
                        await ws.send_frame(frame, WSMsgType.TEXT)
                    except (ConnectionError, RuntimeError):
                        sockets.discard(ws)

    async def attach(self, name: bytes, pattern: bool, ws: web.WebSocketResponse) -> None:
        table = self.patterns if pattern else self.channels
        async with self.lock:
            first = name not in table
            table[name].add(ws)
            if first:
                future = self.confirmed[name] = asyncio.get_running_loop().create_future()
                if pattern:
                    await self.pubsub.psubscribe(name)
                else:
                    await self.pubsub.subscribe(name)
            future = self.confirmed[name]
        await future

    async def ingest(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            data = _decode(body).data
        except msgspec.DecodeError as exc:
            return web.json_response({"error": str(exc)}, status=422)
        conversation = f"{request.match_info['dialect']}:{data.sessionId}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd("floor:{" + conversation + "}:log", {"e": body}, maxlen=10_000,
                  approximate=True)  # fmt: skip
        pipe.publish("floor:" + conversation, body)
        await pipe.execute()
        reply = {"accepted": 1, "duplicates": 0, "ignored": 0,
                 "events": [{"id": data.eventId, "seq": 0}]}  # fmt: skip
        return web.Response(body=_encode(reply), status=202, content_type="application/json")

    def detach(self, name: bytes, pattern: bool, ws: web.WebSocketResponse) -> None:
        table = self.patterns if pattern else self.channels
        sockets = table.get(name)
        if sockets is not None:
            sockets.discard(ws)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        pattern = "pattern" in request.query
        name = ("floor:" + request.query["pattern" if pattern else "channel"]).encode()
        await self.attach(name, pattern, ws)
        await ws.send_frame(b'{"op":"subscribed"}', WSMsgType.TEXT)
        try:
            async for _ in ws:
                pass
        finally:
            self.detach(name, pattern, ws)
        return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    args = parser.parse_args()
    raise_fd_limit()
    floor = Floor(args.redis)
    app = web.Application()
    app.router.add_get("/ws", floor.handle)
    app.router.add_post("/v1/dialects/{dialect}/events", floor.ingest)
    app.on_startup.append(floor.start)
    app.on_cleanup.append(floor.stop)
    web.run_app(app, host=HOST, port=args.port, access_log=None, print=None, shutdown_timeout=1)


if __name__ == "__main__":
    main()
