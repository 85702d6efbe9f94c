"""Processes the bench starts: its store, the service, reference apps. All are stopped.

Every process is started in its own session (so its workers die with it), pinned
to the cores it is given, and registered so that :func:`stop_all` (run at exit
and on SIGTERM/SIGINT) leaves nothing behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

import httpx

__all__ = ["Proc", "free_port", "start", "stop_all", "wait_http"]

REPO: Final = Path(__file__).resolve().parents[1]
_started: list[Proc] = []


class Proc:
    """A started process: its command, log file and cores."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path, cores: Sequence[int]):
        self.name = name
        self.popen = popen
        self.log = log
        self.cores = tuple(cores)

    @property
    def pid(self) -> int:
        """The process id (of the session leader)."""
        return self.popen.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the whole session, then SIGKILL."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout)
        # Workers left in the session (uvicorn --workers) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self in _started:
            _started.remove(self)

    def rss_kib(self) -> int:
        """Resident memory of the process, KiB (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def tail(self, lines: int = 30) -> str:
        """The end of the log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    """A free TCP port on loopback (never a well-known server port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in (6379, 8000):
            return port


def start(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    cores: Sequence[int] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
) -> Proc:
    """Start ``argv`` in its own session, pinned to ``cores`` (all cores if empty)."""
    log = log_dir / f"{name}.log"
    pinned = set(cores)

    def preexec() -> None:  # runs in the child
        if pinned:
            os.sched_setaffinity(0, pinned)

    environment = dict(os.environ if env is None else env)
    with log.open("ab") as out:
        popen = subprocess.Popen(  # noqa: S603 - our own commands
            list(argv),
            cwd=cwd,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
    proc = Proc(name, popen, log, cores)
    _started.append(proc)
    return proc


def wait_http(proc: Proc, url: str, timeout: float = 60.0) -> float:
    """Wait until ``url`` answers 200; return the seconds it took from now."""
    begin = time.monotonic()
    while time.monotonic() - begin < timeout:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return time.monotonic() - begin
        time.sleep(0.02)
    raise RuntimeError(f"{proc.name} did not answer {url} in {timeout} s:\n{proc.tail()}")


def stop_all() -> None:
    """Stop every process this run started, newest first."""
    for proc in reversed(list(_started)):
        proc.stop()


@contextlib.contextmanager
def cleanup() -> Iterator[None]:
    """Stop everything on exit, on an exception, and on SIGTERM/SIGINT."""

    def on_signal(signum: int, _frame: object) -> None:
        stop_all()
        sys.exit(128 + signum)

    atexit.register(stop_all)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        stop_all()
        for s, handler in previous.items():
            signal.signal(s, handler)
