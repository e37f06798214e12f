"""A Python client of the gateway's unified WebSocket (aiohttp), with the TypeScript SDK's
semantics: resume with `since`, each event once and in order, commands settled once by ref.

    async with GatewayClient("ws://localhost:8080/v1/ws", token=token) as client:
        started = await client.start_conversation("loopback", {"from": "ana"})
        messages = await client.subscribe(started.conversation, since=0)
        await client.send(started.conversation, Text(text="hello"))
        async for event in messages:
            ...
"""

from gateway.client.connection import GatewayClient
from gateway.client.delivery import Delivery, Subscription
from gateway.client.model import (
    ConnectionState,
    Gap,
    HistoryPage,
    MemorySeqStore,
    PlatformPage,
    RecoveredSession,
    SeqStore,
    StateChange,
)

__all__ = [
    "ConnectionState",
    "Delivery",
    "Gap",
    "GatewayClient",
    "HistoryPage",
    "MemorySeqStore",
    "PlatformPage",
    "RecoveredSession",
    "SeqStore",
    "StateChange",
    "Subscription",
]
