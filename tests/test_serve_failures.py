"""A start of ``serve`` that fails exits soon, non-zero, with one line, and no child left.

Issue 9: on a port already taken, ``serve`` logged the bind error and then hung in
the lifespan shutdown for ever (SIGTERM and SIGINT ignored), because the rotation
loop had lost its cancellation (see :func:`test_a_loop_whose_body_loses_a_cancel_still_stops`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from service.keys import Supervised
from service.storage.embedded import socket_path
from tests._service import REPO, free_port, start_service, stop
from tests.conftest import ADMIN_KEY

#: A failed start must end well within this (it took about a second when it worked).
EXIT_TIMEOUT: Final = 10.0


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port that a listening socket holds for the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield sock.getsockname()[1]


def _finish(process: subprocess.Popen[bytes], log: Path) -> tuple[int, str]:
    """The exit status and output of a start that should fail; fails the test if it hangs."""
    try:
        status = process.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(process)
        pytest.fail(f"serve still ran {EXIT_TIMEOUT} s after a failed start:\n{log.read_text()}")
    return status, log.read_text()


def _servers_on(data_dir: Path) -> list[int]:
    """Pids of processes whose command line names the embedded store's socket of
    ``data_dir`` (an orphan is re-parented, so its parent's pid would not find it)."""
    needle = os.fsencode(socket_path(data_dir))
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if needle in cmdline:
            pids.append(int(entry.name))
    return pids


def _assert_one_line_cause(output: str) -> None:
    assert "Traceback" not in output, output
    causes = [line for line in output.splitlines() if "address already in use" in line]
    assert len(causes) == 1, output


@pytest.mark.usefixtures("redis_client")  # an empty store: no other test's KEKs
def test_port_taken_on_an_external_store_exits_non_zero(
    redis_url: str, tmp_path: Path, taken_port: int
) -> None:
    log = tmp_path / "serve.log"
    # The default rotation interval: the rotation loop is what held the shutdown.
    process = start_service(taken_port, redis_url, tmp_path / "data", log)
    status, output = _finish(process, log)
    assert status != 0, output
    _assert_one_line_cause(output)


@pytest.mark.skipif(
    not Path("/proc").is_dir(),
    reason="checks for a left-behind store process through /proc (Linux)",
)
def test_port_taken_on_the_embedded_store_exits_and_stops_it(
    tmp_path: Path, taken_port: int
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKS_")}
    env.update(
        JWKS_DATA_DIR=str(data_dir), JWKS_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, JWKS_RSA_BITS="2048"
    )
    argv = [sys.executable, "-m", "service", "serve", "--port", str(taken_port)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    status, output = _finish(process, log)
    assert status != 0, output
    _assert_one_line_cause(output)
    assert _servers_on(data_dir) == [], output


@pytest.mark.usefixtures("redis_client")
def test_an_external_store_without_a_kek_stops_the_start(redis_url: str, tmp_path: Path) -> None:
    """Not a KEK made in the data dir, which a container's filesystem would lose."""
    data_dir = tmp_path / "data"
    log = tmp_path / "serve.log"
    process = start_service(free_port(), redis_url, data_dir, log, JWKS_KEK="")
    status, output = _finish(process, log)
    assert status != 0, output
    assert len(output.strip().splitlines()) == 1, output
    assert "JWKS_KEK" in output and "JWKS_REDIS_URL" in output
    assert not (data_dir / "kek").exists()


async def test_a_loop_whose_body_loses_a_cancel_still_stops() -> None:
    """On Python 3.11, ``asyncio.wait_for`` (which redis-py wraps around every
    command it sends) returns its result and drops a cancellation that arrives as
    the command completes; the loop must stop all the same."""
    loop = Supervised("test")
    entered = asyncio.Event()

    async def body() -> None:
        entered.set()
        # What the lost cancellation looks like from the loop: a normal return.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)

    task = asyncio.create_task(loop.run(body, every=0.01))
    await entered.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert done, "the loop went on after its cancellation was lost"
    assert task.cancelled()
