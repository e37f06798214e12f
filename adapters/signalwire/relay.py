"""The Relay link: SignalWire's JSON-RPC 2.0 WebSocket, where it is and how a client joins it.

Hosts, as the SDK (`signalwire/signalwire-js`) derives them from the token: the JWT's header
may carry `ch`, the host of the space's Relay (`jwtDecode(token, {header: true}).ch`, v3
`packages/js/src/JWTSession.ts` and `fabric/HTTPClient.ts`, v4 `clients/SignalWire.ts`).

- Relay: `wss://<ch>`; without one, `wss://relay.signalwire.com` (v3 `core/utils/constants.ts`
  `DEFAULT_HOST`). The socket has no path.
- REST: `https://fabric.<ch without its first label>` (v3 `HTTPClient.httpHost`, v4
  `DependencyContainer.apiHost`); without one, `https://fabric.signalwire.com`.

Our settings override both: `url` (`GATEWAY_SIGNALWIRE_URL`) is the REST base and the option
`relay_url` the socket (v3 `JWTSession` too lets its `host` option win over `ch`); a configured
`relay_url` also stands in for `ch` when the REST host is derived, as the SDK's `host` does.

Joining: the first request is `signalwire.connect` with `authentication.jwt_token`. The platform
then sends `signalwire.authorization.state` events, whose opaque `authorization_state` the client
keeps; a reconnect sends the token again (it classifies the session even when expired), that
state, and the `protocol` the last connect returned, so the platform resumes the session and
redelivers the events not acknowledged (v4 `ClientSessionManager.authenticate`, v3
`BaseJWTSession.authenticate`). A reconnect refused for its state (`errors.STALE_STATE_CODES`)
drops state and protocol and connects afresh, as the SDK does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
from typing import Any, NamedTuple

import aiohttp
import jwt
import msgspec
import structlog
from yarl import URL

from adapters.signalwire.errors import STALE_STATE_CODES, UNREACHABLE, connect_refusal
from adapters.signalwire.native import RpcResponse
from gateway.errors import RequestError, VendorError

log = structlog.get_logger(__name__)

DEFAULT_RELAY = "wss://relay.signalwire.com"
DEFAULT_REST = "https://fabric.signalwire.com"
CONNECT_VERSION = {"major": 4, "minor": 0, "revision": 0}

_json = msgspec.json.Encoder()
_response = msgspec.json.Decoder(RpcResponse)


class Hosts(NamedTuple):
    rest: str
    """The REST base URL (no trailing slash)."""
    relay: str
    """The Relay WebSocket URL."""


def hosts(token: str, url: str | None = None, relay_url: str | None = None) -> Hosts:
    """Where the REST API and the Relay socket are, for `token` and the configured overrides
    (see the module doc). Raises `RequestError` (`NOT_CONFIGURED`) for a configured relay
    whose host has no domain to derive the REST host from (an address, `localhost`) when
    `url` is not configured: the token must not go to a host we guessed."""
    channel = _channel(token)
    if relay_url:
        relay, host = relay_url, URL(relay_url).host
    elif channel:
        relay, host = f"wss://{channel}", channel
    else:
        relay, host = DEFAULT_RELAY, None
    if url:
        return Hosts(rest=url.rstrip("/"), relay=relay)
    if host is None:
        return Hosts(rest=DEFAULT_REST, relay=relay)
    if "." not in host or _is_address(host):
        raise RequestError(
            f"signalwire relay {host!r} names no domain: set GATEWAY_SIGNALWIRE_URL",
            code="NOT_CONFIGURED",
        )
    return Hosts(rest=f"https://fabric.{host.split('.', 1)[1]}", relay=relay)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _channel(token: str) -> str | None:
    """The `ch` of a JWT's header (the SDK reads it unverified, as we do), else None."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    channel = header.get("ch")
    return channel if isinstance(channel, str) and channel else None


class LinkLost(Exception):
    """The WebSocket closed or failed; the reader reconnects."""


