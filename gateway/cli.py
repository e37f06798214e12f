"""The `gateway` command: `serve` runs the gateway, `decode` translates native frames offline."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import IO

import msgspec
import structlog

from gateway import __version__, tracing
from gateway.adapter import Decoded, Registry
from gateway.config import ConfigError, Settings, describe, installed_dialects, load
from gateway.errors import GatewayError, MalformedJSON
from gateway.model import event_encoder


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the gateway (memory engine unless --redis-url)",
        description="Run the gateway. Settings come from defaults, then --config FILE, then "
        "GATEWAY_* environment variables, then these flags.",
        epilog=describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to listen on (GATEWAY_HOST, default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (GATEWAY_PORT, default 8080)")
    serve.add_argument("--redis-url", help="redis://… to share the hub (GATEWAY_REDIS_URL)")
    serve.add_argument("--config", help="TOML settings file")
    serve.add_argument("--dialects", help="comma-separated dialects to load (default: all)")
    serve.add_argument("--log-format", choices=["auto", "json", "console"])
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="run every dialect against its in-process emulator (docs/console.md)",
    )

    decode = commands.add_parser(
        "decode", help="native frames (JSON or JSONL) → canonical events (JSONL), offline"
    )
    decode.add_argument("--dialect", required=True, choices=installed_dialects())
    decode.add_argument(
        "--conversation",
        help="native conversation id, for dialects whose "
        "frames do not carry it (like ingest's ?conversation=)",
    )
    decode.add_argument(
        "file",
        nargs="?",
        type=argparse.FileType("rb"),
        default=sys.stdin.buffer,
        help="input file (default: standard input)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "decode":
        return decode(args.dialect, args.file, sys.stdout.buffer, sys.stderr, args.conversation)
    return serve(args)


async def _collector_policy(app: object) -> None:
    """An `on_startup` hook of a serving process: `gateway.heap.install()` (not for tests,
    which make and drop apps: what is frozen is never walked again)."""
    from gateway import heap

    heap.install()


def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.logging import configure
    from gateway.web.app import create_app

    dialects = [d.strip() for d in args.dialects.split(",")] if args.dialects else None
    try:
        settings = load(
            args.config,
            overrides={
                "host": args.host,
                "port": args.port,
                "redis_url": args.redis_url,
                "dialects": dialects,
                "log_format": args.log_format,
                "log_level": args.log_level,
                "demo": args.demo,
            },
        )
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    configure(settings.log_format, settings.log_level, redact=settings.log_redact)
    _file_descriptors(settings.max_sessions)
    registry = Registry.load(settings.dialects)
    try:
        settings.check_dialects([adapter.name for adapter in registry])
        tracing.configure()
        app = create_app(settings, registry)
        # The collector's policy once every resource started: that heap is frozen first.
        app.on_startup.append(_collector_policy)
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            access_log=None,
            print=None,
            shutdown_timeout=settings.shutdown_timeout_s,
        )
    except ConfigError as exc:  # found at start: an identity provider's JWKS, say
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:  # e.g. the store is unreachable at start: said in one line
        structlog.get_logger("gateway.cli").error(
            "gateway.start_failed", code=exc.code, error=exc.message
        )
        return 1
    except Exception:
        structlog.get_logger("gateway.cli").exception("gateway.crashed")
        return 1
    finally:
        tracing.shutdown()  # the spans still buffered are exported
    return 0


FD_HEADROOM = 1024
"""File descriptors beyond one per vendor session: client sockets, Redis, idle pooled
connections, files."""


def _file_descriptors(max_sessions: int) -> None:
    """Raise the soft limit on open files to the hard one (as Go's runtime does: the soft
    limit of 1024 is a relic of select()), and warn when it cannot hold `max_sessions`
    vendor sessions (about one descriptor each) plus headroom: set `ulimit -n` higher."""
    import resource

    import structlog

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    wanted = max_sessions + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < wanted:
        structlog.get_logger(__name__).warning(
            "capacity.fd_limit_low",
            open_files=soft,
            wanted=wanted,
            hint="raise `ulimit -n` (docs/scaling.md) or lower GATEWAY_MAX_SESSIONS",
        )


def decode(
    dialect: str,
    source: IO[bytes],
    out: IO[bytes],
    err: IO[str],
    conversation: str | None = None,
    settings: Settings | None = None,
) -> int:
    """Decode a JSON body, or JSONL (one body a line), into canonical JSONL on `out`.

    Errors are the ingest error body on `err` (with `line` for JSONL) and exit status 1.
    """
    registry = Registry.load([dialect] if settings is None else settings.dialects)
    try:
        adapter = registry.get(dialect)
        data = source.read()
        try:
            bodies: list[tuple[int | None, Decoded]] = [
                (None, adapter.decode(data, conversation=conversation))
            ]
        except MalformedJSON:
            lines = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
            if len(lines) < 2:
                raise
            bodies = []
            for number, line in lines:
                try:
                    bodies.append((number, adapter.decode(line, conversation=conversation)))
                except GatewayError as exc:
                    exc.details["line"] = number
                    raise
    except GatewayError as exc:
        err.write(msgspec.json.encode({"error": exc.body()}).decode() + "\n")
        return 1
    for _, decoded in bodies:
        for event in decoded.events:
            out.write(event_encoder.encode(event) + b"\n")
    out.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
