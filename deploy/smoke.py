"""The runtime stage, run from the venv deploy/check.py built: the image's CMD with the image's
ENV answers /healthz and /readyz, serves every dialect the wheel declares, passes the Dockerfile's
HEALTHCHECK and compose's, closes a subscribed socket with 1001 on SIGTERM and exits 0 within
GATEWAY_SHUTDOWN_TIMEOUT_S, and logs JSON lines."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from checking import (
    IMAGE_VENV,
    ROOT,
    CheckFailed,
    expect,
    fail,
    seconds,
    settings_of,
)
from consistency import compose_gateway_image


def runtime_env(facts: dict[str, Any], work: Path) -> dict[str, str]:
    """The image's environment, /opt/venv mapped to WORK's venv; no GATEWAY_* from the host."""
    venv = str(work / IMAGE_VENV.lstrip("/"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GATEWAY_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    for key, value in facts["env"].items():
        env[key] = value.replace(IMAGE_VENV, venv)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def hs256_token(secret: str, claims: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def run_command(
    argv: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    resolved = shutil.which(argv[0], path=env["PATH"]) or argv[0]
    return subprocess.run(
        [resolved, *argv[1:]], env=env, capture_output=True, text=True, timeout=timeout + 5
    )


INSTALLED_DIALECTS = """
import json
from importlib.metadata import entry_points
eps = entry_points(group="gateway.adapters")
print(json.dumps({"all": [e.name for e in eps],
                  "served": [e.name for e in eps if not e.load()().test_only]}))
"""

WS_CLIENT = """
import asyncio, sys, aiohttp
async def main(url, token):
    headers = {"Authorization": "Bearer " + token}
    async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=headers) as ws:
        await ws.send_json({"op": "subscribe", "conversation": "*"})
        for _ in range(5):
            m = await asyncio.wait_for(ws.receive_json(), 10)
            if m.get("op") == "subscribed":
                break
        else:
            sys.exit(f"no subscribed: {m}")
        print("subscribed", flush=True)
        while True:
            m = await ws.receive()
            if m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                          aiohttp.WSMsgType.CLOSED):
                print("closed", ws.close_code, flush=True)
                return
asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 60))
"""


def check_runtime(work: Path, facts: dict[str, Any], compose: dict[str, Any]) -> None:
    venv = work / IMAGE_VENV.lstrip("/")
    env = runtime_env(facts, work)
    port = free_port()
    env["GATEWAY_PORT"] = str(port)
    env["GATEWAY_HOST"] = "127.0.0.1"  # the image listens on 0.0.0.0; here loopback will do
    # What every deployment adds to the image (the Secret, or compose's environment): the key
    # client tokens are signed with. Harmless to a gateway that does no auth.
    secret = os.urandom(32).hex()
    env["GATEWAY_JWT_SECRET"] = secret
    token = hs256_token(
        secret, {"sub": "deploy-check", "read": ["*"], "exp": int(time.time()) + 600}
    )
    auth = {"Authorization": f"Bearer {token}"}
    settings = settings_of(venv / "bin" / "python", env)
    drain = float(settings["shutdown_timeout_s"])
    base = f"http://127.0.0.1:{port}"
    rundir = work / "run"
    rundir.mkdir(exist_ok=True)
    log_path = work / "gateway.log"
    with open(log_path, "wb") as log_file:
        cmd = facts["cmd"]
        server = subprocess.Popen(
            [shutil.which(cmd[0], path=env["PATH"]) or cmd[0], *cmd[1:]],
            cwd=rundir,  # not the sources: everything must come from the venv
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    client: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 30
        pending = ["/healthz", "/readyz"]
        while pending:
            if server.poll() is not None:
                fail(
                    f"`{' '.join(cmd)}` exited ({server.returncode}) before it was ready",
                    log_path.read_text(),
                )
            expect(time.monotonic() < deadline, f"{pending} did not answer 200 within 30 s")
            try:
                if get(base + pending[0])[0] == 200:
                    pending.pop(0)
                    continue
            except OSError:
                pass
            time.sleep(0.2)

        # The installed wheel carries every dialect the project declares, and serves the ones
        # that are not test-only.
        declared = set(
            tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
                "gateway.adapters"
            ]
        )
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", INSTALLED_DIALECTS],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            fail("the venv cannot load its dialects", done.stderr)
        installed = json.loads(done.stdout)
        expect(
            set(installed["all"]) == declared,
            f"the wheel's dialects {sorted(installed['all'])} != pyproject's {sorted(declared)}",
        )
        status, body = get(base + "/v1/dialects", headers=auth)
        loaded = json.loads(body)
        names = {d["name"] for d in loaded["dialects"]}
        expect(
            status == 200 and names == set(installed["served"]) and not loaded["failed"],
            f"/v1/dialects: want {sorted(installed['served'])} loaded, none failed; got {loaded}",
        )

        # The image's HEALTHCHECK and compose's gateway healthcheck, as they are written.
        timeout = seconds(facts["healthcheck_timeout"])
        done = run_command(facts["healthcheck"], env, timeout)
        if done.returncode != 0:
            fail(
                "the Dockerfile's HEALTHCHECK failed against a healthy gateway",
                done.stdout + done.stderr,
            )
        for name, service in compose["services"].items():
            if service.get("image") == compose_gateway_image(compose):
                test = service["healthcheck"]["test"]
                argv = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
                done = run_command(argv, env, seconds(service["healthcheck"]["timeout"]))
                if done.returncode != 0:
                    fail(
                        f"compose: {name}'s healthcheck failed against a ready gateway",
                        done.stdout + done.stderr,
                    )

        # SIGTERM with a subscribed socket: closed 1001, exit 0 within the drain time.
        client = subprocess.Popen(
            [str(venv / "bin" / "python"), "-c", WS_CLIENT, f"ws://127.0.0.1:{port}/v1/ws", token],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        line = client.stdout.readline().strip()
        if line != "subscribed":
            fail(f"WebSocket client did not subscribe: {line!r}", client.communicate()[1])
        stop = getattr(signal, facts["stopsignal"])
        started = time.monotonic()
        server.send_signal(stop)
        try:
            code = server.wait(timeout=drain + 5)
        except subprocess.TimeoutExpired:
            fail(
                f"the gateway did not exit within {drain + 5:.0f} s of {facts['stopsignal']}",
                log_path.read_text(),
            )
        elapsed = time.monotonic() - started
        logs = log_path.read_text()
        expect(code == 0, f"the gateway exited {code} on {facts['stopsignal']}\n{logs}")
        expect(
            elapsed <= drain + 1.5,
            f"the gateway took {elapsed:.1f} s to exit; the drain time is {drain:.0f} s",
        )
        out, err = client.communicate(timeout=10)
        expect(
            out.strip() == "closed 1001",
            f"WebSocket on shutdown: want `closed 1001`, got {out!r} {err}",
        )

        done = run_command(facts["healthcheck"], env, timeout)
        expect(done.returncode != 0, "the HEALTHCHECK passed with no gateway running")

        bad = []
        for text in logs.splitlines():
            try:
                expect(isinstance(json.loads(text), dict), "")
            except (ValueError, CheckFailed):
                bad.append(text)
        expect(logs.strip() and not bad, f"gateway log lines that are not JSON: {bad[:5]}")
    finally:
        for process in (client, server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
