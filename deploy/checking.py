"""What deploy/check.py and its parts share: failing with a message, the image's facts, the
gateway's own settings loader, durations as the files write them."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any, NoReturn

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE_VENV = "/opt/venv"


class CheckFailed(Exception):
    pass


def fail(message: str, log: str | None = None) -> NoReturn:
    if log:
        message += "\n" + textwrap.indent(log.rstrip(), "  | ")
    raise CheckFailed(message)


def expect(ok: object, message: str) -> None:
    if not ok:
        fail(message)


def seconds(value: str | int | float) -> float:
    """`30`, `30s`, `1m30s`, `1h`, `500ms` → seconds."""
    if isinstance(value, int | float):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)?", value.strip()):
        total += float(number) * {"ms": 0.001, "h": 3600, "m": 60, "s": 1, "": 1}[unit]
    return total


def settings_of(venv_python: Path, environ: dict[str, str]) -> dict[str, Any]:
    """The gateway's own settings loader on `environ` (so its validation is the check)."""
    code = (
        "import json, sys\n"
        "from gateway.config import ConfigError, Settings, load\n"
        "try:\n"
        "    s = load(environ=json.load(sys.stdin))\n"
        "except ConfigError as exc:\n"
        "    sys.exit(f'configuration error: {exc}')\n"
        "print(json.dumps({'fields': list(Settings.__struct_fields__),"
        " **{k: getattr(s, k) for k in ('shutdown_timeout_s', 'ws_heartbeat_s', 'port',"
        " 'lease_ttl_s', 'redis_url')}}))\n"
    )
    done = subprocess.run(
        [str(venv_python), "-c", code], input=json.dumps(environ), capture_output=True, text=True
    )
    if done.returncode != 0:
        fail("gateway settings loader rejected the settings", done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def load_yaml(path: Path, every: bool = False) -> Any:
    try:
        text = path.read_text()
        return list(yaml.safe_load_all(text)) if every else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        fail(f"{path.relative_to(ROOT)}: not valid YAML", str(exc))
