"""SIGTERM during traffic: readiness turns 503 first while everything is still served,
then the listener closes, the requests in flight finish (within
``JWKS_SHUTDOWN_TIMEOUT``), the background loops stop, and the process exits 0.

The real ``serve`` runs as a subprocess on the embedded store, alone in its session
(so that nothing of it can be left behind unseen).

What "answered" means at the close: a request the server has read is answered. A
connection the kernel had completed but the server had not read from when the
listener closed is reset (RST), as with any server: that is what the drain delay
is for (no load balancer sends new connections by then). Those resets, and the
refused connections after it, are counted apart, and may only come after the
drain.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pytest

from service.storage.embedded import socket_path
from tests._service import REPO, free_port, kill_session, left_in_session, wait_ready
from tests.conftest import ADMIN_KEY

#: Seconds of drain and of graceful shutdown in these tests.
DELAY: Final = 2
TIMEOUT: Final = 5
#: Concurrent clients in the burst, and each one's pause between requests.
CLIENTS: Final = 6
PAUSE: Final = 0.02
#: Generous bounds: the machine has 2 cores and other test runs on them.
EXIT_SLACK: Final = 15.0
FIRST_503_WITHIN: Final = 1.5


@dataclass(frozen=True)
class Running:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path


def _start(tmp_path: Path, *args: str, **variables: str) -> Running:
    """``serve`` with ``args`` on a free port and its own embedded store, ready."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKS_")}
    env.update(
        JWKS_DATA_DIR=str(tmp_path / "data"),
        JWKS_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
        JWKS_ISSUER=f"http://127.0.0.1:{port}",
        JWKS_RSA_BITS="2048",
        JWKS_ROTATION_INTERVAL="0",
        JWKS_ACCESS_LOG="false",
        JWKS_LOG_FORMAT="text",
        JWKS_SHUTDOWN_DELAY=str(DELAY),
        JWKS_SHUTDOWN_TIMEOUT=str(TIMEOUT),
    )
    env.update(variables)
    argv = [sys.executable, "-m", "service", "serve", "--port", str(port), *args]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, log, "serve")
    except BaseException:
        kill_session(process)
        raise
    return Running(process, url, port, log)


def _store_running(data_dir: Path) -> bool:
    """Whether an embedded store of ``data_dir`` runs (it has a session of its own)."""
    needle = os.fsencode(socket_path(data_dir))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes():
                    return True
    return False


