"""What replicas send each other for a forwarded command: the command, carrying the trace
context of the hop in its `traceparent` field (a replica that does not trace ignores it), and
the owner's answer:

{"replies": [<reply>]}                                       carried out
{"error": {"code", "message", ...}, "status", "recoverable"} refused, kept as it was
"""

from __future__ import annotations

import msgspec

from gateway import tracing
from gateway.errors import GatewayError
from gateway.model import Command
from gateway.sessions.replies import Reply
from gateway.sessions.store import ForwardedError

_encoder = msgspec.json.Encoder()


class _Answer(msgspec.Struct, omit_defaults=True):
    replies: list[Reply] | None = None
    error: dict[str, object] | None = None
    status: int = 500
    recoverable: bool = False


_decoder = msgspec.json.Decoder(_Answer)


def traced(command: Command) -> Command:
    """`command` with the current span as its `traceparent` (unchanged when not tracing)."""
    parent = tracing.carrier().get("traceparent")
    return msgspec.structs.replace(command, traceparent=parent) if parent else command


def replies(answer: list[Reply]) -> bytes:
    return _encoder.encode(_Answer(replies=answer))


def refusal(error: GatewayError) -> bytes:
    return _encoder.encode(
        _Answer(error=error.body(), status=error.status, recoverable=error.recoverable)
    )


def failure(exc: Exception) -> bytes:
    """An unexpected failure on the owner: recoverable, named, without its details."""
    return _encoder.encode(
        _Answer(error={"code": "INTERNAL", "message": type(exc).__name__}, recoverable=True)
    )


def unpack(answer: bytes) -> Reply:
    """The reply in `answer`, or the owner's refusal raised as a `ForwardedError`."""
    decoded = _decoder.decode(answer)
    if decoded.error is not None or not decoded.replies:
        raise ForwardedError(decoded.error or {}, decoded.status, decoded.recoverable)
    return decoded.replies[0]
