"""The emulator's `Idempotency-Key` keeper (our convention, see `adapters.wonderful`).

A POST to the same path with the key of one already carried out gets that first answer again
and is not carried out twice; a repeat arriving while the first runs waits for its answer.
Refusals (HTTP exceptions) are not kept: a retry of a refused POST is tried afresh. `lose`
makes the next POSTs be carried out but answered with the `lost()` error, as by a proxy that
lost the answer: what a client retries, and what must not be delivered twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from adapters.wonderful.encode import IDEMPOTENCY_HEADER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Answer:
    """A POST's answer as kept for its key."""

    status: int
    body: bytes
    content_type: str


class IdempotentPosts:
    def __init__(self, lost: Callable[[], Exception]) -> None:
        self.lost = lost
        self.lose = 0
        self._answers: dict[tuple[str, str], asyncio.Future[Answer | None]] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        slot = (request.path, key) if key else None
        answer = None
        if slot is not None and slot in self._answers:
            answer = await asyncio.shield(self._answers[slot])  # None: the first was refused
        if answer is None:
            answer = await self._carry_out(request, handler, slot)
        if self.lose > 0:
            self.lose -= 1
            raise self.lost()
        return web.Response(
            status=answer.status, body=answer.body, content_type=answer.content_type
        )

    async def _carry_out(
        self, request: web.Request, handler: Handler, slot: tuple[str, str] | None
    ) -> Answer:
        future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        if slot is not None:
            self._answers[slot] = future
        try:
            response = await handler(request)
        except BaseException:
            future.set_result(None)
            if slot is not None:
                del self._answers[slot]
            raise
        assert isinstance(response, web.Response)
        assert isinstance(response.body, bytes)
        answer = Answer(response.status, response.body, response.content_type)
        future.set_result(answer)
        return answer
