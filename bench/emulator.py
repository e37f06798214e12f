"""`python -m bench.emulator DIALECT --out FILE`: a dialect's platform emulator, its own process.

The emulator is the one `gateway serve --demo` runs (its `demo_wiring()`), with its scripted
agent at `--pace`. Once it listens, FILE gets `{"settings": {url, options…}, "scripted_delay_s"}`:
the connector settings that point a gateway at it, and how long its agent takes from a user's
message to the answer (`echo: <text>`). It runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import HOST, raise_fd_limit

SCRIPTED_DELAY: dict[str, Callable[[Any], float]] = {
    "genesys": lambda e: float(e.reply_delay),
    "server_events": lambda e: 2 * float(e.agent_delay),  # read + typing, then the answer
    "signalwire": lambda e: float(e.reply_delay),
    "visitor_widget": lambda e: float(e.typing_delay) + float(e.reply_delay),
    "wonderful": lambda e: float(e.reply_delay),
}
"""From a user's message to the agent's answer, as each emulator's script paces it."""
OPTIONS: dict[str, dict[str, str]] = {
    # The demo polls GMS every 0.5 s for a lively console; a deployment keeps the connector's
    # default (2 s), and so does the bench (it counts with `transport` polling; the default,
    # CometD, holds a connect instead).
    "genesys": {"poll_interval_s": "2"},
}


async def serve(dialect: str, out: Path, pace: float) -> None:
    from gateway import heap
    from gateway.demo import Demo

    demo = Demo([dialect], pace=pace, host=HOST)
    await demo.start()
    if dialect not in demo.emulators:
        raise SystemExit(f"no emulator for {dialect}: {demo.failed.get(dialect, 'unknown')}")
    table = {**demo.tables()[dialect], **OPTIONS.get(dialect, {})}
    delay = SCRIPTED_DELAY[dialect](demo.emulators[dialect])
    heap.install()  # the gateway's collector policy: 5,000 chats pause an emulator alike
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"settings": table, "scripted_delay_s": delay}))
    tmp.rename(out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await demo.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator")
    parser.add_argument("dialect", choices=sorted(SCRIPTED_DELAY))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--pace", type=float, default=1.0)
    args = parser.parse_args(argv)
    raise_fd_limit()
    from gateway.logging import configure

    configure("json", "warning", redact=True)
    asyncio.run(serve(args.dialect, args.out, args.pace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
