"""One Relay socket per subscriber on a replica, shared by all its conversations.

The platform delivers a subscriber's events, of all its conversations, to the socket its
client session holds: conversations are joined over REST and nothing on the socket subscribes
to one (the v4 SDK keeps one client session per client and filters its `signalingEvent$` by
event type, `ConversationsManager`; v3's `chat.subscribe` with `channels` belongs to the older
Chat API, not to Call Fabric conversations). A socket per conversation therefore receives every
other conversation's events as well: N sockets carry N² events (issue 24, `docs/scaling.md`).

So a replica keeps one `RelayLink` per subscriber (relay URL and token) for each dialect's pools
(`RelayLinks.of`), used by every conversation of that subscriber it owns:

- The link reads the socket, acknowledges every request of the platform once, keeps the
  `authorization_state` and routes each `signalwire.event` by the conversation it names
  (`conversation_id`, else `group_id` of its `params.params`) to the session attached for it
  (`Member.deliver`). An event for a conversation no session here holds (another replica's, or
  one whose join answer has not come back yet: the platform pushes the greeting while the join
  is answered) waits, bounded by count and age, for a session that attaches for it.
- It is reference-counted: the first `acquire` connects it (concurrent ones wait for that one
  connect and share its outcome), each session `release`s it once, and the last release closes
  the socket.
- It reconnects once for all its sessions, on the session options' `LinkOptions` (those of the
  session that opened it: a dialect's sessions share their options), resuming its own
  `protocol` and `authorization_state` (`relay.Relay`), and tells each session `down`,
  `retrying`, `restored` or, when it gives up, `lost` (`Change`); each session then backfills
  its own conversation from REST.

A session's snapshot does not carry the link's `protocol`: the link is the replica's, shared,
and a session taken over elsewhere joins that replica's link (resuming the old protocol there
would take the socket from the old replica's other sessions); the history backfill brings what
it missed between owners.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec
import structlog

from adapters.signalwire.decode import EVENT_METHOD
from adapters.signalwire.errors import UNREACHABLE
from adapters.signalwire.native import AUTHORIZATION_STATE, AuthorizationState
from adapters.signalwire.relay import LinkLost, Relay
from gateway.errors import VendorError
from gateway.reconnect import LinkOptions
from gateway.vendor_http import VendorHttp

log = structlog.get_logger(__name__)

UNCLAIMED_CONVERSATIONS = 1000
"""Conversations whose events wait for a session to attach, at most (the oldest go first)."""
UNCLAIMED_EVENTS = 50
"""Events kept for one such conversation, at most (a start's greeting needs one)."""
UNCLAIMED_S = 30.0
"""How long an event waits for its session: longer than any join takes to be answered."""

_head = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class Change:
    """What happened to the link, told to each of its sessions."""

    state: Literal["down", "retrying", "restored", "lost"]
    reason: str | None = None
    attempt: int | None = None


class Member(Protocol):
    """A session on the link: handed the frames of its conversation, and the link's changes,
    in the order the link saw them. `deliver` must not block (it queues)."""

    def deliver(self, item: str | Change) -> None: ...


class RelayLink:
    """One subscriber's Relay socket on this replica, and the sessions routed from it."""

    def __init__(self, relay: Relay, policy: LinkOptions, forget: Callable[[], None]) -> None:
        self.relay = relay
        self._policy = policy
        self._forget = forget  # takes the link out of its registry
        self._members: dict[str, list[Member]] = {}
        self._users = 0
        self._unclaimed: OrderedDict[str, list[tuple[float, str]]] = OrderedDict()
        self._up = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._dropping: asyncio.Task[None] | None = None

    @property
    def identity(self) -> str | None:
        """The subscriber the platform says we are (the connect answer's `identity`)."""
        return self.relay.identity

    def use(self) -> None:
        """One more session uses the link (it `release`s it once)."""
        self._users += 1

    async def ready(self) -> None:
        """Return once the socket is up: the first caller connects it; a link that is
        reconnecting is waited for, `timeout_s` at most. Raises `VendorError`."""
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        await asyncio.shield(self._connecting)
        if self._up.is_set():
            return
        try:
            async with asyncio.timeout(self._policy.timeout_s):
                await self._up.wait()
        except TimeoutError:
            raise VendorError("signalwire relay is reconnecting", code=UNREACHABLE) from None

    async def _connect(self) -> None:
        try:
            await self.relay.connect()
        except BaseException:
            self._close_now()
            raise
        self._up.set()
        self._reader = asyncio.get_running_loop().create_task(self._run())
        log.info("relay.opened", url=self.relay.url)

    def attach(self, conversation: str, member: Member) -> None:
        """Route `conversation`'s events to `member`, first those that came before it. Two
        sessions of one conversation both get them, as they would on sockets of their own
        (a start that joins a conversation already live here, for the moment it lives)."""
        members = self._members.setdefault(conversation, [])
        if member not in members:
            members.append(member)
        self._expire()
        for _, frame in self._unclaimed.pop(conversation, ()):
            member.deliver(frame)

    def detach(self, conversation: str, member: Member) -> None:
        members = self._members.get(conversation, [])
        if member in members:
            members.remove(member)
        if not members:
            self._members.pop(conversation, None)

    def release(self) -> None:
        """One session lets go of the link; the last one closes it."""
        self._users -= 1
        if self._users <= 0:
            self._close_now()

    def _close_now(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._up.clear()
        self._forget()
        for task in (self._connecting, self._reader):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self._reader is None or self._reader is asyncio.current_task():
            # no reader to drop the socket on its way out
            self._dropping = asyncio.get_running_loop().create_task(self.relay.drop())
        log.info("relay.closed", url=self.relay.url)

    # -- the reader -----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                try:
                    await self._on_frame(await self.relay.receive())
                except LinkLost as exc:
                    await self.relay.drop()
                    if not await self._recover(str(exc)):
                        return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must end the sessions loudly, not hang them
            log.exception("relay.failed", url=self.relay.url)
            self._tell(Change("lost", reason=f"signalwire link failed: {exc}"))
        finally:
            with contextlib.suppress(Exception):
                await self.relay.drop()
            self._close_now()

    async def _on_frame(self, data: str) -> None:
        try:
            head = _head.decode(data)
        except msgspec.DecodeError:
            log.warning("relay.bad_frame", url=self.relay.url)
            return
        if "method" not in head:
            return  # a response to one of ours
        await self.relay.answer(head.get("id"))  # every request, once, before we look inside
        if head["method"] != EVENT_METHOD:
            log.debug("relay.request", method=head["method"])
            return
        params = head.get("params")
        if not isinstance(params, dict):
            log.warning("relay.unroutable", reason="no params")
            return
        if params.get("event_type") == AUTHORIZATION_STATE:
            self._keep_authorization_state(params.get("params"))
            return
        conversation = _conversation(params.get("params"))
        if conversation is None:
            log.warning("relay.unroutable", event_type=str(params.get("event_type"))[:64])
            return
        members = self._members.get(conversation)
        if not members:
            self._hold(conversation, data)
        for member in members or ():
            member.deliver(data)

    def _keep_authorization_state(self, params: Any) -> None:
        try:
            state = msgspec.convert(params, AuthorizationState)
        except msgspec.ValidationError as exc:
            log.warning("relay.bad_authorization_state", error=str(exc))
            return
        self.relay.authorization_state = state.authorization_state

    def _hold(self, conversation: str, frame: str) -> None:
        """Keep an event of a conversation no session holds here, for one that may attach."""
        self._expire()
        held = self._unclaimed.get(conversation)
        if held is None:
            held = self._unclaimed[conversation] = []
            if len(self._unclaimed) > UNCLAIMED_CONVERSATIONS:
                self._unclaimed.popitem(last=False)
        if len(held) < UNCLAIMED_EVENTS:
            held.append((time.monotonic(), frame))

    def _expire(self) -> None:
        horizon = time.monotonic() - UNCLAIMED_S
        while self._unclaimed:
            first = next(iter(self._unclaimed.values()))
            if first and first[0][0] >= horizon:
                break
            self._unclaimed.popitem(last=False)

    async def _recover(self, reason: str) -> bool:
        """Reconnect on the link policy, once for every session; False when giving up."""
        self._up.clear()
        log.info("relay.lost", url=self.relay.url, reason=reason, conversations=len(self._members))
        self._tell(Change("down", reason=reason))
        attempt = 0
        while not self._policy.gives_up(attempt := attempt + 1):
            self._tell(Change("retrying", attempt=attempt))
            await asyncio.sleep(self._policy.delay(attempt))
            try:
                await self.relay.connect()
            except VendorError as exc:
                await self.relay.drop()
                if not exc.recoverable:  # refused auth: the same token is refused again
                    return self._give_up(exc.message)
                log.debug("relay.retry_failed", attempt=attempt, error=exc.message)
                continue
            self._up.set()
            log.info("relay.reconnected", url=self.relay.url, conversations=len(self._members))
            self._tell(Change("restored"))
            return True
        return self._give_up(f"no link after {self._policy.max_attempts} attempts")

    def _give_up(self, reason: str) -> bool:
        log.warning("relay.gave_up", url=self.relay.url, reason=reason)
        self._tell(Change("lost", reason=reason))
        return False

    def _tell(self, change: Change) -> None:
        for members in list(self._members.values()):
            for member in list(members):
                member.deliver(change)


def _conversation(body: Any) -> str | None:
    """The conversation an event's body names (as `decode.conversation` finds it)."""
    if not isinstance(body, dict):
        return None
    found = body.get("conversation_id") or body.get("group_id")
    return found if isinstance(found, str) and found else None


class RelayLinks:
    """A dialect's links, one per (relay URL, token), for the life of its pools."""

    KEY = "signalwire.relay_links"

    def __init__(self) -> None:
        self._links: dict[tuple[str, str], RelayLink] = {}

    @classmethod
    def of(cls, http: VendorHttp) -> RelayLinks:
        """The links kept with `http` (one dialect's pools), made at first use."""
        found = http.shared.get(cls.KEY)
        if not isinstance(found, RelayLinks):
            found = http.shared[cls.KEY] = RelayLinks()
        return found

    async def acquire(
        self, http: VendorHttp, url: str, token: str, policy: LinkOptions
    ) -> RelayLink:
        """The subscriber's link, up; the caller must `release` it once. Raises `VendorError`
        (unreachable, refused): every caller waiting on the same connect gets its error."""
        key = (url, token)
        link = self._links.get(key)
        if link is None:

            def forget() -> None:
                if self._links.get(key) is link:
                    del self._links[key]

            relay = Relay(  # the socket is held for the link's life
                http.held, url, token, timeout_s=policy.timeout_s, heartbeat_s=policy.heartbeat_s
            )
            link = self._links[key] = RelayLink(relay, policy, forget)
        link.use()
        try:
            await link.ready()
        except BaseException:
            link.release()
            raise
        return link

    def __len__(self) -> int:
        return len(self._links)
