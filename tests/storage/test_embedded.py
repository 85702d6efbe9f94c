"""The embedded store: a real Valkey child that keeps its data and never outlives the service."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from service import crypto
from service.clock import SystemClock
from service.keys import KeyManager
from service.storage.embedded import (
    EmbeddedServer,
    EmbeddedStoreError,
    find_server_binary,
    running_server,
)
from service.storage.redis import connect

REPO = Path(__file__).resolve().parents[2]
KEK = bytes(range(32))
#: How long the kernel's PR_SET_PDEATHSIG and the server's own shutdown may take.
CHILD_EXIT_TIMEOUT = 5.0
SERVICE_START_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def binary() -> Path:
    return find_server_binary()


@pytest.fixture
def server(tmp_path: Path, binary: Path) -> Iterator[EmbeddedServer]:
    """A started server over ``tmp_path / "data"``, stopped after the test."""
    embedded = EmbeddedServer(tmp_path / "data", binary)
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)


def answers(url: str) -> bool:
    """Whether a server answers PING at ``url``."""
    conn = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(conn.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        conn.close()


def is_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (reaped, or a zombie nobody has reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    # The state follows the command name, which is in parentheses and may hold spaces.
    return stat.rpartition(")")[2].split()[0] == "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not is_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def config_directives(path: Path) -> dict[str, str]:
    """``name value`` lines of a server config, quotes removed."""
    directives: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.strip().partition(" ")
        if name and not name.startswith("#"):
            directives[name] = value.strip().strip('"')
    return directives


# (a) durability ----------------------------------------------------------


async def test_restart_keeps_realms_keys_and_the_kek_check(tmp_path: Path, binary: Path) -> None:
    data_dir = tmp_path / "data"
    first = EmbeddedServer(data_dir, binary)
    first.start()
    try:
        store = connect(first.url)
        try:
            keys = KeyManager(store, crypto.Sealer(KEK), SystemClock(), grace=3600)
            await keys.check_kek()
            await keys.create_realm("acme")
            ring_before = await store.load_ring("acme")
            jwks_before = json.loads((await keys.jwks("acme")).body)
        finally:
            await store.close()
    finally:
        first.stop()
    assert ring_before is not None and ring_before.keys
    assert first.pid is None
    # The append-only file alone must bring the data back, not an RDB snapshot.
    (data_dir / "dump.rdb").unlink(missing_ok=True)
    assert any((data_dir / "appendonlydir").iterdir())

    second = EmbeddedServer(data_dir, binary)
    second.start()
    try:
        store = connect(second.url)
        try:
            keys = KeyManager(store, crypto.Sealer(KEK), SystemClock(), grace=3600)
            await keys.check_kek()  # the KEK check value survived too
            assert await store.load_ring("acme") == ring_before
            assert json.loads((await keys.jwks("acme")).body) == jwks_before
        finally:
            await store.close()
    finally:
        second.stop()


def test_restart_keeps_a_plain_value(tmp_path: Path, binary: Path) -> None:
    data_dir = tmp_path / "data"
    first = EmbeddedServer(data_dir, binary)
    first.start()
    try:
        with client_for(first.url) as conn:
            conn.set("greeting", "hello")
    finally:
        first.stop()
    assert not answers(first.url)
    second = EmbeddedServer(data_dir, binary)
    second.start()
    try:
        with client_for(second.url) as conn:
            assert conn.get("greeting") == "hello"
    finally:
        second.stop()


# (b) the child never outlives the service --------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def service_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["JWKS_DATA_DIR"] = str(data_dir)
    return env


def wait_healthy(service: subprocess.Popen[bytes], port: int, log: Path) -> None:
    url = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + SERVICE_START_TIMEOUT
    while time.monotonic() < deadline:
        if service.poll() is not None:
            pytest.fail(f"service exited with {service.returncode}: {log.read_text()}")
        try:
            if httpx.get(url, timeout=0.5, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"service did not answer /healthz: {log.read_text()}")


def read_pid(path: Path) -> int:
    deadline = time.monotonic() + CHILD_EXIT_TIMEOUT
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} was not written")
        time.sleep(0.02)
    return int(path.read_text())


def _default_sigint() -> None:
    # A shell's background jobs start with SIGINT ignored, and Python would then
    # keep ignoring it; the service must see SIGINT as a terminal's Ctrl-C sends it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass(frozen=True)
class ServiceProcess:
    """``python -m service serve`` on the embedded store, and its server's pid."""

    process: subprocess.Popen[bytes]
    valkey_pid: int
    data_dir: Path
    log: Path


