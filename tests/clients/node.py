"""The TypeScript SDK's toolchain for the tests: `npm ci` from its lock (once per lock), `tsc`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "clients" / "typescript"
CONSOLE_SDK = ROOT / "gateway" / "web" / "static" / "sdk"


def node_missing() -> str | None:
    """Why the SDK's tests cannot run here, or None (a fresh machine has Node.js 20 and npm)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (the SDK's tests need Node.js 20 and npm)"
    return None


def run(*args: str | Path, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    """Run a command in the SDK's folder; its output, or AssertionError with the output."""
    done = subprocess.run(
        [str(a) for a in args],
        cwd=SDK,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(map(str, args))} exited {done.returncode}:\n{output}"
    return output


def install() -> None:
    """`npm ci` when node_modules was not installed from this very lock (a stamp says so)."""
    lock = hashlib.sha256((SDK / "package-lock.json").read_bytes()).hexdigest()[:16]
    stamp = SDK / "node_modules" / f".installed-{lock}"
    if not stamp.exists():
        run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
        stamp.touch()


def tsc(*args: str | Path) -> str:
    return run(SDK / "node_modules" / ".bin" / "tsc", *args)
