"""A private `redis-server` for the tests: a free port, a temp dir, stopped at the end.

`GATEWAY_TEST_REDIS_URL` points the suite at an existing server instead (tests then use keys
of their own, and never flush or stop it).
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process we own. `stop()`/`start()` restart it on the same port with its
    data (append-only file, fsync always), as a crash-and-restart of the store would."""

    def __init__(self, *extra: str) -> None:
        self.extra = list(extra)  # more redis-server options (`--replicaof`, `--cluster-enabled`)
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed (CI installs it: see .ci/run)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gw-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "no",
                "--loglevel",
                "warning",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with self._connect() as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):  # up (with auth)
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
        if "--tls-port" not in self.extra:
            return sock
        context = ssl.create_default_context()  # up is up: the certificate is not checked
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            return context.wrap_socket(sock)
        except OSError:
            sock.close()
            raise

    def kill(self) -> None:
        """Stop it abruptly (SIGKILL), as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def lose_data(self) -> None:
        """Kill it and start it again empty, as a restart without persistence (or a failover
        to a replica that had not caught up) leaves it."""
        self.kill()
        for path in self.dir.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def external_url() -> str | None:
    return os.environ.get("GATEWAY_TEST_REDIS_URL") or None
