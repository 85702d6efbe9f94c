"""The connection limits of ``jwks-service serve`` (``service/http/server.py``), from raw sockets.

One real service runs for the module with 1 s timeouts, 3 requests per connection
and the default head limits (16 KiB, 100 fields). Without the limits, uvicorn holds
a slow client's connection for ever and accepts any head: each test here fails.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Final

import pytest

from service.cli import uvicorn_options
from service.config import Settings
from service.http.server import ConnectionLimits, LimitedHttpToolsProtocol
from tests._service import free_port, start_service, stop, wait_ready

pytestmark = pytest.mark.skipif(
    os.environ.get("TEST_ASGI_SERVER") == "granian",
    reason="these limits are uvicorn's protocol; granian is only a reference server here",
)

TIMEOUT: Final = 1  # header, body and keep-alive, in seconds
REQUESTS: Final = 3
MAX_HEADER_BYTES: Final = Settings.max_header_bytes
MAX_HEADERS: Final = Settings.max_headers
#: How late a deadline may be enforced: the timer, the loop, a loaded 2-core machine.
SLACK: Final = 1.5
JWKS: Final = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: test\r\n"


@pytest.fixture(scope="module")
def port(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of ``python -m service serve`` with short limits."""
    port = free_port()
    tmp = tmp_path_factory.mktemp("server-limits")
    log = tmp / "server.log"
    process = start_service(
        port,
        redis_url,
        tmp / "data",
        log,
        JWKS_HEADER_TIMEOUT=str(TIMEOUT),
        JWKS_BODY_TIMEOUT=str(TIMEOUT),
        JWKS_KEEP_ALIVE_TIMEOUT=str(TIMEOUT),
        JWKS_KEEP_ALIVE_REQUESTS=str(REQUESTS),
        JWKS_ACCESS_LOG="false",
    )
    try:
        wait_ready(process, f"http://127.0.0.1:{port}", log)
        yield port
    finally:
        stop(process)
    text = log.read_text()
    # Neither uvicorn's 400 for a refused head nor an exception out of the app.
    assert "Invalid HTTP request" not in text, text
    assert "Exception in ASGI application" not in text, text
    # A body that never came is the client's doing: no traceback fills the log.
    assert "Traceback" not in text and "unhandled error" not in text, text


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5 + TIMEOUT)
    return sock


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from ``sock`` (``buffer`` keeps what follows it): status, headers, body."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer; got {bytes(buffer)!r}"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the body"
        rest += chunk
    buffer[:] = rest[length:]
    return int(status_line.split()[1]), headers, rest[:length]


