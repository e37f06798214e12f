"""`gateway serve` as a real child process, for multi-replica tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.redis_server import free_port


class GatewayProcess:
    """One replica: `gateway serve` on a free port with the given environment."""

    def __init__(
        self,
        redis_url: str,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        namespace: str = "gw",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_LOG_FORMAT": "json",
            "GATEWAY_DIALECTS": "loopback",
            "GATEWAY_AUTH": "none",
            "GATEWAY_REDIS_NAMESPACE": namespace,
            **(env or {}),
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> GatewayProcess:
        if self.log_path is not None:
            with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "gateway.cli", "serve"],
                    env=self.env,
                    stdout=log,
                    stderr=log,
                )
        else:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=0.5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("gateway did not become ready")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def terminate(self, timeout: float = 15) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout)


def gateway_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`gateway ARGS…` run to its end, with `env` added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **(env or {})},
    )


def refused_start(env: dict[str, str], *args: str) -> str:
    """The one line `gateway serve` prints when `env` stops its start (exit status 2)."""
    done = gateway_cli("serve", *args, env=env)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    return line
