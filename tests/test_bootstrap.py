"""Start-up waits for the store: ``serve`` retries its first contact for
``JWKS_STORE_WAIT`` s, one line per attempt, then stops with one line and exit 1
(no traceback, no password, nothing left running); a store that comes up
meanwhile is used."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Final

import pytest

from service.bootstrap import wait_for_store
from service.storage import StoreUnavailable
from service.storage.embedded import find_server_binary
from service.storage.redis import connect
from tests._servers import HOST, ServerProcess, free_port
from tests._service import kill_session, left_in_session, start_service, wait_ready

PASSWORD: Final = "hunter2-store-password"
#: Past the wait, the start must end within this (a connect attempt is quick on
#: loopback; the slack is for a loaded machine).
EXIT_SLACK: Final = 10.0

pytestmark = pytest.mark.skipif(
    not Path("/proc").is_dir(), reason="checks for leftovers through /proc (Linux)"
)


def _serve(
    tmp_path: Path, url: str, wait: int, workers: int = 1
) -> tuple[subprocess.Popen[bytes], Path]:
    """``serve`` on ``url``, alone in its session, output (text lines) in the log."""
    log = tmp_path / "serve.log"
    process = start_service(
        free_port(),
        url,
        tmp_path / "data",
        log,
        workers=workers,
        new_session=True,
        JWKS_LOG_FORMAT="text",
        JWKS_STORE_WAIT=str(wait),
    )
    return process, log


@pytest.mark.parametrize(
    ("wait", "workers"), [(0, 1), (3, 2)], ids=["one try", "3 s wait, 2 workers"]
)
def test_an_unreachable_store_stops_the_start_with_one_line(
    tmp_path: Path, wait: int, workers: int
) -> None:
    port = free_port()  # nothing listens there
    where = f"redis://{HOST}:{port}"
    started = time.monotonic()
    process, log = _serve(tmp_path, f"redis://:{PASSWORD}@{HOST}:{port}/0", wait, workers)
    try:
        status = process.wait(timeout=wait + EXIT_SLACK)
        took = time.monotonic() - started
        output = log.read_text()
        assert status == 1, output
        assert left_in_session(process.pid) == []
    finally:
        kill_session(process)
    assert took >= wait
    assert "Traceback" not in output and PASSWORD not in output, output
    waiting = re.findall(
        rf"waiting for the store at {re.escape(where)} \(attempt (\d+), retrying in [0-9.]+ s\): "
        "connection refused",
        output,
    )
    last = output.strip().splitlines()[-1]
    if wait:
        assert len(waiting) >= 2 and waiting == [str(n) for n in range(1, len(waiting) + 1)]
        assert last == (
            f"jwks-service: cannot reach the store at {where} after {len(waiting) + 1} "
            f"attempts in {wait} s (JWKS_STORE_WAIT): connection refused"
        ), output
    else:
        assert waiting == []
        assert last == f"jwks-service: cannot reach the store at {where}: connection refused"
        assert len(output.strip().splitlines()) == 1, output
    assert "Started server process" not in output  # no worker was started


def test_a_store_that_comes_up_during_the_wait_is_used(tmp_path: Path) -> None:
    port = free_port()
    process, log = _serve(tmp_path, f"redis://{HOST}:{port}", 60)
    store = ServerProcess(find_server_binary(), tmp_path / "store", port)
    try:
        deadline = time.monotonic() + 20
        while "waiting for the store" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # a few more attempts
        store.start()
        wait_ready(process, f"http://127.0.0.1:{_port_of(log)}", log)
        output = log.read_text()
        assert re.search(rf"the store at redis://{HOST}:{port} answered \(attempt \d+\)", output)
        assert "Traceback" not in output, output
    finally:
        kill_session(process)
        store.stop()


def _port_of(log: Path) -> int:
    deadline = time.monotonic() + 20
    while True:
        found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return int(found.group(1))
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


async def test_the_wait_names_the_store_without_its_password() -> None:
    port = free_port()
    store = connect(f"redis://:{PASSWORD}@{HOST}:{port}")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await wait_for_store(store, f"the store at redis://{HOST}:{port}", 0)
    finally:
        await store.close()
    assert str(caught.value) == (
        f"cannot reach the store at redis://{HOST}:{port}: connection refused"
    )