def closed_after(sock: socket.socket) -> float:
    """Seconds until the server closes ``sock`` (EOF or reset); what it sent is dropped."""
    start = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def send_while_reading(sock: socket.socket, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` from a thread and read the answer meanwhile, as a server that
    answers before the request ends (and then stops reading) requires."""

    def send() -> None:
        with contextlib.suppress(OSError):  # the server closed after answering
            sock.sendall(data)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        return read_response(sock, bytearray())
    finally:
        sender.join(timeout=10)


def test_serve_runs_uvicorn_with_the_limits_of_its_settings() -> None:
    settings = Settings(header_timeout=3, keep_alive_timeout=7, max_headers=20)
    options = uvicorn_options("127.0.0.1", 8000, 1, settings)
    assert options["timeout_keep_alive"] == 7
    protocol = options["http"]
    assert isinstance(protocol, functools.partial)
    assert protocol.func is LimitedHttpToolsProtocol
    assert protocol.keywords == {"limits": ConnectionLimits.from_settings(settings)}
    assert protocol.keywords["limits"].header_timeout == 3
    # Without settings (make bench's reference app): the defaults.
    default = uvicorn_options("127.0.0.1", 8000, 1)["http"]
    assert default.keywords == {"limits": ConnectionLimits.from_settings(Settings())}


def test_a_normal_request_is_served_and_kept_alive(port: int) -> None:
    with connect(port) as sock:
        buffer = bytearray()
        for _ in range(2):
            sock.sendall(JWKS + b"\r\n")
            status, headers, body = read_response(sock, buffer)
            assert status == 200
            assert headers.get("connection") != "close"
            assert b'"keys"' in body


def test_half_a_request_line_is_answered_408_at_the_header_timeout(port: int) -> None:
    """The deadline is for the whole head: a byte now and then does not extend it."""
    with connect(port) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /.well-kn")
        answered = threading.Event()

        def trickle() -> None:
            for byte in b"own/jwks.json HTTP/1.1\r\nHost: test\r\n":
                if answered.wait(0.2):
                    return
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    return

        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            status, headers, _ = read_response(sock, bytearray())
        finally:
            answered.set()
            trickler.join()
        elapsed = time.monotonic() - start
        assert status == 408
        assert headers["connection"] == "close"
        assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + SLACK
        assert closed_after(sock) < SLACK


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(port: int) -> None:
    with connect(port) as sock:
        start = time.monotonic()
        assert sock.recv(65536) == b""  # closed, and nothing said
        assert TIMEOUT - 0.1 <= time.monotonic() - start < TIMEOUT + SLACK


def test_2_of_500_body_bytes_are_answered_408_at_the_body_timeout(port: int) -> None:
    with connect(port) as sock:
        start = time.monotonic()
        sock.sendall(
            b"POST /oauth/token HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 500\r\n\r\ngr"
        )
        status, headers, _ = read_response(sock, bytearray())
        elapsed = time.monotonic() - start
        assert status == 408
        assert headers["connection"] == "close"
        assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + SLACK
        assert closed_after(sock) < SLACK


def test_an_idle_kept_alive_connection_is_closed_at_the_keep_alive_timeout(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(JWKS + b"\r\n")
        buffer = bytearray()
        assert read_response(sock, buffer)[0] == 200
        elapsed = closed_after(sock)
        assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + SLACK
        assert not buffer  # closed, and nothing said


def test_the_last_request_a_connection_may_make_closes_it(port: int) -> None:
    with connect(port) as sock:
        buffer = bytearray()
        for number in range(1, REQUESTS + 1):
            sock.sendall(JWKS + b"\r\n")
            status, headers, _ = read_response(sock, buffer)
            assert status == 200
            assert (headers.get("connection") == "close") == (number == REQUESTS)
        assert closed_after(sock) < SLACK


def test_an_8_mb_header_is_answered_431(port: int) -> None:
    with connect(port) as sock:
        request = JWKS + b"X-Big: " + b"a" * (8 * 1024 * 1024) + b"\r\n\r\n"
        status, headers, body = send_while_reading(sock, request)
        assert (status, body) == (431, b"Request Header Fields Too Large")
        assert headers["connection"] == "close"


def test_50000_small_headers_are_answered_431(port: int) -> None:
    with connect(port) as sock:
        fields = b"".join(b"X-%d: v\r\n" % n for n in range(50_000))
        status, headers, _ = send_while_reading(sock, JWKS + fields + b"\r\n")
        assert status == 431
        assert headers["connection"] == "close"


def test_the_limits_are_exact_for_a_head_in_one_read(port: int) -> None:
    """Up to the limits is served; one field or 100 bytes more is refused."""
    # Host and 98 more fields make MAX_HEADERS; X-Pad fills the bytes up to the limit.
    counted = len(b"/.well-known/jwks.json") + len(b"Hosttest")
    fields = b"".join(b"X-%02d: v\r\n" % n for n in range(MAX_HEADERS - 2))
    counted += (MAX_HEADERS - 2) * len(b"X-00v")
    pad = MAX_HEADER_BYTES - counted - len(b"X-Pad")
    full = JWKS + fields + b"X-Pad: " + b"p" * pad + b"\r\n"
    over = [
        JWKS + fields + b"X-Pad: " + b"p" * (pad + 100) + b"\r\n",  # 100 bytes over
        full + b"X-More: v\r\n",  # one field over (and 6 bytes)
        JWKS + fields + b"X-Pad: v\r\nX-More: v\r\n",  # one field over, few bytes
    ]
    with connect(port) as sock:
        sock.sendall(full + b"\r\n")
        assert read_response(sock, bytearray())[0] == 200
    for request in over:
        with connect(port) as sock:
            sock.sendall(request + b"\r\n")
            assert read_response(sock, bytearray())[0] == 431


def test_a_head_under_the_limit_sent_in_pieces_is_served(port: int) -> None:
    request = JWKS + b"X-Pad: " + b"p" * (MAX_HEADER_BYTES - 200) + b"\r\n\r\n"
    with connect(port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for offset in range(0, len(request), 1000):
            sock.sendall(request[offset : offset + 1000])
            time.sleep(0.005)  # one read each
        assert read_response(sock, bytearray())[0] == 200


def test_a_pipelined_head_after_a_large_body_is_served(port: int) -> None:
    """The read that starts a head may end a body first: those bytes are not head."""
    body = b"grant_type=client_credentials&pad=" + b"p" * 40_000
    post = b"POST /oauth/token HTTP/1.1\r\nHost: test\r\n"
    post += b"Content-Type: application/x-www-form-urlencoded\r\n"
    post += b"Content-Length: %d\r\n\r\n" % len(body) + body
    with connect(port) as sock:
        sock.sendall(post + JWKS)  # the second head is not complete yet
        time.sleep(0.2)
        sock.sendall(b"\r\n")
        buffer = bytearray()
        assert read_response(sock, buffer)[0] in (400, 401)  # no client credentials
        assert read_response(sock, buffer)[0] == 200


def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(JWKS + b"\r\n" + b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        buffer = bytearray()
        first, second = read_response(sock, buffer), read_response(sock, buffer)
        assert (first[0], second[0]) == (200, 200)
        assert b'"keys"' in first[2]
        assert b'"keys"' not in second[2]
