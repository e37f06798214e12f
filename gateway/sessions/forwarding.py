"""Commands one replica forwards to a session's owner, and the answers it sends back. The
command carries the trace context of the hop in its `traceparent` field (a replica that does not
trace ignores it).

{"command": <command>, "client": <sub>}                      the request (a bare command: an
                                                             older replica's, sent by nobody)
{"replies": [<reply>]}                                       carried out
{"error": {"code", "message", ...}, "status", "recoverable"} refused, kept as it was
"""

from __future__ import annotations

import msgspec

from gateway import tracing
from gateway.errors import GatewayError
from gateway.model import Command, command_decoder
from gateway.sessions.replies import Reply
from gateway.sessions.store import ForwardedError

_encoder = msgspec.json.Encoder()


class _Answer(msgspec.Struct, omit_defaults=True):
    replies: list[Reply] | None = None
    error: dict[str, object] | None = None
    status: int = 500
    recoverable: bool = False


_decoder = msgspec.json.Decoder(_Answer)


class _Request(msgspec.Struct):
    command: Command
    client: str = ""


_request_decoder = msgspec.json.Decoder(_Request)


def traced(command: Command) -> Command:
    """`command` with the current span as its `traceparent` (unchanged when not tracing)."""
    parent = tracing.carrier().get("traceparent")
    return msgspec.structs.replace(command, traceparent=parent) if parent else command


def request(command: Command, client: str) -> bytes:
    """The forwarded form of `command` sent by `client` (its refs are that client's)."""
    return _encoder.encode(_Request(command, client))


def command_of(body: bytes) -> tuple[Command, str]:
    """The command of a forwarded request and who sent it."""
    try:
        decoded = _request_decoder.decode(body)
    except msgspec.ValidationError:
        return command_decoder.decode(body), ""
    return decoded.command, decoded.client


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