class Relay:
    """One client session on the Relay socket: the socket while it is up, and what resumes the
    session across sockets (`protocol`, `authorization_state`). A replica holds one per
    subscriber, shared by its conversations (`link.py`)."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        token: str,
        *,
        timeout_s: float,
        heartbeat_s: float,
    ) -> None:
        self.url = url
        self._http = http
        self._token = token
        self._timeout = timeout_s
        self._heartbeat = heartbeat_s
        self.protocol: str | None = None
        self.authorization_state: str | None = None
        self.identity: str | None = None  # the subscriber the platform says we are
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.backlog: list[str] = []  # frames that came before the connect response
        self._ids = itertools.count(1)

    async def connect(self) -> None:
        """Open the socket and join with `signalwire.connect` (resuming the session when there
        is one to resume). Raises `VendorError`: unreachable, or refused."""
        resuming = self.protocol is not None and self.authorization_state is not None
        try:
            await self._connect()
        except VendorError as exc:
            if not resuming or exc.details.get("vendor_code") not in STALE_STATE_CODES:
                raise
            log.info("relay.resume_refused", vendor_code=exc.details.get("vendor_code"))
            self.protocol = self.authorization_state = None
            await self._connect()

    async def _connect(self) -> None:
        self.backlog.clear()  # frames of a socket that is gone: the platform redelivers them
        try:
            ws = await self._http.ws_connect(
                self.url, timeout=aiohttp.ClientWSTimeout(ws_close=2), heartbeat=self._heartbeat
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise VendorError(f"signalwire relay unreachable: {exc}", code=UNREACHABLE) from exc
        try:
            params: dict[str, Any] = {
                "version": CONNECT_VERSION,
                "authentication": {"jwt_token": self._token},
                "event_acks": True,
            }
            if self.protocol:
                params["protocol"] = self.protocol
                if self.authorization_state:
                    params["authorization_state"] = self.authorization_state
            rid = f"c{next(self._ids)}"
            call = {"jsonrpc": "2.0", "id": rid, "method": "signalwire.connect", "params": params}
            await ws.send_str(_json.encode(call).decode())
            reply = await self._reply_to(ws, rid)
            if reply.error is not None:
                raise connect_refusal(reply.error)
            result = reply.result if isinstance(reply.result, dict) else {}
            self.protocol = result.get("protocol") or self.protocol
            self.identity = result.get("identity") or self.identity
        except BaseException:
            await ws.close()
            raise
        self.ws = ws

    async def _reply_to(self, ws: aiohttp.ClientWebSocketResponse, rid: str) -> RpcResponse:
        """Wait for the response to request `rid`; frames before it are kept for the reader.
        A platform that does not answer within `timeout_s` is unreachable (`VendorError`)."""
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise VendorError(
                            "signalwire closed the socket on connect", code=UNREACHABLE
                        )
                    try:
                        reply = _response.decode(msg.data)
                    except msgspec.DecodeError:
                        reply = None
                    if reply is not None and reply.method is None and reply.id == rid:
                        return reply
                    self.backlog.append(msg.data)
        except TimeoutError:
            raise VendorError(
                f"signalwire did not answer signalwire.connect within {self._timeout}s",
                code=UNREACHABLE,
            ) from None

    async def receive(self) -> str:
        """The next text frame: the backlog first, then the socket. Raises `LinkLost`."""
        if self.backlog:
            return self.backlog.pop(0)
        ws = self.ws
        if ws is None:
            raise LinkLost("no socket")
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                return str(msg.data)
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                raise LinkLost("socket closed")
            if msg.type == aiohttp.WSMsgType.ERROR:
                raise LinkLost(f"socket error: {ws.exception()}")

    async def answer(self, request_id: Any) -> None:
        """Acknowledge a request of the platform (every one gets an empty result)."""
        ws = self.ws
        if ws is None:
            raise LinkLost("no socket")
        try:
            ack = {"jsonrpc": "2.0", "id": request_id, "result": {}}
            await ws.send_str(_json.encode(ack).decode())
        except ConnectionError as exc:
            raise LinkLost(f"ack failed: {exc}") from None

    async def drop(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            await ws.close()
