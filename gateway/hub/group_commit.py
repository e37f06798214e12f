"""Group commit: the commands of concurrent callers go to Redis together, as one pipeline.

Under concurrent webhooks many hub calls are in flight at once. Sent one by one, each pays the
client library's whole per-command path, its own send and Redis's work for one more socket
read. `GroupCommit` gathers what callers hand it while a batch is out, sends it as one
non-transactional pipeline and gives each caller its own replies. One batch is in flight at a
time: a caller that finds none out sends its own at once, from its own task (no timer, no
loop turn, as a caller alone did before batching; one command alone goes as a command, not a
pipeline); callers that come while one is out go together in the next, sent as soon as its
replies are in. This is the classic group commit
(a log's first writer flushes, those behind it gather for the next flush), and the "smart
batching" of Centrifugo's Redis engine (centrifugal.dev, "Improving Centrifugo
Redis Engine throughput…", 2022-12-20: one pipeline worker per Redis, draining the commands
waiting for it into each round trip).

What a batch does not change: Redis runs each command on its own (a pipeline is not a
transaction), so each script stays one atomic call, and commands run in the order they were
handed over, across callers too. A command's error is its caller's alone; an error of the
link (no connection, a reset, a timeout) is every caller's of that batch.

A caller may ask for its writes to be confirmed, naming the keys it wrote (the hub's
conversations); the batch then ends with what `confirm` queues for all of its callers' keys
together (the hub's `WAIT` on each primary written to): `WAIT` blocks "until all the previous
write commands" of its connection are acknowledged (redis.io/commands/wait), so one confirms
every caller's writes on that connection.

The client is anything with redis-py's `pipeline(transaction=False)`: a `Redis` (the pool's
bound holds: a batch takes one connection) or a `RedisCluster`, whose pipeline routes each
command to its node (a `WAIT` there confirms the writes of the one node it is sent to).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

Command = Sequence[Any]
"""A command's name and arguments, as `execute_command` takes them: ("EVALSHA", sha, 5, …)."""

Confirm = Callable[[Any, Collection[str]], int]
"""Queues on a batch's pipeline what confirms the writes to the given keys; returns how many
replies it queued."""


class _Pipeline(Protocol):
    def execute_command(self, *args: Any) -> Any: ...

    async def execute(self, raise_on_error: bool = True) -> list[Any]: ...


class _Client(Protocol):
    def pipeline(self, transaction: bool = ...) -> Any: ...

    async def execute_command(self, *args: Any) -> Any: ...


class _Caller:
    __slots__ = ("commands", "confirm", "replies")

    def __init__(
        self,
        commands: Sequence[Command],
        confirm: Collection[str],
        replies: asyncio.Future[list[Any]],
    ):
        self.commands = commands
        self.confirm = confirm
        self.replies = replies


class GroupCommit:
    """Sends the commands of callers that wait at the same time to `client` as one pipeline."""

    def __init__(self, client: _Client, *, confirm: Confirm | None = None) -> None:
        self.client = client
        self.confirm = confirm
        self.batches = 0
        """Pipelines sent (each one round trip)."""
        self._waiting: list[_Caller] = []
        self._sending = False
        """A batch is out (a caller's own, or the writer's): callers wait for the next."""
        self._writer: asyncio.Task[None] | None = None

    async def execute(
        self, commands: Sequence[Command], *, confirm: Collection[str] = ()
    ) -> list[Any]:
        """The replies to `commands`, in order, then (`confirm`: the keys they write) those to
        what the `confirm` function queued at the end of their batch. Raises the first error
        among these replies (a `ResponseError`, as `pipeline.execute()` does, or any error a
        Cluster's pipeline put in a reply's place; the other callers' are theirs), or the
        batch's `RedisError` when the link failed: then any command of it may or may not have
        run."""
        if self._sending:  # goes in the next batch, once this one is answered
            replies: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            self._waiting.append(_Caller(commands, confirm, replies))
            return await replies
        self._sending = True  # no batch is out: this caller's goes now, and alone
        try:
            return await self._alone(commands, confirm)
        finally:
            self._sending = False
            if self._waiting:  # those who came meanwhile go together, as soon as possible
                self._writer = asyncio.create_task(self._write())
                self._sending = True

    async def _alone(self, commands: Sequence[Command], confirm: Collection[str]) -> list[Any]:
        """A caller's batch when it is the only one: one command with nothing to confirm
        goes as that command (a pipeline of one costs the client's pipeline on top of it, and
        its reply or error is the same), anything else as a pipeline."""
        if len(commands) == 1 and not (confirm and self.confirm is not None):
            self.batches += 1
            return [await self.client.execute_command(*commands[0])]
        caller = _Caller(commands, confirm, asyncio.get_running_loop().create_future())
        await self._send([caller])
        return caller.replies.result()

    async def close(self) -> None:
        """Wait until what was handed over to the writer has been sent and answered (a caller
        that sent its own batch waits for it in its own task)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        batch: list[_Caller] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                live = [c for c in batch if not c.replies.done()]  # a cancelled caller: not sent
                if live:
                    await self._send(live)
        except BaseException as exc:  # cancelled (the loop is closing), or a fault here:
            for caller in batch + self._waiting:  # no caller waits for a batch never sent
                if caller.replies.done():
                    continue
                if isinstance(exc, Exception):
                    caller.replies.set_exception(exc)
                else:
                    caller.replies.cancel()
            self._waiting = []
            raise
        finally:
            self._writer = None
            self._sending = False

    async def _send(self, batch: list[_Caller]) -> None:
        pipe: _Pipeline = self.client.pipeline(transaction=False)
        for caller in batch:
            for command in caller.commands:
                pipe.execute_command(*command)
        keys = {key for caller in batch for key in caller.confirm}
        confirms = self.confirm(pipe, keys) if keys and self.confirm is not None else 0
        self.batches += 1
        try:
            replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for caller in batch:
                if not caller.replies.done():
                    caller.replies.set_exception(exc)
            return
        tail = replies[len(replies) - confirms :]
        start = 0
        for caller in batch:
            end = start + len(caller.commands)
            own = replies[start:end] + tail if caller.confirm else replies[start:end]
            start = end
            if caller.replies.done():
                continue
            # a script's `ResponseError`, or what a Cluster's pipeline puts in a reply's place
            # when it could not route it (`ClusterError` mid-migration): the caller's error
            error = next((r for r in own if isinstance(r, Exception)), None)
            if error is not None:
                caller.replies.set_exception(error)
            else:
                caller.replies.set_result(own)
