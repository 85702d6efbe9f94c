"""What every row shares: the processes it measures, the limits, and row arithmetic."""

from __future__ import annotations

import base64
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench import limits, load, procs, scenario
from bench.load import Request, Result
from bench.report import Row
from service.storage.embedded import find_server_binary

ADMIN_KEY = "bench-admin-key-" + "0" * 32

KEK = bytes(range(32))


@dataclass
class Run:
    """What the rows share: options, cores, processes and the scenario."""

    seconds: float
    workdir: Path
    service_cores: list[int]
    load_cores: list[int]
    store_url: str = ""
    notes: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def measure(
        self,
        request: Request,
        connections: int = 32,
        warmup: float = 1.0,
        cores: Sequence[int] | None = None,
        seconds: float | None = None,
    ) -> Result:
        """Warm up, then one measured run."""
        used = self.load_cores if cores is None else cores
        if warmup and request.bodies is None:
            load.run(request, seconds=warmup, connections=connections, cores=used)
        return load.run(
            request, seconds=seconds or self.seconds, connections=connections, cores=used
        )


def _service_env(run: Run, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKS_")}
    env.update(
        JWKS_REDIS_URL=run.store_url,
        JWKS_KEK=base64.b64encode(KEK).decode(),
        JWKS_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
        JWKS_ISSUER=f"http://127.0.0.1:{port}",
        JWKS_DATA_DIR=str(run.workdir / f"service-{port}"),
        JWKS_ROTATION_INTERVAL="0",
        JWKS_RSA_BITS="2048",
    )
    env.update(extra)
    return env


def start_service(
    run: Run,
    name: str,
    *,
    workers: int = 1,
    cores: Sequence[int] | None = None,
    server: str = "uvicorn",
    wrap: Sequence[str] = (),
    **extra: str,
) -> tuple[procs.Proc, str]:
    """The service on a free port; returns it and its base URL once /readyz answers."""
    port = procs.free_port()
    env = _service_env(run, port, **extra)
    if server == "granian":
        argv = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-log",
            "service.app:create_app_from_env",
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "service",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    proc = procs.start(
        name,
        [*wrap, *argv],
        log_dir=run.workdir,
        env=env,
        cores=run.service_cores if cores is None else cores,
    )
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(proc, f"{base}/readyz")
    return proc, base


def start_store(run: Run) -> procs.Proc:
    """A Valkey server of the embedded binary on a unix socket, on the load core."""
    sock = run.workdir / "store.sock"
    proc = procs.start(
        "store",
        [
            str(find_server_binary()),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(run.workdir),
        ],
        log_dir=run.workdir,
        cores=run.load_cores,
    )
    run.store_url = f"unix://{sock}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if redis.Redis(unix_socket_path=str(sock)).ping():
                return proc
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.05)
    raise RuntimeError(f"the store did not start:\n{proc.tail()}")


def start_reference(run: Run, spec: Path, server: str = "uvicorn") -> tuple[procs.Proc, str]:
    """The bare ASGI app serving the JWKS bytes."""
    port = procs.free_port()
    env = {**os.environ, "BENCH_BODY": str(spec)}
    proc = procs.start(
        f"reference-{server}-{port}",
        [sys.executable, "-m", "bench.reference", "--port", str(port), "--server", server],
        log_dir=run.workdir,
        env=env,
        cores=run.service_cores,
    )
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(proc, f"{base}/")
    return proc, base


def ratio_row(
    name: str, result: Result, limit_rps: float, limit: str, target: float, note: str = ""
) -> Row:
    ratio = result.rps / limit_rps if limit_rps else 0.0
    return Row(
        name,
        result.rps,
        result.p50_ms,
        result.p99_ms,
        result.errors,
        limit,
        ratio,
        f"≥ {target}",
        ratio >= target and result.errors == 0,
        note,
    )


def p99_row(name: str, alone: Result, loaded: Result, limit: str, note: str) -> Row:
    ratio = loaded.p99_ms / alone.p99_ms if alone.p99_ms else 0.0
    return Row(
        name,
        loaded.rps,
        loaded.p50_ms,
        loaded.p99_ms,
        loaded.errors,
        limit,
        ratio,
        "≤ 2x",
        ratio <= 2 and loaded.errors == 0,
        note,
    )


