"""How many vendor sessions one replica owns and starts: the limits that remain, explicit.

- At most `max_sessions` owned (or being started) at once. Past it a start, or a takeover, is
  refused at once with `CAPACITY` (recoverable: another replica may have room); it never
  waits for room. The load is in `/metrics` (`gateway_sessions_owned`, `_max`, `_load`,
  `_refused_total`) for a balancer or an autoscaler to act on.
- At most `max_starting` starts (and takeovers) run at once; the others wait their turn. Each
  has its deadline (`command_timeout_s`), turn included: one that passes it is answered with
  `TIMEOUT`, never left hanging.
- A start whose platform is still creating the session at its deadline keeps its place until
  that create has finished and what it made is ended (`late`): the platform runs it meanwhile,
  so it counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

from gateway.errors import AtCapacity, DeadlineExceeded
from gateway.metrics import Sample


class Admission:
    """The admission of one replica's starts. `owned()` counts the sessions it runs."""

    def __init__(self, max_sessions: int, max_starting: int, owned: Callable[[], int]) -> None:
        self.max_sessions = max_sessions
        self.max_starting = max_starting
        self._owned = owned
        self.starting = 0
        """Admitted and not yet owned (waiting for a turn, or opening)."""
        self.late = 0
        """Answered `TIMEOUT` while the platform was creating the session: being ended."""
        self.refused = {"capacity": 0, "timeout": 0}
        self._turns = asyncio.Semaphore(max_starting)

    def load(self) -> int:
        """Sessions owned, being started, or being ended late: what `max_sessions` bounds."""
        return self._owned() + self.starting + self.late

    @contextlib.asynccontextmanager
    async def admit(self, deadline: float, what: str = "start") -> AsyncIterator[None]:
        """Hold a place and a turn for one start until the block ends (by then the session
        is owned, or it failed). Raises `AtCapacity` at once when there is no place, and
        `DeadlineExceeded` when the block has not finished by `deadline` (the loop's clock):
        the block is cancelled then, so it must clean up what it made."""
        if self.load() >= self.max_sessions:
            self.refused["capacity"] += 1
            raise AtCapacity(
                f"this replica owns {self.max_sessions} vendor sessions, its most "
                "(max_sessions): retry, another replica may have room",
                limit=self.max_sessions,
            )
        self.starting += 1
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout, self._turns:
                yield
        except TimeoutError:
            if not timeout.expired():
                raise  # the block's own, not the deadline's
            self.refused["timeout"] += 1
            raise DeadlineExceeded(
                f"the {what} did not finish within its deadline (command_timeout_s); "
                "nothing was kept: retry"
            ) from None
        finally:
            self.starting -= 1

    @contextlib.contextmanager
    def late_place(self) -> Iterator[None]:
        """Hold a place for a start past its deadline whose platform is still creating the
        session, until the block has ended what that made."""
        self.late += 1
        try:
            yield
        finally:
            self.late -= 1

    def samples(self) -> list[Sample]:
        return [  # the owned sessions themselves: `gateway_sessions_owned` (web.telemetry)
            Sample(
                "sessions_max",
                self.max_sessions,
                help="The most vendor sessions this replica may own (max_sessions).",
            ),
            Sample(
                "sessions_load",
                self.load() / self.max_sessions,
                help="Owned, starting and late-ending sessions over max_sessions: at 1 starts "
                "are refused.",
            ),
            Sample(
                "sessions_starting",
                self.starting,
                help="Starts and takeovers admitted and not finished (waiting or opening).",
            ),
            *(
                Sample(
                    "sessions_refused_total",
                    count,
                    (("reason", reason),),
                    kind="counter",
                    help="Starts and takeovers refused: capacity (CAPACITY, at max_sessions) "
                    "or timeout (TIMEOUT, past command_timeout_s).",
                )
                for reason, count in sorted(self.refused.items())
            ),
        ]
