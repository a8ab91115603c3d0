"""A throwaway ``redis-server`` for tests and benchmarks: free port, no persistence, temp dir.

    with RedisServer() as server:
        store = store_from_url(server.url)
        ...
        server.restart()     # same port, empty data (nothing is persisted)

``find_redis_server()`` finds the binary (``$REDIS_SERVER``, the PATH, ``/usr/bin``, ``/usr/local/bin``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class RedisServerNotFound(RuntimeError):
    """No ``redis-server`` binary on this machine."""


def find_redis_server() -> str | None:
    """Path of a ``redis-server`` binary, or None."""
    candidates = [os.environ.get("REDIS_SERVER"), shutil.which("redis-server"), "/usr/bin/redis-server", "/usr/local/bin/redis-server"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


CLUSTER_BUS_OFFSET = 10000
"""A Redis Cluster node also listens on its cluster bus port, PORT + 10000."""


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(below: int | None = None, cluster_bus: bool = False) -> int:
    """A TCP port that was free on loopback a moment ago (``below``: smaller than this).

    ``cluster_bus=True``: for a Redis Cluster node, whose bus listens on PORT + 10000 — that port must be
    free too (and the node port is then below 55536 so that the bus port exists)."""
    import random

    if cluster_bus:
        below = min(below or 55536, 65536 - CLUSTER_BUS_OFFSET)
    for _ in range(200):
        port = 0 if below is None else random.randint(20000, below - 1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = sock.getsockname()[1]
            if cluster_bus and not _bindable(port + CLUSTER_BUS_OFFSET):
                continue
            return port
    raise RuntimeError("no free TCP port found")


class RedisServer:
    """One ``redis-server`` child process on ``127.0.0.1:port`` (``--save "" --appendonly no``)."""

    def __init__(self, port: int | None = None, binary: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        found = binary or find_redis_server()
        if not found:
            raise RedisServerNotFound("redis-server not found: install it (apt-get install redis-server) or set $REDIS_SERVER")
        self.binary = found
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self._dir = tempfile.mkdtemp(prefix="router-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (if stopped) and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self._dir, "--daemonize", "no", "--loglevel", "warning", *self.extra_args]
        log = open(Path(self._dir) / "redis.log", "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.log_tail()}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within 10 s: {self.log_tail()}")

    def ping(self) -> bool:
        """True when the server answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def log_tail(self) -> str:
        try:
            return (Path(self._dir) / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port (data is lost: nothing is persisted)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its temp dir."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RedisClusterServers:
    """A throwaway Redis Cluster on loopback: ``nodes`` primaries (3) and ``replicas`` replicas per primary
    (0); ``.url`` is ``redis+cluster://`` with every primary as a seed node. ``servers`` lists the primaries
    then the replicas; ``replicas_of[i]`` are the replicas of ``primaries[i]``."""

    def __init__(self, nodes: int = 3, binary: str | None = None, replicas: int = 0, node_timeout_ms: int = 2000) -> None:
        self.servers: list[RedisServer] = []
        self.primaries: list[RedisServer] = []
        self.replicas_of: list[list[RedisServer]] = []
        try:
            for i in range(nodes * (1 + replicas)):
                self.servers.append(self._node(i, binary, node_timeout_ms=node_timeout_ms))
            self.primaries = self.servers[:nodes]
            self.replicas_of = [self.servers[nodes + i * replicas: nodes + (i + 1) * replicas] for i in range(nodes)]
            self._form()
            if replicas:
                self._replicate()
        except BaseException:
            self.close()
            raise

    def node_id(self, server: RedisServer) -> str:
        """The cluster node id of ``server``."""
        return self._command(server.port, "CLUSTER", "MYID").split(b"\r\n")[1].decode()

    def _replicate(self) -> None:
        first = self.primaries[0].port
        for replica in (r for group in self.replicas_of for r in group):
            self._command(first, "CLUSTER", "MEET", "127.0.0.1", replica.port)
        ids = [self.node_id(p) for p in self.primaries]
        deadline = time.monotonic() + 30
        pending = [(r, ids[i]) for i, group in enumerate(self.replicas_of) for r in group]
        while pending and time.monotonic() < deadline:
            # a replica that does not know its primary yet says so: try again
            pending = [(r, pid) for r, pid in pending if not self._command(r.port, "CLUSTER", "REPLICATE", pid).startswith(b"+OK")]
            time.sleep(0.1)
        while time.monotonic() < deadline:
            if all(b"master_link_status:up" in self._command(r.port, "INFO", "replication") for group in self.replicas_of for r in group) \
                    and all(b"cluster_state:ok" in self._command(s.port, "CLUSTER", "INFO") for s in self.servers):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster replicas did not come up within 30 s")

    @staticmethod
    def _node(i: int, binary: str | None, attempts: int = 5, node_timeout_ms: int = 2000) -> RedisServer:
        """One cluster node on a port whose bus port (PORT + 10000) is free too; another process may still
        take either port between the check and the start, so a node that fails to start is retried on
        another port."""
        for attempt in range(attempts):
            try:
                return RedisServer(
                    port=free_port(cluster_bus=True), binary=binary,
                    extra_args=("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{i}.conf", "--cluster-node-timeout", str(node_timeout_ms)),
                )
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _command(self, port: int, *args: str | int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            parts = [str(a).encode() for a in args]
            sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            time.sleep(0.01)
            return sock.recv(65536)

    def _form(self) -> None:
        first = self.primaries[0].port
        for server in self.primaries[1:]:
            self._command(first, "CLUSTER", "MEET", "127.0.0.1", server.port)
        share = 16384 // len(self.primaries) + 1
        for i, server in enumerate(self.primaries):
            self._command(server.port, "CLUSTER", "ADDSLOTSRANGE", i * share, min(16383, (i + 1) * share - 1))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(b"cluster_state:ok" in self._command(s.port, "CLUSTER", "INFO") for s in self.primaries):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok within 15 s")

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every primary as a seed node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.primaries)

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def __enter__(self) -> "RedisClusterServers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
