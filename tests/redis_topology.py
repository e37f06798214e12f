"""Replicated Redis topologies for the tests, on loopback and free ports, stopped at the end:
a primary, its replica and three sentinels (`SentinelSet`); a 3-primary cluster with a replica
each (`ClusterSet`, in `tests/redis_cluster.py`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.redis_server import RedisServer, free_port

MASTER = "gwprimary"


class Tls:
    """A throwaway CA and a certificate it signed for 127.0.0.1 (openssl)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gw-tls-"))
        self.ca, self.cert, self.key = (self.dir / n for n in ("ca.pem", "cert.pem", "key.pem"))
        ca_key = self.dir / "ca.key"

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.dir)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=gw-test-ca", "-keyout", str(ca_key), "-out", str(self.ca))  # fmt: skip
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                "-keyout", str(self.key), "-out", "server.csr")  # fmt: skip
        (self.dir / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", str(self.ca), "-CAkey", str(ca_key),
                "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", str(self.cert))  # fmt: skip

    def server_args(self) -> list[str]:
        """Options that make a data node or a sentinel speak TLS to its peers."""
        return ["--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
                "--tls-ca-cert-file", str(self.ca), "--tls-replication", "yes",
                "--tls-auth-clients", "no"]  # fmt: skip

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _tls_node(tls: Tls | None, *args: str) -> RedisServer:
    """A data node, listening with TLS only (on its port) when `tls` is given."""
    server = RedisServer(*args)
    if tls is not None:
        server.extra += ["--port", "0", "--tls-port", str(server.port), *tls.server_args()]
    return server.start()


def command(
    port: int, *args: str, password: str = "", tls: Tls | None = None, timeout: float = 2.0
) -> str:
    """One command's reply (`redis-cli`'s rendering) from the server on `port`."""
    auth = ["--no-auth-warning", "-a", password] if password else []
    secure = ["--tls", "--cacert", str(tls.ca)] if tls is not None else []
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *auth, *secure, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout.strip()


def wait_until(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Sentinel:
    """One `redis-server --sentinel` process watching `MASTER`."""

    def __init__(
        self, primary_port: int, password: str = "", own_password: str = "", tls: Tls | None = None
    ) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gw-sentinel-"))
        (self.dir / "sentinel.conf").write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.dir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
            + (f"sentinel auth-pass {MASTER} {password}\n" if password else "")
            + (f"requirepass {own_password}\n" if own_password else "")
            + f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 4000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
            + ("".join(f"{k[2:]} {v}\n" for k, v in _pairs(tls.server_args())) if tls else "")
        )
        self.process = subprocess.Popen(
            [
                "redis-server",
                str(self.dir / "sentinel.conf"),
                "--sentinel",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    return list(zip(args[::2], args[1::2], strict=True))


class SentinelSet:
    """A primary, one replica and three sentinels that agree on them; with `password`, the data
    nodes require it, and with `sentinel_password`, the sentinels require theirs."""

    def __init__(self, password: str = "", sentinel_password: str = "", tls: bool = False) -> None:
        self.password = password
        self.sentinel_password = sentinel_password
        self.tls = Tls() if tls else None
        auth = ("--requirepass", password, "--masterauth", password) if password else ()
        self.primary = _tls_node(self.tls, *auth)
        self.replica = _tls_node(
            self.tls,
            "--replicaof",
            "127.0.0.1",
            str(self.primary.port),
            "--replica-read-only",
            "yes",
            *auth,
        )
        self.sentinels = [
            Sentinel(self.primary.port, password, sentinel_password, self.tls) for _ in range(3)
        ]
        wait_until(self._settled, "the sentinels to see the replica and each other")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        auth = f":{self.password}@" if self.password else ""
        options = [f"sentinel_password={self.sentinel_password}"] if self.sentinel_password else []
        if self.tls is not None:
            options.append(f"ssl_ca_certs={self.tls.ca}")
        query = "?" + "&".join(options) if options else ""
        scheme = "rediss+sentinel" if self.tls is not None else "redis+sentinel"
        return f"{scheme}://{auth}{hosts}/{MASTER}/0{query}"

    def _settled(self) -> bool:
        replication = command(
            self.replica.port, "INFO", "replication", password=self.password, tls=self.tls
        )
        if "master_link_status:up" not in replication:
            return False
        for sentinel in self.sentinels:
            info = command(
                sentinel.port, "SENTINEL", "MASTER", MASTER, password=self.sentinel_password
            )
            fields = info.splitlines()
            values = dict(zip(fields[::2], fields[1::2], strict=False))
            if values.get("num-slaves") != "1" or values.get("num-other-sentinels") != "2":
                return False
        return True

    def primary_port(self) -> int:
        reply = command(
            self.sentinels[0].port,
            "SENTINEL",
            "GET-MASTER-ADDR-BY-NAME",
            MASTER,
            password=self.sentinel_password,
        )
        return int(reply.splitlines()[1])

    def failover(self) -> None:
        """Promote the replica (`SENTINEL FAILOVER`: no vote needed) and wait until every
        sentinel names it."""
        old = self.primary_port()
        sentinel_auth = self.sentinel_password
        assert (
            command(self.sentinels[0].port, "SENTINEL", "FAILOVER", MASTER, password=sentinel_auth)
            == "OK"
        )
        wait_until(
            lambda: all(
                command(
                    s.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER, password=sentinel_auth
                ).endswith(
                    str(self.replica.port if old == self.primary.port else self.primary.port)
                )
                for s in self.sentinels
            ),
            "the sentinels to switch to the new primary",
        )

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        self.replica.close()
        self.primary.close()
        if self.tls is not None:
            self.tls.close()


def reachable(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
