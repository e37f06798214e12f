"""The requests of the Python client: reads and commands, each answered by its typed reply.

`Commands` is mixed into `GatewayClient`, which supplies `_request` (send a frame with a ref,
return the answer's JSON, raise `GatewayError` on an `error` frame; re-sent after a reconnect).
"""

from __future__ import annotations

import abc
from typing import Any, TypeVar

import msgspec

from gateway.client.delivery import Delivery
from gateway.client.model import HistoryPage, PlatformPage, RecoveredSession
from gateway.model import Content
from gateway.sessions.replies import Ack, Started

T = TypeVar("T")


class Commands(abc.ABC):
    @abc.abstractmethod
    async def _request(
        self, frame: dict[str, Any], *, delivery: Delivery | None = None
    ) -> bytes: ...

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Any op by name (one this version has no method for); its answer frame as a dict."""
        answer: dict[str, Any] = msgspec.json.decode(await self._request({**fields, "op": op}))
        return answer

    async def _typed(self, frame: dict[str, Any], answer: type[T]) -> T:
        return msgspec.json.decode(await self._request(frame), type=answer)

    async def history(
        self, conversation: str, *, before: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """The `limit` events of the gateway's log before seq `before` (the latest if omitted)."""
        frame = _frame("history", conversation=conversation, before=before, limit=limit)
        return await self._typed(frame, HistoryPage)

    async def platform_history(
        self, conversation: str, *, cursor: str | None = None, limit: int | None = None
    ) -> PlatformPage:
        frame = _frame(
            "history", conversation=conversation, source="platform", cursor=cursor, limit=limit
        )
        return await self._typed(frame, PlatformPage)

    async def start_conversation(
        self,
        dialect: str,
        participant: dict[str, Any],
        *,
        agent_id: str | None = None,
        locale: str | None = None,
        subject: str | None = None,
        metadata: dict[str, Any] | None = None,
        ref: str | None = None,
    ) -> Started:
        frame = _frame(
            "start",
            dialect=dialect,
            participant=participant,
            agent_id=agent_id,
            locale=locale,
            subject=subject,
            metadata=metadata,
            ref=ref,
        )
        return await self._typed(frame, Started)

    async def recover(self, conversation: str, *, ref: str | None = None) -> RecoveredSession:
        return await self._typed(
            _frame("recover", conversation=conversation, ref=ref), RecoveredSession
        )

    async def send(
        self,
        conversation: str,
        content: Content | dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        ref: str | None = None,
    ) -> Ack:
        body = msgspec.to_builtins(content)
        frame = _frame("send", conversation=conversation, content=body, metadata=metadata, ref=ref)
        return await self._typed(frame, Ack)

    async def typing(
        self,
        conversation: str,
        active: bool = True,
        *,
        preview: str | None = None,
        ref: str | None = None,
    ) -> Ack:
        frame = _frame("typing", conversation=conversation, active=active, preview=preview, ref=ref)
        return await self._typed(frame, Ack)

    async def read(
        self, conversation: str, *, up_to: str | None = None, ref: str | None = None
    ) -> Ack:
        return await self._typed(
            _frame("read", conversation=conversation, up_to=up_to, ref=ref), Ack
        )

    async def end(self, conversation: str, *, ref: str | None = None) -> Ack:
        return await self._typed(_frame("end", conversation=conversation, ref=ref), Ack)

    async def forward(self, conversation: str, destination: str, *, ref: str | None = None) -> Ack:
        frame = _frame("forward", conversation=conversation, destination=destination, ref=ref)
        return await self._typed(frame, Ack)


def _frame(op: str, **fields: Any) -> dict[str, Any]:
    """A client frame: `op` and the fields that are set."""
    return {"op": op, **{k: v for k, v in fields.items() if v is not None}}
