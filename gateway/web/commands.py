"""The HTTP form of the session commands (the same commands as on the WebSocket).

    POST /v1/conversations                       start     → 201 started
    POST /v1/conversations/{id}/messages         send      → 200 ack
    POST /v1/conversations/{id}/typing           typing    → 200 ack
    POST /v1/conversations/{id}/read             read      → 200 ack
    POST /v1/conversations/{id}/end              end       → 200 ack
    POST /v1/conversations/{id}/forward          forward   → 200 ack
    POST /v1/conversations/{id}/recover          recover   → 200 recovered
    GET  /v1/conversations/{id}/history?cursor=&limit=
                                                 the platform's own history → 200 history

The body holds the command's fields (without `op` and `conversation`, which the route gives).
A `ref` is the token subject's own: another client's equal ref is another command.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gateway import tracing
from gateway.codec import loads, path_of
from gateway.errors import NotFound, RequestError
from gateway.model import Command, FetchHistory, Start
from gateway.sessions import Reply
from gateway.web.ingest import check_media_type
from gateway.web.keys import GRANT, SESSIONS
from gateway.web.responses import json_response

_OPS = {
    "messages": "send",
    "typing": "typing",
    "read": "read",
    "end": "end",
    "forward": "forward",
    "recover": "recover",
}


async def _body(request: web.Request) -> dict[str, Any]:
    check_media_type(request)
    raw = await request.read()
    data = loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object", path="$")
    return data


def _command(fields: dict[str, Any]) -> Command:
    try:
        command: Command = msgspec.convert(fields, Command)
        return command
    except msgspec.ValidationError as exc:
        raise RequestError(str(exc), path=path_of(exc)) from None


async def start(request: web.Request) -> web.Response:
    fields = await _body(request)
    fields["op"] = "start"
    command = _command(fields)
    assert isinstance(command, Start)
    request[GRANT].check_command("start", dialect=command.dialect)
    (reply,) = await _execute(request, command)
    return json_response(reply, status=201)


async def command(request: web.Request) -> web.Response:
    op = _OPS.get(request.match_info["command"])
    if op is None:
        raise NotFound(
            f"no command {request.match_info['command']!r}; known: {', '.join(sorted(_OPS))}"
        )
    fields = await _body(request)
    fields.update(op=op, conversation=request.match_info["conversation"])
    request[GRANT].check_command(op, conversation=request.match_info["conversation"])
    (reply,) = await _execute(request, _command(fields))
    return json_response(reply)


async def platform_history(request: web.Request) -> web.Response:
    """A page of the platform's own history (the WebSocket's `history` with `source:
    "platform"`); reading it needs read access to the conversation, as the log does."""
    conversation = request.match_info["conversation"]
    request[GRANT].check_read(conversation)
    query = request.query
    limit = query.get("limit", "50")
    if not (limit.isascii() and limit.isdigit()):
        raise RequestError(f"`limit` must be an integer, got {limit!r}", path="query.limit")
    fetch = FetchHistory(
        conversation=conversation, cursor=query.get("cursor") or None, limit=int(limit)
    )
    (reply,) = await _execute(request, fetch)
    return json_response(reply)


async def _execute(request: web.Request, command: Command) -> list[Reply]:
    """Carry the command out, in a span that continues the caller's trace (`traceparent`)."""
    with tracing.span(
        f"command {command.__struct_config__.tag}",
        kind="server",
        carrier=request.headers,
        attributes=tracing.command_attributes(command),
    ):
        return await request.app[SESSIONS].execute(command, request[GRANT].subject)
