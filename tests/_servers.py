"""Test-only process helpers: Valkey servers on TCP ports for Cluster and Sentinel.

Every server runs from the embedded binary, in its own temp directory, on a
free port (never :6379), and is stopped by whoever started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import redis

HOST = "127.0.0.1"
#: Cluster bus port = port + this.
BUS_OFFSET = 10_000
_START_TIMEOUT = 15.0
_RESERVED = {6379, 16379, 26379}


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


_handed_out: set[int] = set()


def free_port(*, with_bus: bool = False) -> int:
    """A free TCP port on 127.0.0.1 (and port + 10000 too, for a Cluster bus)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        taken = {port, port + BUS_OFFSET} if with_bus else {port}
        if taken & (_RESERVED | _handed_out):
            continue
        if with_bus and (port + BUS_OFFSET > 65535 or not _bindable(port + BUS_OFFSET)):
            continue
        _handed_out.update(taken)
        return port
    raise RuntimeError("no free port found")


def wait_for(check: Callable[[], bool], what: str, timeout: float = _START_TIMEOUT) -> float:
    """Poll ``check`` until it holds; return the seconds it took."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


class ServerProcess:
    """One valkey-server (or sentinel) on ``port`` in ``directory``."""

    def __init__(
        self,
        binary: Path,
        directory: Path,
        port: int,
        config: Sequence[str] = (),
        *,
        sentinel: bool = False,
    ) -> None:
        self.binary = binary
        self.dir = directory
        self.port = port
        self.config = list(config)
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / ("sentinel.conf" if self.sentinel else "valkey.conf")
        lines = [
            f"port {self.port}",
            f"bind {HOST}",
            f'dir "{self.dir}"',
            f'logfile "{self.dir / "server.log"}"',
            "daemonize no",
            *([] if self.sentinel else ['save ""', "appendonly no"]),
            *self.config,
        ]
        conf.write_text("\n".join(lines) + "\n")
        argv = [str(self.binary), str(conf)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for(self._answers, f"server on port {self.port}")
        except TimeoutError:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            log = self.dir / "server.log"
            tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
            raise RuntimeError(f"server on port {self.port} exited: {' | '.join(tail)}")
        with self.client() as c:
            return bool(c.ping())

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, decode_responses=True, socket_timeout=2)

    def info(self, section: str) -> dict[str, str]:
        with self.client() as c:
            return {str(k): str(v) for k, v in c.info(section).items()}

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cluster_info(node: ServerProcess) -> dict[str, str]:
    with node.client() as c:
        raw = c.execute_command("CLUSTER", "INFO")
    text = raw if isinstance(raw, str) else str(raw)
    return dict(line.split(":", 1) for line in text.strip().splitlines() if ":" in line)


class Cluster:
    """Three masters, slots split evenly, joined by CLUSTER MEET."""

    def __init__(self, binary: Path, directory: Path, size: int = 3) -> None:
        self.nodes = [
            ServerProcess(
                binary,
                directory / f"node{i}",
                port,
                [
                    "cluster-enabled yes",
                    f'cluster-config-file "nodes-{port}.conf"',
                    "cluster-node-timeout 5000",
                ],
            )
            for i, port in enumerate(free_port(with_bus=True) for _ in range(size))
        ]
        self.setup_seconds = 0.0

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{n.port}" for n in self.nodes)

    def start(self) -> None:
        started = time.monotonic()
        for node in self.nodes:
            node.start()
        per = 16384 // len(self.nodes)
        for i, node in enumerate(self.nodes):
            first = i * per
            last = 16383 if i == len(self.nodes) - 1 else first + per - 1
            with node.client() as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with self.nodes[0].client() as c:
            for other in self.nodes[1:]:
                c.execute_command("CLUSTER", "MEET", HOST, other.port)
        for node in self.nodes:
            wait_for(
                lambda n=node: (  # type: ignore[misc]
                    _cluster_info(n).get("cluster_state") == "ok"
                    and _cluster_info(n).get("cluster_known_nodes") == str(len(self.nodes))
                ),
                f"cluster_state:ok on port {node.port}",
                timeout=30,
            )
        self.setup_seconds = time.monotonic() - started

    def flush(self) -> None:
        for node in self.nodes:
            with node.client() as c:
                c.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelSet:
    """One master, one replica, three sentinels monitoring ``name``."""

    def __init__(self, binary: Path, directory: Path, name: str = "mymaster") -> None:
        self.name = name
        self.binary = binary
        self.master = ServerProcess(binary, directory / "master", free_port())
        self.replica = ServerProcess(
            binary,
            directory / "replica",
            free_port(),
            [f"replicaof {HOST} {self.master.port}", "repl-diskless-sync-delay 0"],
        )
        self.master.config.append("repl-diskless-sync-delay 0")
        self.sentinels = [
            ServerProcess(
                binary,
                directory / f"sentinel{i}",
                free_port(),
                [
                    f"sentinel monitor {name} {HOST} {self.master.port} 2",
                    f"sentinel down-after-milliseconds {name} 500",
                    f"sentinel failover-timeout {name} 5000",
                    f"sentinel parallel-syncs {name} 1",
                ],
                sentinel=True,
            )
            for i in range(3)
        ]
        self.setup_seconds = 0.0

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}"

    @property
    def servers(self) -> list[ServerProcess]:
        return [self.master, self.replica, *self.sentinels]

    def start(self) -> None:
        started = time.monotonic()
        self.master.start()
        self.replica.start()
        wait_for(
            lambda: self.replica.info("replication").get("master_link_status") == "up",
            "the replica's link to the master",
        )
        for sentinel in self.sentinels:
            sentinel.start()
        wait_for(self._sentinels_ready, "sentinels to see each other and the replica", 30)
        self.setup_seconds = time.monotonic() - started

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as c:
                state = c.sentinel_master(self.name)
            if int(state["num-other-sentinels"]) < len(self.sentinels) - 1:
                return False
            if int(state["num-slaves"]) < 1:
                return False
        return True

    def current_master(self) -> ServerProcess:
        """The server the sentinels name as master now."""
        with self.sentinels[0].client() as c:
            _host, port = c.sentinel_get_master_addr_by_name(self.name)
        return next(s for s in (self.master, self.replica) if s.port == int(port))

    def flush(self) -> None:
        with self.current_master().client() as c:
            c.flushall()

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


@contextlib.contextmanager
def running(topology: Cluster | SentinelSet) -> Iterator[Cluster | SentinelSet]:
    """Start ``topology``; stop every process on exit, even after a failed start."""
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()