def _register(url: str) -> tuple[str, str]:
    response = httpx.post(
        f"{url}/oauth/register",
        json={"token_endpoint_auth_method": "client_secret_basic"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10.0,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["client_id"], body["client_secret"]


@dataclass(frozen=True)
class Outcome:
    """One token request: when it started and ended (monotonic), and how."""

    started: float
    ended: float
    #: ``ok`` (200 with a token), ``refused`` (at connect), ``reset`` (RST before an
    #: answer), or what else happened: a failure.
    kind: str
    #: The response said ``Connection: close``.
    closes: bool = False


def _reset_in(exc: BaseException) -> bool:
    error: BaseException | None = exc
    while error is not None:
        if isinstance(error, ConnectionResetError | BrokenPipeError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _kind(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "refused"
    if isinstance(exc, httpx.ReadError | httpx.WriteError) and _reset_in(exc):
        return "reset"
    return f"{type(exc).__name__}: {exc}"


def _client(url: str, auth: tuple[str, str], stop: threading.Event, out: list[Outcome]) -> None:
    """Token requests one after another on one pooled client, until ``stop``."""
    with httpx.Client(auth=auth, timeout=20.0) as http:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = http.post(
                    f"{url}/oauth/token", data={"grant_type": "client_credentials"}
                )
            except httpx.HTTPError as exc:
                out.append(Outcome(started, time.monotonic(), _kind(exc)))
            else:
                ok = response.status_code == 200 and "access_token" in response.json()
                closes = response.headers.get("connection", "").lower() == "close"
                kind = "ok" if ok else f"status {response.status_code}: {response.text[:200]}"
                out.append(Outcome(started, time.monotonic(), kind, closes))
            time.sleep(PAUSE)


def _probe(url: str, stop: threading.Event, out: list[tuple[float, float, str]]) -> None:
    """GET /readyz every 0.1 s on a new connection: when it started and ended, and
    ``200``, ``503 <reasons>`` or an error."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = httpx.get(f"{url}/readyz", timeout=2.0)
        except httpx.HTTPError as exc:
            result = type(exc).__name__
        else:
            reasons = response.json().get("reasons", []) if response.status_code == 503 else []
            result = f"{response.status_code} {';'.join(reasons)}".strip()
        out.append((started, time.monotonic(), result))
        time.sleep(0.1)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks for leftovers through /proc")
@pytest.mark.parametrize("workers", [1, 2], ids=["1 worker", "2 workers"])
def test_sigterm_during_a_burst_answers_every_accepted_request(
    tmp_path: Path, workers: int
) -> None:
    service = _start(tmp_path, "--workers", str(workers))
    try:
        auth = _register(service.url)
        stop = threading.Event()
        outcomes: list[Outcome] = []
        probes: list[tuple[float, float, str]] = []
        threads = [
            threading.Thread(target=_client, args=(service.url, auth, stop, outcomes))
            for _ in range(CLIENTS)
        ]
        threads.append(threading.Thread(target=_probe, args=(service.url, stop, probes)))
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            sent = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            status = service.process.wait(timeout=DELAY + TIMEOUT + EXIT_SLACK)
            exited = time.monotonic()
            time.sleep(0.3)  # a few refusals once it is gone
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        log = service.log.read_text()
        assert status == 0, log
        assert left_in_session(service.process.pid) == []
        assert not _store_running(tmp_path / "data")
    finally:
        kill_session(service.process)

    drain_over = sent + DELAY
    kinds = {
        kind: sum(1 for o in outcomes if o.kind == kind) for kind in {o.kind for o in outcomes}
    }
    print(f"\n{workers} worker(s): exited {exited - sent:.2f} s after SIGTERM; requests: {kinds}")

    # Readiness: 200 until the signal, 503 "shutting down" soon after, never 200 again.
    assert all(result == "200" for _start, end, result in probes if end < sent), probes
    unready = [start for start, _end, result in probes if result.startswith("503 shutting down")]
    assert unready and unready[0] - sent < FIRST_503_WITHIN, probes
    # (0.5 s: with workers, one may begin its drain a moment before the other.)
    assert not [p for p in probes if p[0] > unready[0] + 0.5 and p[2] == "200"], probes

    # Every request is answered, but for refusals and resets once the drain is over.
    failed = [o for o in outcomes if o.kind not in ("ok", "refused", "reset")]
    assert failed == [], failed
    early = [o for o in outcomes if o.kind != "ok" and o.ended < drain_over]
    assert early == [], early
    assert kinds.get("refused", 0) >= 1, "the listener never closed"

    # While draining, requests are served, and each response closes its connection.
    drained = [o for o in outcomes if o.kind == "ok" and unready[0] + 0.2 < o.started < drain_over]
    assert len(drained) >= 10, kinds
    assert all(o.closes for o in drained)
    assert not any(o.closes for o in outcomes if o.kind == "ok" and o.ended < sent)

    assert "Traceback" not in log, log
    assert log.count("stopped the background loops") == workers, log
    assert log.count(f"SIGTERM: draining for {DELAY} s") == workers, log


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length; ``(0, {}, b"")`` if closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, {}, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks for leftovers through /proc")
def test_a_request_in_flight_finishes_and_one_past_the_timeout_is_cut(tmp_path: Path) -> None:
    """Two token requests whose heads arrived before the signal and whose bodies had not:
    the first sends its body after the listener closed and is answered; the other never
    does, and is cut ``JWKS_SHUTDOWN_TIMEOUT`` s after the close."""
    delay, timeout = 1, 3
    service = _start(
        tmp_path,
        JWKS_SHUTDOWN_DELAY=str(delay),
        JWKS_SHUTDOWN_TIMEOUT=str(timeout),
        JWKS_BODY_TIMEOUT="60",  # the body's own deadline must not end either first
    )
    try:
        client_id, secret = _register(service.url)
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        body = b"grant_type=client_credentials"
        head = (
            f"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n"
            f"Authorization: Basic {basic}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        finishing = socket.create_connection(("127.0.0.1", service.port), timeout=30)
        stuck = socket.create_connection(("127.0.0.1", service.port), timeout=30)
        with finishing, stuck:
            finishing.sendall(head)
            stuck.sendall(head)
            time.sleep(0.5)  # both heads read: two requests in flight
            sent = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            deadline = sent + delay + EXIT_SLACK
            while not _refused(service.port):
                assert time.monotonic() < deadline, service.log.read_text()
                time.sleep(0.05)
            closed = time.monotonic()
            assert closed >= sent + delay  # the drain came first

            finishing.sendall(body)
            status, _headers, answer = _read_response(finishing)
            assert status == 200, (status, answer, service.log.read_text())
            assert b"access_token" in answer

            status, _headers, answer = _read_response(stuck)
            cut = time.monotonic()
            assert status != 200, answer  # uvicorn answers 500 for a cancelled request
            assert timeout - 0.5 <= cut - closed <= timeout + EXIT_SLACK, cut - closed

        assert service.process.wait(timeout=EXIT_SLACK) == 0
        log = service.log.read_text()
        assert "timeout graceful shutdown exceeded" in log, log
        assert "stopped the background loops" in log, log
        assert left_in_session(service.process.pid) == []
    finally:
        kill_session(service.process)