@contextlib.contextmanager
def serving(tmp_path: Path) -> Iterator[ServiceProcess]:
    """Start the service, wait for /healthz; kill whatever is left afterwards."""
    data_dir = tmp_path / "data"
    log = tmp_path / "service.log"
    port = free_port()
    valkey_pid: int | None = None
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port)],
            env=service_env(data_dir),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint,
        )
    try:
        wait_healthy(process, port, log)
        valkey_pid = read_pid(data_dir / "valkey.pid")
        assert b"valkey" in Path(f"/proc/{valkey_pid}/cmdline").read_bytes()
        assert not is_gone(valkey_pid)
        yield ServiceProcess(process, valkey_pid, data_dir, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if valkey_pid is not None and not is_gone(valkey_pid):
            os.kill(valkey_pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("sent", "exit_status"),
    [(signal.SIGTERM, 0), (signal.SIGINT, 0)],
    ids=["SIGTERM", "SIGINT"],
)
def test_service_stops_its_server_before_exiting(
    tmp_path: Path, sent: signal.Signals, exit_status: int
) -> None:
    with serving(tmp_path) as service:
        service.process.send_signal(sent)
        status = service.process.wait(CHILD_EXIT_TIMEOUT * 2)
        assert status == exit_status, service.log.read_text()
        # Stopped (and reaped) by the service itself, not later by the kernel's
        # PR_SET_PDEATHSIG: it is gone the moment the service has exited.
        assert is_gone(service.valkey_pid), service.log.read_text()
        assert not answers(f"unix://{service.data_dir.resolve() / 'valkey.sock'}")


def test_server_exits_when_the_service_is_killed(tmp_path: Path) -> None:
    with serving(tmp_path) as service:
        service.process.kill()
        assert service.process.wait(CHILD_EXIT_TIMEOUT) == -signal.SIGKILL
        # Nothing in the service ran: only PR_SET_PDEATHSIG can end the server.
        assert wait_gone(service.valkey_pid, CHILD_EXIT_TIMEOUT)


# (c) data from a newer server --------------------------------------------


def test_refuses_data_written_by_a_newer_server(tmp_path: Path, binary: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "server-version").write_text("99.0.0\n")
    server = EmbeddedServer(data_dir, binary)
    with pytest.raises(EmbeddedStoreError) as caught:
        server.start()
    message = str(caught.value)
    assert "99.0.0" in message and "newer" in message and str(data_dir.resolve()) in message
    assert server.pid is None
    assert not answers(server.url)
    assert not (data_dir / "valkey.pid").exists()
    # The record of the newer server is kept, so the next start refuses too.
    assert (data_dir / "server-version").read_text() == "99.0.0\n"


def test_accepts_data_written_by_the_same_or_an_older_server(tmp_path: Path, binary: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "server-version").write_text("1.0.0\n")
    server = EmbeddedServer(data_dir, binary)
    server.start()
    try:
        assert answers(server.url)
        recorded = (data_dir / "server-version").read_text().strip()
        assert recorded != "1.0.0"
    finally:
        server.stop()
    again = EmbeddedServer(data_dir, binary)
    again.start()  # the version it just recorded is its own: no refusal
    again.stop()


# (d) long data dir paths ---------------------------------------------------


def test_long_data_dir_uses_a_short_socket_path(tmp_path: Path, binary: Path) -> None:
    data_dir = tmp_path / ("a-rather-long-directory-name-" * 4) / "data"
    assert len(os.fsencode(data_dir / "valkey.sock")) > 100
    server = EmbeddedServer(data_dir, binary)
    assert len(os.fsencode(server.socket)) <= 100
    assert data_dir.resolve() not in server.socket.parents
    assert EmbeddedServer(data_dir, binary).socket == server.socket  # stable, so reusable
    assert EmbeddedServer(tmp_path / "other", binary).socket != server.socket
    server.start()
    try:
        with client_for(server.url) as conn:
            conn.set("k", "v")
            assert conn.get("k") == "v"
        with running_server(data_dir) as url:
            assert url == server.url
    finally:
        server.stop()
    assert (data_dir / "appendonlydir").is_dir()


# (e) the generated config ------------------------------------------------


def test_config_is_durable_and_on_a_unix_socket_only(server: EmbeddedServer) -> None:
    directives = config_directives(server.data_dir / "valkey.conf")
    assert directives["appendonly"] == "yes"
    assert directives["appendfsync"] == "everysec"
    assert directives["port"] == "0"
    socket_path = Path(directives["unixsocket"])
    assert socket_path == server.socket
    assert socket_path.parent == server.data_dir
    with client_for(server.url) as conn:
        live = conn.config_get("*")
    assert live["appendonly"] == "yes"
    assert live["appendfsync"] == "everysec"
    assert live["port"] == "0"
    assert live["unixsocket"] == str(server.socket)
    assert live["dir"] == str(server.data_dir)


# (f) running_server --------------------------------------------------------


def test_running_server_reuses_a_running_server_and_leaves_it_running(
    server: EmbeddedServer,
) -> None:
    pid_before = (server.data_dir / "valkey.pid").read_text()
    with running_server(server.data_dir) as url:
        assert url == server.url
        with client_for(url) as conn:
            conn.set("shared", "yes")
        assert (server.data_dir / "valkey.pid").read_text() == pid_before
    assert server.pid is not None and not is_gone(server.pid)
    with client_for(server.url) as conn:
        assert conn.get("shared") == "yes"


def test_running_server_starts_one_when_none_answers_and_stops_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as url:
        assert answers(url)
        pid = int((data_dir / "valkey.pid").read_text())
        assert not is_gone(pid)
    assert is_gone(pid)
    assert not answers(url)


def test_find_server_binary_rejects_a_bad_override(tmp_path: Path) -> None:
    not_executable = tmp_path / "valkey-server"
    not_executable.write_text("")
    with pytest.raises(EmbeddedStoreError, match="JWKS_REDIS_SERVER_BIN"):
        find_server_binary(str(not_executable))
