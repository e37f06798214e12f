"""GMS Chat API v2 over CometD: a chat's push link (one Bayeux client) and the connector on it.

Wire (GMS "Chat API Version 2 with CometD",
https://docs.genesys.com/Documentation/GMS/latest/API/ChatAPIv2CometD, enabled on a GMS by its
`chat` section's `enable_notification_mode`; the operations and the notification's fields as
the public Java client `genesys-chat-apiv2-sdk` (`ChatAPIv2ClientImpl`, `CometConnectResponse`)
sends and reads them). Bayeux 1.0 over long polling, JSON arrays POSTed to `{gms}/genesys/cometd`
(CometD clients append the meta channel's name: `/handshake`, `/connect`, ...):

    /meta/handshake   → clientId, advice {reconnect, interval, timeout (ms a connect is held)}
    /meta/subscribe   subscription "/service/chatV2/{service}"
    publish on "/service/chatV2/{service}", data {"operation": ...}:
        requestChat           nickname | firstName+lastName, subject?, emailAddress?, userData{}
        sendMessage           message, secureKey
        startTyping/stopTyping  message?, secureKey
        disconnect            secureKey
        requestNotifications  secureKey, transcriptPosition: the chat's transcript from there,
                              pushed to this client (a new CometD client of an existing chat)
    /meta/connect     held until GMS has notifications; the reply carries them before itself:
        {"channel": "/service/chatV2/{service}", "data": <the GMS reply envelope>}

A notification's `data` is the envelope a `refresh` answers (`statusCode`, `alias`, `userId`,
`secureKey`, `chatId`, `chatEnded`, `nextPosition`, `messages`), so it is decoded by the same
`decode.SPEC` path, and a transcript index read twice (a replay after a reconnect) is one id.

One Bayeux client per chat, not one per replica: a `requestChat`'s notification carries nothing
naming the publish that asked for it (two chats requested at once on one client could not be
told apart), and GMS's docs and the public clients hold one chat per CometD session. A chat
then costs one held `/meta/connect` (the `held` pool), re-sent every advice `timeout` (30 s):
5,000 chats are ~170 connects a second where 2-s polling made 2,500 refreshes, and an answer
arrives when GMS has it, not at the next poll.

Each client keeps its own cookies (the vendor pools keep none): a CometD server knows a browser
by its `BAYEUX_BROWSER` cookie and lets one browser hold one long poll at a time, and a GMS
cluster's balancer pins a client to the node holding its clientId by cookie.

Links: a connect that fails (a dropped connection, HTTP 5xx, `402::Unknown client` after a GMS
restart) is an outage as for polling (`link` down / retrying / restored, backoff); the next
attempt handshakes a new client, subscribes and asks `requestNotifications` from `position`, so
nothing pushed meanwhile is lost and what comes twice is deduplicated by index. Commands are
publishes: a dropped one is not retried (GMS may have applied it). `send` returns the Message
of its own transcript entry, found in the notifications `inbound()` receives. A start is three
requests: the handshake, then the subscribe and the `requestChat` in one Bayeux batch, then the
first connect. A CometD server may deliver notifications on any reply, a publish's too: they
are kept in order and `inbound()` yields them with the next connect's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
import structlog

from adapters.genesys.connector import (
    GenesysConnector,
    _Answer,
    _has_ended,
    _read_reply,
    _Transient,
)
from adapters.genesys.errors import command_error
from adapters.genesys.native import GmsError, Reply
from gateway.adapter import DialectSettings, NativeRequest
from gateway.errors import GatewayError, RequestError, SessionNotFound, VendorError
from gateway.model import Content, Ended, Event, Message
from gateway.vendor_http import VendorHttp

log = structlog.get_logger(__name__)

SERVICE_PATH = "/genesys/2/chat/"
"""What a GMS chat service URL holds before its service name (`GATEWAY_GENESYS_URL`)."""
COMETD_PATH = "/genesys/cometd"
CHANNEL_PREFIX = "/service/chatV2/"
HOLD_S = 30.0
"""How long GMS holds a connect until its handshake's advice says (CometD's own default)."""


class Advice(msgspec.Struct, frozen=True, gc=False):
    reconnect: str | None = None  # "retry", "handshake" or "none"
    timeout: int | None = None  # ms
    interval: int | None = None  # ms


class Frame(msgspec.Struct, frozen=True, gc=False):
    """One Bayeux message; `data` stays raw (a notification's is a GMS reply)."""

    channel: str
    successful: bool | None = None
    clientId: str | None = None
    error: str | None = None
    advice: Advice | None = None
    data: msgspec.Raw = msgspec.Raw()  # empty when absent (Raw takes no None in a union)
    id: str | None = None


_read_frames = msgspec.json.Decoder(list[Frame]).decode
_write = msgspec.json.Encoder().encode


def endpoints(service_url: str) -> tuple[str, str]:
    """The CometD URL and the chat channel of a GMS chat service URL
    (`https://gms/genesys/2/chat/customer-support` → `https://gms/genesys/cometd`,
    `/service/chatV2/customer-support`); a prefix before `/genesys` (a proxy's) is kept."""
    gms, found, rest = service_url.rstrip("/").partition(SERVICE_PATH)
    service = rest.split("/", 1)[0]
    if not found or not service:
        raise RequestError(
            f"GATEWAY_GENESYS_URL {service_url!r} names no GMS chat service"
            f" (…{SERVICE_PATH}<service>), which the CometD transport needs"
        )
    return gms + COMETD_PATH, CHANNEL_PREFIX + service


def operation(request: NativeRequest) -> dict[str, Any]:
    """The CometD publish of an encoded GMS request (`encode.encode`'s form POSTs): the REST
    op's parameters, under the CometD operation's name."""
    form = request.form or {}
    if not request.path:  # the service itself: request a chat
        data: dict[str, Any] = {"operation": "requestChat"}
        user_data = {k[9:-1]: v for k, v in form.items() if k.startswith("userData[")}
        data.update((k, v) for k, v in form.items() if not k.startswith("userData["))
        if user_data:
            data["userData"] = user_data
        return data
    op = request.path.rsplit("/", 1)[1]
    data = {"operation": "sendMessage" if op == "send" else op, "secureKey": form["secureKey"]}
    data.update((k, form[k]) for k in ("message", "messageType") if k in form)
    return data


class Bayeux:
    """One Bayeux client session over long polling (see the module docstring)."""

    def __init__(
        self, http: VendorHttp, url: str, channel: str, headers: Mapping[str, str], timeout_s: float
    ) -> None:
        self.client_id: str | None = None
        self._http, self._url, self._channel = http, url, channel
        self._headers = {**headers, "Content-Type": "application/json;charset=UTF-8"}
        self._timeout_s = timeout_s
        self._hold_s = HOLD_S
        self._cookies: dict[str, str] = {}
        self._ids = itertools.count(1)

    async def open(self, first: Mapping[str, Any]) -> list[bytes]:
        """Handshake a new client, then subscribe it to the chat channel and publish `first`
        in one request (a Bayeux batch); the notifications its reply carries."""
        self.client_id = None
        message = {
            "channel": "/meta/handshake",
            "version": "1.0",
            "minimumVersion": "1.0",
            "supportedConnectionTypes": ["long-polling"],
        }
        reply = self._check("/meta/handshake", await self._exchange("handshake", [message]))
        if not reply.clientId:
            raise VendorError("genesys CometD: a handshake without clientId")
        if reply.advice is not None and reply.advice.timeout is not None:
            self._hold_s = reply.advice.timeout / 1000
        self.client_id = reply.clientId
        subscribe = {"channel": "/meta/subscribe", "subscription": self._channel}
        frames = await self._exchange("", [subscribe, self._publication(first)])
        self._check("/meta/subscribe", frames)
        return self._pushed(self._check(self._channel, frames), frames)

    async def publish(self, data: Mapping[str, Any]) -> list[bytes]:
        """Publish `data` on the chat channel (GMS answers in a notification); the
        notifications the reply carries (a CometD server may deliver on any reply)."""
        frames = await self._exchange("", [self._publication(data)])
        return self._pushed(self._check(self._channel, frames), frames)

    async def connect(self) -> list[bytes]:
        """Hold a connect until GMS pushes; the `data` of each chat notification, in order."""
        message = {"channel": "/meta/connect", "connectionType": "long-polling"}
        frames = await self._exchange("connect", [message], held=True)
        return self._pushed(self._check("/meta/connect", frames), frames)

    async def close(self) -> None:
        """Say goodbye (`/meta/disconnect`), so GMS drops the client now, not at its timeout."""
        if self.client_id is not None:
            with contextlib.suppress(_Transient, VendorError):
                await self._exchange("disconnect", [{"channel": "/meta/disconnect"}])
            self.client_id = None

    def _publication(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"channel": self._channel, "data": data}

    def _pushed(self, reply: Frame, frames: list[Frame]) -> list[bytes]:
        """The notifications among `frames` (not `reply`, our own message's answer)."""
        return [
            bytes(f.data)
            for f in frames
            if f is not reply and f.channel == self._channel and len(f.data)
        ]

    def _check(self, channel: str, frames: list[Frame]) -> Frame:
        """The reply to our message on `channel`; raises when it failed (a `402::Unknown
        client` or a `handshake` advice forgets the client, so the next attempt makes one)."""
        reply = next((f for f in frames if f.channel == channel and f.successful is not None), None)
        if reply is None:
            raise VendorError(f"genesys CometD: no reply to {channel}")
        if not reply.successful:
            advice = reply.advice.reconnect if reply.advice is not None else None
            if advice == "handshake" or (reply.error or "").startswith("402"):
                self.client_id = None
                raise _Transient(f"CometD {reply.error or 'handshake advised'}")
            raise VendorError(f"genesys CometD refused {channel}: {reply.error or '?'}")
        return reply

    async def _exchange(
        self, suffix: str, messages: list[dict[str, Any]], *, held: bool = False
    ) -> list[Frame]:
        for message in messages:
            if message["channel"] != "/meta/handshake":
                if self.client_id is None:
                    raise _Transient("CometD client not connected")
                message["clientId"] = self.client_id
            message["id"] = str(next(self._ids))
        url = f"{self._url}/{suffix}" if suffix else self._url
        bound = self._timeout_s + (self._hold_s if held else 0)
        pool = self._http.held if held else self._http.requests
        try:
            async with pool.post(
                url,
                data=_write(messages),
                headers=self._headers,
                cookies=self._cookies,
                timeout=aiohttp.ClientTimeout(total=bound),
            ) as response:
                status, body = response.status, await response.read()
                self._cookies.update((k, m.value) for k, m in response.cookies.items())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Transient(type(exc).__name__) from exc
        if status in (401, 403):
            raise VendorError("genesys refused the credentials (apikey)", vendor_code=status)
        if status == 404:
            raise VendorError(
                f"genesys has no CometD at {self._url} (GMS `enable_notification_mode`);"
                " GATEWAY_GENESYS_TRANSPORT=polling polls instead",
                vendor_code=status,
            )
        if status >= 500 or status == 429:
            raise _Transient(f"HTTP {status}")
        try:
            return _read_frames(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise VendorError(f"genesys CometD sent no Bayeux reply (HTTP {status})") from None


class CometdConnector(GenesysConnector):
    """One GMS chat session over CometD: the polling connector's state, decode and errors;
    notifications instead of polls, publishes instead of form POSTs."""

    def __init__(self, settings: DialectSettings, http: VendorHttp) -> None:
        super().__init__(settings, http)
        url, channel = endpoints(self._base)
        self._bayeux = Bayeux(http, url, channel, self._headers, self._link.timeout_s)
        self._attached = False  # the client is subscribed and GMS pushes this chat to it
        self._backlog: list[bytes] = []  # notifications received before `inbound()` asked
        self._echoes: asyncio.Queue[bytes] | None = None  # what `send` is watching
        self._gone = False  # GMS said the chat ended

    async def close(self) -> None:
        await super().close()
        await self._bayeux.close()

    async def _request_chat(self, request: NativeRequest) -> _Answer:
        """The `requestChat` notification (the first on this new client); a refusal or no
        answer gives the client back before raising."""
        try:
            self._received(await self._bayeux.open(operation(request)))
            async with asyncio.timeout(self._link.timeout_s):
                while not self._backlog:
                    self._received(await self._bayeux.connect())
            answer = _answer(self._backlog.pop(0))
            if answer.reply.statusCode != 0:
                raise _refusal(answer.reply)
        except (_Transient, TimeoutError):
            await self._bayeux.close()
            raise VendorError("genesys CometD sent no chat for the request") from None
        except GatewayError:
            await self._bayeux.close()
            raise
        self._attached = True
        return answer

    async def _catch_up(self) -> list[Event]:
        return []  # `inbound()` attaches and asks GMS for the transcript from `position`

    async def _refresh(self) -> list[Event]:
        """The next notifications (held until GMS has some); attaches a client first if
        none is (the first time after `resume`, and after an outage)."""
        if not self._backlog:
            try:
                if not self._attached:
                    notify = {
                        "operation": "requestNotifications",
                        "secureKey": self._state["secure_key"],
                        "transcriptPosition": str(self._state["position"]),
                    }
                    self._received(await self._bayeux.open(notify))
                    self._attached = True
                if not self._backlog:
                    self._received(await self._bayeux.connect())
            except _Transient:
                self._attached = False
                raise
        bodies, self._backlog = self._backlog, []
        events = self._activated(await self._decoded(bodies))
        self._gone = self._gone or any(isinstance(e, Ended) for e in events)
        return events

    def _received(self, bodies: list[bytes]) -> None:
        """Notifications, from whichever reply carried them: for `inbound()`, and for the
        `send` waiting for its own entry."""
        self._backlog += bodies
        if self._echoes is not None:
            for body in bodies:
                self._echoes.put_nowait(body)

    async def _decoded(self, bodies: Sequence[bytes]) -> list[Event]:
        events: list[Event] = []
        for body in bodies:
            answer = _answer(body)
            if answer.reply.statusCode == 2 and not answer.reply.chatEnded:
                refusal = _refusal(answer.reply)
                if isinstance(refusal, SessionNotFound):  # GMS no longer knows the chat
                    raise refusal
            if answer.reply.alias is not None:
                self._state["alias"] = str(answer.reply.alias)
            events += await self._decode(answer)
        return events

    async def _between_polls(self) -> None:
        return  # the next connect is the wait

    async def _final_batch(self) -> list[Event]:
        """After our own `End`: what was already pushed, then the end."""
        assert self._ended is not None
        events = await self._decoded(self._backlog)
        self._backlog = []
        if not any(isinstance(e, Ended) for e in events):
            events.append(self._ended)
        await self._bayeux.close()
        return events

    async def _perform(self, request: NativeRequest) -> None:
        if self._gone:
            raise _has_ended()
        await self._publish(operation(request))

    async def _send_message(self, request: NativeRequest, content: Content) -> Message:
        if self._gone:
            raise _has_ended()
        async with self._send_lock:  # one at a time, so each finds its own transcript entry
            self._echoes = asyncio.Queue()
            try:
                await self._publish(operation(request))
                async with asyncio.timeout(self._link.timeout_s):
                    found = None
                    while found is None:
                        body = await self._echoes.get()
                        reply = _answer(body).reply
                        if reply.statusCode != 0:
                            raise _has_ended() if reply.chatEnded else _refusal(reply)
                        found = await self._own_entry(body, content)
            except TimeoutError:
                raise VendorError(
                    "genesys accepted the message but it never reached the transcript"
                ) from None
            finally:
                self._echoes = None
            index, message = found
            self._state["claimed"] = index
            return message

    async def _publish(self, data: Mapping[str, Any]) -> None:
        """A command: published once (a dropped publish may have been applied)."""
        try:
            self._received(await self._bayeux.publish(data))
        except _Transient as exc:
            raise VendorError(f"genesys did not answer: {exc.reason}") from None


def _refusal(reply: Reply) -> GatewayError:
    """The error of a notification that refuses an operation (statusCode 1 or 2)."""
    first = reply.errors[0] if reply.errors else GmsError(code=52)
    return command_error(first.code, first.advice)


def _answer(body: bytes) -> _Answer:
    try:
        return _Answer(_read_reply(body), body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise VendorError("genesys pushed a notification that is no GMS reply") from None
