"""Load generators: wrk (Debian's package) driven by a generated Lua script, a Python
fallback with the same interface, and a fixed-rate latency probe.

Every run returns a :class:`Result`: requests per second, p50/p99 latency and the
error count (connection errors, timeouts and non-2xx/3xx answers), so that one
bad answer cannot pass for speed.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Request", "Result", "has_wrk", "probe", "run"]


@dataclass(frozen=True)
class Request:
    """What every connection sends: one request, or one body per request from ``bodies``."""

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    #: A file of one body per line, each sent once (unique assertions).
    bodies: Path | None = None
    #: Paths to cycle through (GET), instead of the URL's own path.
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    """One load run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    generator: str

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def has_wrk() -> bool:
    """Whether wrk is on PATH."""
    return shutil.which("wrk") is not None


_LUA = r"""
local bodies = nil
local next_body = 0
local next_path = 0
function init(args)
  if args[1] ~= nil then
    bodies = {}
    for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  end
end
function request()
  if bodies ~= nil then
    next_body = next_body + 1
    -- Past the end, the last body again: a replay, which the service must refuse.
    return wrk.format(nil, nil, nil, bodies[math.min(next_body, #bodies)])
  end
  if #paths > 0 then
    next_path = next_path % #paths + 1
    return wrk.format(nil, paths[next_path])
  end
  return wrk.request()
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua(request: Request) -> str:
    lines = [f"wrk.method = {json.dumps(request.method)}", f"wrk.body = {json.dumps(request.body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in request.headers.items()]
    lines.append("paths = {" + ", ".join(json.dumps(p) for p in request.paths) + "}")
    return "\n".join(lines) + _LUA


def run(
    request: Request,
    *,
    seconds: float,
    connections: int = 32,
    cores: Sequence[int] = (),
    timeout: float = 5.0,
) -> Result:
    """Drive ``request`` with ``connections`` for ``seconds``: wrk if present, else Python."""
    if not has_wrk():
        return asyncio.run(_python_load(request, seconds, connections, timeout))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(request))
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, math.ceil(seconds))}s",
        f"--timeout={max(1, math.ceil(timeout))}s",
        "-s",
        script.name,
        request.url,
    ]
    if request.bodies is not None:
        argv += ["--", str(request.bodies)]
    pinned = set(cores)

    def preexec() -> None:
        if pinned:
            os.sched_setaffinity(0, pinned)

    try:
        out = subprocess.run(  # noqa: S603 - wrk with our own arguments
            argv,
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=preexec,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH "))
    data = json.loads(line.removeprefix("BENCH "))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"],
        generator="wrk",
    )


# The Python generator and the probe ---------------------------------------------


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads one response."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def encode(self, request: Request, body: str) -> bytes:
        head = [f"{request.method} {self.target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in request.headers.items()]
        data = body.encode()
        if data or request.method != "GET":
            head.append(f"Content-Length: {len(data)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + data

    async def send(self, raw: bytes) -> int:
        """Send one request; return the status of its response."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length, closing = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                closing = value.strip().lower() == "close"
        if length:
            await self.reader.readexactly(length)
        if closing:  # the server's last answer on it (JWKS_KEEP_ALIVE_REQUESTS)
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _bodies(request: Request) -> list[str]:
    if request.bodies is None:
        return []
    return request.bodies.read_text().splitlines()


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def _python_load(
    request: Request, seconds: float, connections: int, per_request: float
) -> Result:
    bodies = _bodies(request)
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors, counter
        conn = _Connection(request.url)
        try:
            while time.perf_counter() < deadline:
                body = request.body
                if bodies:
                    body = bodies[min(counter, len(bodies) - 1)]
                    counter += 1
                if request.paths:
                    conn.target = request.paths[counter % len(request.paths)]
                    counter += 1
                begin = time.perf_counter()
                try:
                    status = await asyncio.wait_for(
                        conn.send(conn.encode(request, body)), per_request
                    )
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    errors += 1
                    conn.close()
                    continue
                latencies.append(time.perf_counter() - begin)
                if status >= 400:
                    errors += 1
        finally:
            conn.close()

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - begin
    return Result(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        errors=errors,
        generator="python",
    )


def probe(request: Request, *, seconds: float, rate: float = 200.0) -> Result:
    """A light, fixed-rate latency probe on one connection: what one verifier sees.

    Requests are sent every ``1/rate`` s (right after the previous answer if that
    came later), so the probe measures waiting, not its own throughput.
    """
    return asyncio.run(_probe(request, seconds, rate))


async def _probe(request: Request, seconds: float, rate: float) -> Result:
    conn = _Connection(request.url)
    raw = conn.encode(request, request.body)
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate
    begin = time.perf_counter()
    next_at = begin
    try:
        while time.perf_counter() - begin < seconds:
            now = time.perf_counter()
            if next_at > now:
                await asyncio.sleep(next_at - now)
            next_at += interval
            sent = time.perf_counter()
            try:
                status = await asyncio.wait_for(conn.send(raw), 5.0)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                errors += 1
                conn.close()
                continue
            latencies.append(time.perf_counter() - sent)
            errors += status >= 400
    finally:
        conn.close()
    return Result(
        requests=len(latencies),
        seconds=time.perf_counter() - begin,
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        errors=errors,
        generator="probe",
    )