@dataclass(frozen=True)
class Limits:
    """The limits measured in this run."""

    bare_rps: float
    sign2048: float
    sign4096: float
    #: The reference app, still running: rows against it alternate with it.
    bare_url: str = ""

    @property
    def bare(self) -> str:
        return f"bare ASGI {self.bare_rps:,.0f}/s"

    @property
    def rs2048(self) -> str:
        return f"RSA-2048 sign {self.sign2048:,.0f}/s"


def combined(results: Sequence[Result]) -> Result:
    return Result(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        p50_ms=sum(r.p50_ms for r in results) / len(results),
        p99_ms=sum(r.p99_ms for r in results) / len(results),
        errors=sum(r.errors for r in results),
        generator=results[0].generator,
    )


def paired(
    run: Run, ours: Request, theirs: Request, rounds: int = 6
) -> tuple[Result, Result, float]:
    """``ours`` and ``theirs`` measured in alternation (ABBA), ``run.seconds`` in all
    for each; returns both and the median of the per-round ratios, which a burst of
    stolen CPU in one round does not move."""
    mine: list[Result] = []
    other: list[Result] = []
    for i in range(rounds):
        first, second = (other, mine) if i % 2 == 0 else (mine, other)
        for results, request in (
            (first, theirs if first is other else ours),
            (second, theirs if second is other else ours),
        ):
            warm = 1.0 if i < 2 else 0.25
            results.append(run.measure(request, seconds=run.seconds / rounds, warmup=warm))
    ratios = sorted(m.rps / o.rps for m, o in zip(mine, other, strict=True) if o.rps)
    return combined(mine), combined(other), statistics.median(ratios) if ratios else 0.0


def against_bare(run: Run, lim: Limits, name: str, request: Request, target: float) -> Row:
    """A row whose limit is the bare app, measured in alternation with it (:func:`paired`)."""
    result, bare, ratio = paired(run, request, Request(lim.bare_url))
    return Row(
        name,
        result.rps,
        result.p50_ms,
        result.p99_ms,
        result.errors,
        f"bare ASGI {bare.rps:,.0f}/s",
        ratio,
        f"≥ {target}",
        ratio >= target and result.errors == 0,
        "median of 6 alternated rounds",
    )


def against_signing(
    run: Run,
    bits: int,
    name: str,
    request: Request,
    target: float,
    note: str = "",
    rounds: int = 4,
) -> Row:
    """A row whose limit is raw RSA signing, measured in alternation with it; the ratio
    is the median of the per-round ratios (see :func:`paired`)."""
    rates: list[float] = []
    ours: list[Result] = []
    for i in range(rounds):
        rates.append(limits.rsa_sign_rate(bits, run.service_cores, seconds=2))
        ours.append(
            run.measure(request, seconds=run.seconds / rounds, warmup=1.0 if i == 0 else 0.25)
        )
    ratio = statistics.median(r.rps / rate for r, rate in zip(ours, rates, strict=True))
    result, limit = combined(ours), sum(rates) / len(rates)
    return Row(
        name,
        result.rps,
        result.p50_ms,
        result.p99_ms,
        result.errors,
        f"RSA-{bits} sign {limit:,.0f}/s",
        ratio,
        f"≥ {target}",
        ratio >= target and result.errors == 0,
        note or f"median of {rounds} alternated rounds",
    )


def token_request(sc: scenario.Scenario, base: str | None = None) -> Request:
    return Request(
        f"{base or sc.base}/oauth/token", "POST", sc.rs256_basic, "grant_type=client_credentials"
    )


def in_background(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def probe_beside(run: Run, probed: Request, saturating: Request) -> Result:
    """The probe's view while ``saturating`` runs flat out from the load core."""
    thread = in_background(
        lambda: load.run(saturating, seconds=run.seconds + 2, connections=32, cores=run.load_cores)
    )
    time.sleep(1)
    result = load.probe(probed, seconds=run.seconds)
    thread.join()
    return result
