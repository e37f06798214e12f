"""python-socketio 5 on aiohttp with `AsyncRedisManager`: the peer a team would reach for.

A client joins a room by emitting `subscribe` with the room name (acknowledged once it is in);
events reach the room from another process through a write-only `AsyncRedisManager` (the
documented way to emit from outside the server), travel through Redis pub/sub, and this server
emits them to the room's sockets. Socket.IO rooms have no patterns.
"""

from __future__ import annotations

import argparse

import socketio
from aiohttp import web

from bench.common import HOST, raise_fd_limit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    args = parser.parse_args()
    raise_fd_limit()
    manager = socketio.AsyncRedisManager(args.redis, channel="bench")
    sio = socketio.AsyncServer(
        async_mode="aiohttp", client_manager=manager, transports=["websocket"],
        max_http_buffer_size=1_000_000, ping_interval=25, ping_timeout=60,
    )  # fmt: skip

    @sio.on("subscribe")  # type: ignore[untyped-decorator]
    async def subscribe(sid: str, room: str) -> str:
        await sio.enter_room(sid, room)
        return "subscribed"

    app = web.Application()
    sio.attach(app)
    web.run_app(app, host=HOST, port=args.port, access_log=None, print=None, shutdown_timeout=1)


if __name__ == "__main__":
    main()
