"""Where a stream of `server_events` frames stands: the stand-in for the time of a frame without
one, in its derived id (`decode.py`; the connector keeps one `Untimed` per session)."""

from __future__ import annotations

import msgspec

from adapters.server_events import native as n
from gateway.decoding import Scope


class Untimed:
    """Where a stream of server events stands, for the ids of frames without a timestamp.

    Such a frame's derived id must not depend on when it was received (a re-posted body must
    deduplicate), nor collide with an equal frame that legitimately comes again (the agent
    types twice). So it is placed after the last message the stream carried (its `msg_id`:
    messages, files and located messages, which poll and history both return) and counted
    among the equal frames since then: `~<msg_id>#<n>`. The connector keeps one per session
    for its polls, and replaces it with the one a full history decode ends with.
    """

    __slots__ = ("_after", "_counts")

    def __init__(self) -> None:
        self._after = ""
        self._counts: dict[bytes, int] = {}

    def place(self, frame: n.ServerEvent) -> str:
        """The stand-in for the time of untimed `frame` (and count it)."""
        key = _frame_key.encode(frame)
        seen = self._counts.get(key, 0)
        self._counts[key] = seen + 1
        return f"~{self._after}#{seen}"

    def anchor(self, msg_id: n.NativeId | None) -> None:
        """A message with `msg_id` went by: later untimed frames count from there."""
        if msg_id is not None and str(msg_id) != self._after:
            self._after = str(msg_id)
            self._counts.clear()


_frame_key = msgspec.json.Encoder()


def stream_of(scope: Scope) -> Untimed:
    """Where the stream stands: the connector's (`options["untimed"]`, across its polls), or
    one of this body's own (a webhook body decodes alone: the stream starts with the body).
    Found once per body, by the first frame that needs it, and kept in the body's state."""
    if scope.state is None:
        given = scope.options.get("untimed")
        scope.state = {"untimed": given if isinstance(given, Untimed) else Untimed()}
    stream: Untimed = scope.state["untimed"]
    return stream
