"""Running the real service (``python -m service serve``) as a subprocess in tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import httpx
import pytest
import redis

from tests.conftest import ADMIN_KEY, KEK

REPO: Final = Path(__file__).resolve().parents[1]
READY_TIMEOUT: Final = 20.0


def free_port() -> int:
    """A free loopback port (never the machine's Redis on 6379)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    assert port != 6379
    return port


def flush(redis_url: str) -> None:
    """Empty the suite's own test server, for a service started on it (never :6379)."""
    assert not redis_url.rstrip("/").endswith(":6379"), "never the default server"
    flusher = redis.Redis.from_url(redis_url)
    try:
        flusher.flushall()
    finally:
        flusher.close()


def start_service(
    port: int,
    redis_url: str,
    data_dir: Path,
    log: Path,
    *,
    workers: int = 1,
    new_session: bool = False,
    **variables: str,
) -> subprocess.Popen[bytes]:
    """Start the service on ``port`` and ``redis_url``; output goes to ``log``.

    The environment has no JWKS_* of the caller's, only the test KEK and admin
    key, ``JWKS_ISSUER`` = this replica's URL unless given, and ``variables``;
    ``workers`` worker processes; ``new_session``: alone in a session of its own,
    so that :func:`leftovers` can find whatever of it outlives it.
    ``TEST_ASGI_SERVER=granian`` runs the app under granian instead of ``serve``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKS_")}
    env.update(
        JWKS_REDIS_URL=redis_url,
        JWKS_KEK=KEK,
        JWKS_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
        JWKS_ISSUER=f"http://127.0.0.1:{port}",
        JWKS_DATA_DIR=str(data_dir),
        JWKS_RSA_BITS="2048",
        # stop() would wait out the drain of every service a test starts.
        JWKS_SHUTDOWN_DELAY="0",
    )
    env.update(variables)
    argv = [sys.executable, "-m", "service", "serve", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    if os.environ.get("TEST_ASGI_SERVER") == "granian":
        # make bench reports whether the unchanged app passes these tests under granian.
        argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "service.app:create_app_from_env"]
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, name: str = "server") -> None:
    """Wait until ``url``/readyz answers 200; fail with the log if it exits or times out."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{name} was not ready in {READY_TIMEOUT} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
        if int(stat.rpartition(")")[2].split()[3]) == sid:
            pids.append(int(entry.name))
    return pids


def left_in_session(sid: int, settle: float = 5.0) -> list[str]:
    """The command lines of what is still in session ``sid`` after up to ``settle`` s
    (Linux): for a service started with ``start_new_session=True``, whatever of it
    outlived it (workers, the embedded store).

    multiprocessing's resource tracker, which ``--workers`` starts, ends on its own a
    moment after the supervisor: hence the wait.
    """
    deadline = time.monotonic() + settle
    while (pids := _session_pids(sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = []
    for pid in pids:
        with contextlib.suppress(OSError):
            left.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return left


def kill_session(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process`` and what is left in its session (it must lead its own)."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
    for pid in _session_pids(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
