"""The live console at `/`: a small static page (no build step, no network) on the public API.

`setup_console(app)` adds:

- `GET /` → `static/index.html`, and `GET /static/{file}` → the page's assets (shipped in the
  package: `gateway/web/static/`);
- `POST /v1/dialects/{dialect}/decode[?conversation=]` → `200 {"events": [...], "ignored": n}`:
  the canonical events a native body decodes to, WITHOUT publishing them (the console's decode
  panel). Errors are ingest's: `400 MALFORMED_JSON`, `404 UNKNOWN_DIALECT`, `413
  PAYLOAD_TOO_LARGE`, `422 INVALID_FRAME` (with `index` and `path`).

Everything else the page does goes through `GET /v1/dialects` and the unified WebSocket.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.web.ingest import decode as decode_body
from gateway.web.ingest import read_body
from gateway.web.keys import REGISTRY
from gateway.web.responses import json_response

STATIC = Path(__file__).with_name("static")

_NO_STORE = {"Cache-Control": "no-cache"}
_SECURITY = {
    # Only our own assets; API calls and the WebSocket go to this same origin. Images and links
    # in messages may point anywhere (they are the platform's files).
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' http: https: data:; "
        "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={**_NO_STORE, **_SECURITY})


async def decode(request: web.Request) -> web.Response:
    """`POST /v1/dialects/{dialect}/decode`: a native body → its canonical events, unpublished."""
    dialect = request.match_info["dialect"]
    adapter = request.app[REGISTRY].get(dialect)
    body = await read_body(request)
    decoded = await decode_body(
        request.app, adapter, body, request.query.get("conversation") or None
    )
    return json_response({"events": decoded.events, "ignored": decoded.ignored})


def setup_console(app: web.Application) -> None:
    """Serve the console at `/` and its decode endpoint (call it from `create_app`)."""
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, append_version=False)
    app.router.add_post("/v1/dialects/{dialect}/decode", decode)
