"""`GET /v1/schema`: the JSON Schema of the canonical model and of every WebSocket frame.

The model's part (`event`, `command`) comes from `gateway.model.json_schema`; this module adds the
unified WebSocket's frames (`client_frame`, `server_frame`), so that a client library can generate
its types from one document (`clients/typescript/scripts/generate-types.mjs` does). The error frame
is a plain dict on the wire (`protocol.error_frame`); `ErrorFrame` describes it here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.model import Event, json_schema
from gateway.sessions.replies import Ack, PlatformHistory, Recovered, Started
from gateway.web import protocol


class EventFrame(protocol._Op, tag="event", kw_only=True):
    """One canonical event of a subscription (stored events in seq order, per conversation)."""

    event: Event


class ErrorFrame(protocol._Op, tag="error", kw_only=True):
    """A refused frame or a failed command (`ref` names it). `recoverable`: retrying the same
    thing later may succeed. Details that some codes add: `path` (JSON path of a bad field),
    `index`, `limit`, `retry_after_s`."""

    code: str
    message: str
    recoverable: bool
    path: str | None = None
    index: int | None = None
    limit: int | None = None
    retry_after_s: float | None = None


SERVER_FRAMES: tuple[type[msgspec.Struct], ...] = (
    protocol.Welcome,
    protocol.Subscribed,
    protocol.Unsubscribed,
    EventFrame,
    protocol.HistoryReply,
    PlatformHistory,
    Started,
    Recovered,
    Ack,
    ErrorFrame,
    protocol.Pong,
)
"""Every frame the gateway sends (two answer `history`: the log's and the platform's)."""


def full_schema() -> dict[str, Any]:
    """The model's schema with `client_frame` and `server_frame` added to its properties, and
    `Event` (the union of every event) among its definitions."""
    schema = json_schema()
    (client, *servers), components = msgspec.json.schema_components(
        [protocol.ClientFrame, *SERVER_FRAMES], ref_template="#/$defs/{name}"
    )
    model_defs = schema["$defs"]
    for name, component in components.items():
        if name in model_defs and model_defs[name] != component:
            raise RuntimeError(f"schema component {name!r} names two different types")
        model_defs[name] = component
    # The frames that carry stored events hold them raw (`msgspec.Raw`: any JSON); they are
    # canonical events, so say so through one named union.
    model_defs["Event"] = schema["properties"]["event"]
    for component in model_defs.values():
        events = component.get("properties", {}).get("events")
        if events is not None and events.get("items") == {}:
            events["items"] = {"$ref": "#/$defs/Event"}
    schema["$defs"] = dict(sorted(model_defs.items()))
    schema["properties"]["client_frame"] = client
    schema["properties"]["server_frame"] = {"anyOf": servers}
    return schema
