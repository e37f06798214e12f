"""Replicated Redis topologies for the tests, on loopback and free ports, stopped at the end:
a primary, its replica and three sentinels (`SentinelSet`); a 3-primary cluster with a replica
each (`ClusterSet`)."""

from __future__ import annotations

import functools
import random
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


def cluster_port() -> int:
    """A free port at most 55535 whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port <= 55535 and free_bus(port + 10000):
            return port
        with socket.socket() as sock:  # the kernel's pick was too high: try one of ours
            candidate = random.randrange(20000, 55536)
            if sock.connect_ex(("127.0.0.1", candidate)) != 0 and free_bus(candidate + 10000):
                return candidate


def free_bus(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_node(*extra: str, tls: Tls | None = None) -> RedisServer:
    """A started cluster-enabled node (on another port if another process took its pick),
    speaking TLS only (to clients and on the cluster bus) when `tls` is given."""
    for _ in range(5):
        node = RedisServer(
            "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
            "--cluster-replica-validity-factor", "0", *extra,
        )  # fmt: skip
        node.port = cluster_port()
        node.url = f"redis://127.0.0.1:{node.port}/0"
        if tls is not None:
            node.extra += ["--port", "0", "--tls-port", str(node.port), "--tls-cluster", "yes"]
            node.extra += tls.server_args()
        try:
            return node.start()
        except RuntimeError:
            node.close()
    raise RuntimeError("no free port pair for a cluster node")


class ClusterSet:
    """Three primaries with a replica each (`redis-cli --cluster create … --cluster-replicas 1`),
    on loopback; a node notices a peer down after a second (`cluster-node-timeout`). Also one
    primary serving every slot (`primaries=1, replicas=0`: `--cluster create` wants three), and
    without persistence (`persist=False`, for the benchmarks)."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        persist: bool = True,
        password: str = "",
        tls: bool = False,
    ) -> None:
        self.nodes: list[RedisServer] = []
        self.replicas = replicas
        self.password = password
        self.tls = Tls() if tls else None
        self._cmd = functools.partial(command, password=password, tls=self.tls)
        extra = () if persist else ("--appendonly", "no")
        if password:
            extra += ("--requirepass", password, "--masterauth", password)
        try:
            for _ in range(primaries * (1 + replicas)):
                self.nodes.append(_cluster_node(*extra, tls=self.tls))
            if primaries == 1 and replicas == 0:
                port = self.nodes[0].port
                assert self._cmd(port, "CLUSTER", "ADDSLOTSRANGE", "0", "16383") == "OK"
            else:
                create = ["redis-cli", "--cluster", "create"]
                create += [f"127.0.0.1:{n.port}" for n in self.nodes]
                create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
                create += ["--no-auth-warning", "-a", password] if password else []
                create += ["--tls", "--cacert", str(self.tls.ca)] if self.tls else []
                subprocess.run(create, check=True, capture_output=True, timeout=60)
            wait_until(self._settled, "the cluster to settle", timeout=60)
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        """The gateway's `redis+cluster://` URL, two nodes as seeds."""
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])
        if self.tls is not None:
            return f"rediss+cluster://{auth}{hosts}?ssl_ca_certs={self.tls.ca}"
        return f"redis+cluster://{auth}{hosts}"

    def _settled(self) -> bool:
        for node in self.nodes:
            if node.process is None:
                continue
            if "cluster_state:ok" not in self._cmd(node.port, "CLUSTER", "INFO"):
                return False
        running = len([n for n in self.nodes if n.process])
        return len(self.primaries()) * (1 + self.replicas) == running

    def roles(self) -> dict[int, str]:
        """Port → `master` or `slave`, for every running node, as the node itself says."""
        return {
            n.port: self._cmd(n.port, "ROLE").splitlines()[0]
            for n in self.nodes
            if n.process is not None
        }

    def primaries(self) -> list[int]:
        return sorted(port for port, role in self.roles().items() if role == "master")

    def owner(self, slot: int) -> int:
        """The port of the primary serving `slot` (asked of a running node)."""
        port = self.serving(slot)
        if port is None:
            raise LookupError(f"no primary serves slot {slot}")
        return port

    def serving(self, slot: int) -> int | None:
        """The port of the primary serving `slot`, None while none does."""
        running = next(n for n in self.nodes if n.process is not None)
        for line in self._cmd(running.port, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
        return None

    def replica_of(self, primary: int) -> int:
        """The port of a replica of the primary on port `primary`."""
        for node in self.nodes:
            if node.process is None or node.port == primary:
                continue
            info = self._cmd(node.port, "INFO", "replication")
            if f"master_port:{primary}" in info:
                return node.port
        raise LookupError(f"no replica of {primary}")

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def node_id(self, port: int) -> str:
        return self._cmd(port, "CLUSTER", "MYID")

    def failover(self, slot: int) -> int:
        """Promote the replica of `slot`'s primary (`CLUSTER FAILOVER` on it: the primary hands
        over once the replica caught up) and wait until the cluster agrees; its port."""
        old = self.owner(slot)
        replica = self.replica_of(old)
        assert self._cmd(replica, "CLUSTER", "FAILOVER") == "OK"
        wait_until(lambda: self.serving(slot) == replica and self._settled(), "the failover")
        return replica

    def wait_promoted(self, slot: int, dead: int) -> int:
        """After `dead` (the primary of `slot`) was killed: wait until its replica serves the
        slot and every running node says the cluster is ok; the new primary's port."""
        wait_until(
            lambda: (
                self.serving(slot) not in (None, dead)
                and all(
                    "cluster_state:ok" in self._cmd(n.port, "CLUSTER", "INFO")
                    for n in self.nodes
                    if n.process is not None
                )
            ),
            "a replica to take over the dead primary's slots",
            timeout=30,
        )
        return self.owner(slot)

    def migrate(self, slot: int, to: int) -> None:
        """Move `slot` and its keys to the primary on port `to`, as `redis-cli --cluster
        reshard` does: IMPORTING/MIGRATING, MIGRATE the keys, then SETSLOT NODE everywhere."""
        source = self.owner(slot)
        source_id, target_id = self.node_id(source), self.node_id(to)
        assert self._cmd(to, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id) == "OK"
        assert self._cmd(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id) == "OK"
        while keys := self._cmd(source, "CLUSTER", "GETKEYSINSLOT", str(slot), "100").split():
            moved = self._cmd(
                source, "MIGRATE", "127.0.0.1", str(to), "", "0", "5000", "KEYS", *keys
            )
            assert moved in ("OK", "NOKEY"), moved
        for port in (to, source):
            assert self._cmd(port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id) == "OK"
        wait_until(lambda: self.serving(slot) == to, "the slot to move")

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        if self.tls is not None:
            self.tls.close()
