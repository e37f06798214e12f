"""The cyclic garbage collector's policy for a process that holds thousands of sessions.

CPython (3.11) finds reference cycles in three generations. A full collection (the oldest
generation) walks every tracked container object in the process, and runs whenever what was
promoted into the oldest generation since the last one reaches a quarter of it. A replica
owning thousands of vendor sessions holds over half a million such objects (each session's
connector, tasks, buffers, its HTTP or WebSocket client state), and the churn of held polls,
CometD connects and Engine.IO pings (objects that live seconds: long enough to be promoted)
sets a full collection off every few seconds. Each walked the whole heap with the event loop
stopped, about half a second of CPU at 3,000 to 5,000 sessions (docs/scaling.md, "Measured"),
and every reply in flight waited for it. A platform emulator with 5,000 chats paused alike.

The policy, `install()`, one per process (`gateway serve`, and the bench's emulator process):

- What survives a full collection is moved out of the collector's walk (`gc.freeze()`, the
  permanent generation), and so is the start-up heap (modules, codec tables, the app). The next
  full collection walks only what came since, not the hundreds of thousands before. A frozen
  object is still freed by reference counting when it is dropped; only a frozen *cycle* waits.
- So that those cycles do not pile up, once the frozen heap has doubled since the last
  complete collection (counted at most every `CHECK_S`), one complete collection (unfreeze,
  collect, freeze) runs on the event loop, and not below `FLOOR`: not while a replica fills
  up with live sessions, and in steady state as rarely as its cyclic garbage accumulates
  (13-17 objects a second at 1,000 sessions: hours), logged as `heap.complete_collection`.

The generations' thresholds stay CPython's defaults: frequent young collections are cheap, only
the walk over the old heap was the cost.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import structlog

log = structlog.get_logger(__name__)

GROWTH = 2.0
"""A complete collection runs once the frozen heap is this many times what it was after the
last one."""
FLOOR = 1_000_000
"""Below this many frozen objects no complete collection runs: a replica's live heap holds
400,000-500,000 objects at 3,000-4,000 sessions, and a complete collection while it fills up
would mostly find it alive (measured: one at 1,000 sessions freed 10 objects of 206,000, in
a 0.3 s-of-CPU pause). The cyclic garbage that may wait is bounded by it: about what 5,000
sessions hold alive."""
CHECK_S = 30.0
"""How often, at most, the frozen heap is counted: counting walks it (tens of ms for 500,000
objects), so not at every full collection."""


class _Policy:
    """The state `install()` keeps: the frozen heap's size after the last complete collection,
    and when it is counted next."""

    def __init__(self, floor: int = FLOOR, check_s: float = CHECK_S) -> None:
        self.floor = floor
        self.check_s = check_s
        self.base = 0
        self.next_check = 0.0
        self.scheduled = False

    def after_collection(self, phase: str, info: dict[str, Any]) -> None:
        """A `gc.callbacks` hook: freeze the survivors of each full collection (the young
        generations are empty then), and now and then have the frozen heap counted."""
        if phase != "stop" or info["generation"] != 2:
            return
        gc.freeze()
        now = time.monotonic()
        if self.scheduled or now < self.next_check:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a collection in another thread: the loop's next one will do
            return
        self.next_check = now + self.check_s
        self.scheduled = True
        # Not from here: the collector does not run again inside its own callback.
        loop.call_soon(self.check)

    def check(self) -> None:
        """A complete collection, if the frozen heap has grown enough since the last one
        (`scheduled` until it is done: its own collection schedules no other)."""
        if gc.get_freeze_count() >= max(self.floor, GROWTH * self.base):
            self.complete()
        self.scheduled = False

    def complete(self) -> None:
        """Collect the whole heap, the frozen part included, then freeze what is alive."""
        frozen = gc.get_freeze_count()
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        self.base = gc.get_freeze_count()
        log.info(
            "heap.complete_collection",
            frozen_before=frozen,
            alive=self.base,
            freed=freed,
            pause_ms=round((time.perf_counter() - started) * 1000, 1),
        )


_policy: _Policy | None = None


def install() -> None:
    """Apply the policy to this process (idempotent): call it once start-up is done, with the
    modules imported and the app built, so that heap is frozen first."""
    global _policy
    if _policy is None:
        _policy = _Policy()
        gc.callbacks.append(_policy.after_collection)
    gc.collect()
    gc.freeze()
    _policy.base = gc.get_freeze_count()
