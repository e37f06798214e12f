"""The unified WebSocket protocol: JSON text frames tagged by `op`.

Client → server: `subscribe`, `unsubscribe`, `history` (of the gateway's log, or with
`source: "platform"` of the platform's own), `ping`, and the commands of
`gateway.model` (`start`, `recover`, `send`, `typing`, `read`, `end`, `forward`), which decode
straight into the model's Structs. Server → client: `welcome`, `subscribed`, `unsubscribed`,
`event`, `history`, `started`, `recovered`, `ack`, `error`, `pong`. Every client frame may carry
a `ref`; the reply to it carries the same `ref`. A command's `ref` is its client's (token `sub`):
a repeat by the same client gets the first answer, another client's equal ref is its own.

Every stored event carries its log's `epoch` next to its `seq`; `subscribed` and `history`
carry it too. A resume (`subscribe` with `since`, and `epoch`) is answered `recovered: true`
when every event after `since` follows, `recovered: false` when some are gone (the log
restarted: a new epoch and `seq` 0; or they were trimmed). A log that restarts under a live
subscription is announced by an unasked `subscribed {seq: 0, epoch, recovered: false}`.

Close codes: 1000 normal, 1001 going away (the gateway is shutting down: reconnect elsewhere
and resume with `since`), 1009 frame too large, 4008 send queue overflow (the client read too
slowly; reconnect and resume with `since`), 4401 the token expired (reconnect with a new one).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gateway.errors import GatewayError
from gateway.model import End, Forward, MarkRead, Recover, Send, SetTyping, Start

PROTOCOL_VERSION = 1
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_LARGE = 1009
CLOSE_SLOW_CONSUMER = 4008
CLOSE_TOKEN_EXPIRED = 4401
SUBPROTOCOL = "gateway.v1"
"""The subprotocol a client may offer (with `bearer.<token>` to authenticate)."""


class _Op(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    ref: str | None = None


class Subscribe(_Op, tag="subscribe", kw_only=True):
    """`conversation` is an id or a pattern (`genesys:*`, `*`); `since` the last seq seen, and
    `epoch` the epoch of the log it was seen in (every event carries it)."""

    conversation: str
    since: int | None = None
    epoch: str | None = None


class Unsubscribe(_Op, tag="unsubscribe", kw_only=True):
    conversation: str


class History(_Op, tag="history", kw_only=True):
    """A page of a conversation's history, oldest first.

    `source: "gateway"` (the default) reads the gateway's log: the `limit` events before seq
    `before` (the latest when omitted), answered with `has_more`. `source: "platform"` asks
    the platform itself (dialects with the `history` capability): `limit` events from
    `cursor` (the newest when omitted), answered with `has_next`/`has_prev` and the cursors
    `next` (older) and `prev` (newer).
    """

    conversation: str
    source: Literal["gateway", "platform"] = "gateway"
    before: int | None = None
    cursor: str | None = None
    limit: int = 50


class Ping(_Op, tag="ping", kw_only=True):
    pass


ClientFrame = (
    Subscribe
    | Unsubscribe
    | History
    | Ping
    | Start
    | Recover
    | Send
    | SetTyping
    | MarkRead
    | End
    | Forward
)
client_decoder: msgspec.json.Decoder[ClientFrame] = msgspec.json.Decoder(ClientFrame)


class Welcome(_Op, tag="welcome", kw_only=True):
    version: int
    connection: str
    dialects: list[str]
    max_frame_bytes: int


class Subscribed(_Op, tag="subscribed", kw_only=True):
    """`seq`: the point the subscription starts from; events after it follow. `epoch`: the
    conversation log's epoch (absent for a pattern, or a log with no event yet).

    `recovered` answers a resume (`since`): true when every event after `since` follows;
    false when some are gone: the log restarted (the store lost it: a new `epoch`, and `seq`
    is 0, the new log follows from its start) or its oldest events were trimmed (retention).
    A `subscribed` the client did not ask for (no `ref`), with `recovered: false`, says the log
    restarted under a live subscription: drop what was shown of the old log, or keep it as
    history, and carry on with the new epoch's events that follow (its `epoch` is absent when
    the new log has no event yet: the events carry it)."""

    conversation: str
    seq: int
    epoch: str | None = None
    recovered: bool | None = None


class Unsubscribed(_Op, tag="unsubscribed", kw_only=True):
    conversation: str


class HistoryReply(_Op, tag="history", kw_only=True):
    conversation: str
    events: list[msgspec.Raw]
    has_more: bool
    epoch: str | None = None


class Pong(_Op, tag="pong", kw_only=True):
    pass


server_encoder = msgspec.json.Encoder()

EVENT_FRAME_HEAD = b'{"op":"event","event":'


def error_frame(error: GatewayError, ref: str | None = None) -> bytes:
    """`{"op": "error", "ref", "code", "message", "recoverable", ...details}`."""
    body: dict[str, Any] = {"op": "error"}
    if ref is not None:
        body["ref"] = ref
    body.update(error.body())
    body["recoverable"] = error.recoverable
    return server_encoder.encode(body)


def event_frame(payload: bytes) -> bytes:
    """The `event` frame for one stored event, built around its JSON without re-encoding it."""
    return EVENT_FRAME_HEAD + payload + b"}"
