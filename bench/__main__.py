"""``python -m bench``: run every row, print the table, write ``bench/RESULTS.md``."""

from __future__ import annotations

import argparse
import base64
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from bench import limits, load, machine, procs, profile, report, scale, scenario
from bench.load import Request, Result
from bench.report import Row
from service.storage.embedded import find_server_binary

ADMIN_KEY = "bench-admin-key-" + "0" * 32
KEK = bytes(range(32))
RESULTS = Path(__file__).with_name("RESULTS.md")


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


def _ratio_row(
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


def _combined(results: Sequence[Result]) -> Result:
    return Result(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        p50_ms=sum(r.p50_ms for r in results) / len(results),
        p99_ms=sum(r.p99_ms for r in results) / len(results),
        errors=sum(r.errors for r in results),
        generator=results[0].generator,
    )


def against_bare(
    run: Run, lim: Limits, name: str, request: Request, target: float, rounds: int = 4
) -> Row:
    """A row whose limit is the bare app: the two alternate, so drift hits both alike."""
    bare = Request(lim.bare_url)
    ours: list[Result] = []
    theirs: list[Result] = []
    for _ in range(rounds):
        theirs.append(run.measure(bare, seconds=run.seconds / rounds))
        ours.append(run.measure(request, seconds=run.seconds / rounds))
    limit = _combined(theirs).rps
    return _ratio_row(name, _combined(ours), limit, f"bare ASGI {limit:,.0f}/s", target)


def against_signing(
    run: Run,
    bits: int,
    name: str,
    request: Request,
    target: float,
    note: str = "",
    rounds: int = 4,
) -> Row:
    """A row whose limit is raw RSA signing: the two alternate, so drift hits both alike."""
    rates: list[float] = []
    ours: list[Result] = []
    for _ in range(rounds):
        rates.append(limits.rsa_sign_rate(bits, run.service_cores, seconds=2))
        ours.append(run.measure(request, seconds=run.seconds / rounds))
    limit = sum(rates) / len(rates)
    return _ratio_row(name, _combined(ours), limit, f"RSA-{bits} sign {limit:,.0f}/s", target, note)


def _jwks(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    return against_bare(run, lim, "JWKS GET 200", Request(f"{sc.base}/.well-known/jwks.json"), 0.9)


def _jwks304(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    request = Request(f"{sc.base}/.well-known/jwks.json", headers={"If-None-Match": sc.etag})
    return against_bare(run, lim, "JWKS GET 304 (If-None-Match)", request, 0.9)


def _token_request(sc: scenario.Scenario, base: str | None = None) -> Request:
    return Request(
        f"{base or sc.base}/oauth/token", "POST", sc.rs256_basic, "grant_type=client_credentials"
    )


def _token(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    return against_signing(
        run, 2048, "token, client_secret_basic, RS256-2048", _token_request(sc), 0.8
    )


def _pkjwt(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    url = f"{sc.base}/oauth/token"
    count = int(lim.sign2048 * (run.seconds + 2) * 1.2) + 1000
    bodies = scenario.make_assertions(sc, count, run.workdir / "assertions.txt")
    warm = scenario.make_assertions(sc, int(lim.sign2048) + 100, run.workdir / "warm.txt")
    load.run(Request(url, "POST", scenario.FORM, bodies=warm), seconds=1, cores=run.load_cores)
    rate = limits.rsa_sign_rate(2048, run.service_cores, seconds=2)
    result = run.measure(Request(url, "POST", scenario.FORM, bodies=bodies), warmup=0)
    rate = (rate + limits.rsa_sign_rate(2048, run.service_cores, seconds=2)) / 2
    return _ratio_row(
        "token, private_key_jwt, unique assertions, RS256-2048",
        result,
        rate,
        f"RSA-2048 sign {rate:,.0f}/s",
        0.7,
        f"{count:,} assertions",
    )


def _hs256(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    request = Request(
        f"{sc.base}/oauth/token", "POST", sc.hs256_basic, "grant_type=client_credentials"
    )
    return against_bare(run, lim, "token, HS256 access token", request, 0.5)


def _introspect(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    request = Request(f"{sc.base}/oauth/introspect", "POST", sc.rs256_basic, sc.introspect_body)
    return against_bare(run, lim, "introspection of an RS256 token", request, 0.6)


def _jitsi(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    request = Request(sc.jitsi_url, "POST", scenario.FORM, sc.jitsi_body)
    return against_signing(run, 4096, "Jitsi-profile token, RS256-4096 key", request, 0.85)


GROUPS = ("core", "workers", "latency", "offload", "granian", "scale")

#: The HTTP rows against the one-worker service, by the name ``--profile`` takes.
CORE_ROWS: dict[str, Callable[[Run, scenario.Scenario, Limits], Row]] = {
    "jwks": _jwks,
    "jwks304": _jwks304,
    "token": _token,
    "pkjwt": _pkjwt,
    "hs256": _hs256,
    "introspect": _introspect,
    "jitsi": _jitsi,
}


def _p99_row(name: str, alone: Result, loaded: Result, limit: str, note: str) -> Row:
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


def _in_background(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def latency_rows(run: Run, sc: scenario.Scenario) -> None:
    """JWKS latency, as a light fixed-rate probe sees it, alone and beside heavy work."""
    jwks = Request(f"{sc.base}/.well-known/jwks.json")
    alone = load.probe(jwks, seconds=run.seconds)
    token = Request(
        f"{sc.base}/oauth/token", "POST", sc.rs256_basic, "grant_type=client_credentials"
    )
    saturating: list[Result] = []
    thread = _in_background(
        lambda: saturating.append(
            load.run(token, seconds=run.seconds + 2, connections=32, cores=run.load_cores)
        )
    )
    time.sleep(1)
    loaded = load.probe(jwks, seconds=run.seconds)
    thread.join()
    limit = f"probe alone: p99 {alone.p99_ms:.2f} ms"
    run.rows.append(
        _p99_row(
            "JWKS p99 while the token endpoint is saturated",
            alone,
            loaded,
            limit,
            f"200 req/s probe; token load {saturating[0].rps:,.0f}/s",
        )
    )

    proc, base = start_service(run, "service-rsa4096", JWKS_RSA_BITS="4096")
    jwks4096 = Request(f"{base}/.well-known/jwks.json")
    alone = load.probe(jwks4096, seconds=run.seconds)
    created: list[float] = []
    stop = threading.Event()

    def create_realms() -> None:
        with httpx.Client(timeout=120) as http:
            while not stop.is_set():
                begin = time.monotonic()
                name = f"rsa4096-{len(created)}-{os.getpid()}"
                http.post(
                    f"{base}/v1/realms", headers=sc.admin, json={"name": name}
                ).raise_for_status()
                created.append(time.monotonic() - begin)

    thread = _in_background(create_realms)
    time.sleep(0.5)
    loaded = load.probe(jwks4096, seconds=run.seconds)
    stop.set()
    thread.join()
    proc.stop()
    mean = sum(created) / len(created) if created else 0.0
    run.rows.append(
        _p99_row(
            "JWKS p99 while a realm with an RSA-4096 key is being created",
            alone,
            loaded,
            f"probe alone: p99 {alone.p99_ms:.2f} ms",
            f"{len(created)} realms created, {mean:.2f} s each",
        )
    )


def workers_row(run: Run, sc: scenario.Scenario, one_worker: Result) -> None:
    """Token throughput with 2 workers on every core against 1 worker on one core."""
    everything = machine.cores()
    proc, base = start_service(run, "service-2-workers", workers=2, cores=everything)
    # The same client: registered in the shared store.
    token = Request(f"{base}/oauth/token", "POST", sc.rs256_basic, "grant_type=client_credentials")
    two = run.measure(token, connections=64, cores=everything)
    proc.stop()
    ratio = two.rps / one_worker.rps if one_worker.rps else 0.0
    run.rows.append(
        Row(
            "token endpoint, 2 workers / 1 worker",
            two.rps,
            two.p50_ms,
            two.p99_ms,
            two.errors,
            f"1 worker {one_worker.rps:,.0f}/s",
            ratio,
            "≥ 1.8",
            ratio >= 1.8 and two.errors == 0,
            f"1 worker on core {run.service_cores}, wrk on {run.load_cores}; "
            f"2 workers and wrk share cores {everything}",
        )
    )


def access_log_row(run: Run, sc: scenario.Scenario) -> None:
    """What the access log (on by default) costs the JWKS: against a service without it."""
    proc, base = start_service(run, "service-no-access-log", JWKS_ACCESS_LOG="false")
    on, off = [], []
    for _ in range(4):  # alternated
        on.append(run.measure(Request(f"{sc.base}/.well-known/jwks.json"), seconds=run.seconds / 4))
        off.append(run.measure(Request(f"{base}/.well-known/jwks.json"), seconds=run.seconds / 4))
    proc.stop()
    logged, silent = _combined(on), _combined(off)
    ratio = logged.rps / silent.rps if silent.rps else 0.0
    run.rows.append(
        Row(
            "JWKS GET 200 with the access log, against JWKS_ACCESS_LOG=false",
            logged.rps,
            logged.p50_ms,
            logged.p99_ms,
            logged.errors,
            f"without it {silent.rps:,.0f}/s",
            ratio,
            "≥ 0.9",
            ratio >= 0.9 and logged.errors == 0,
            "alternated",
        )
    )


def offload_rows(run: Run, sc: scenario.Scenario, lim: Limits, threaded: Row) -> None:
    """RSA-2048 signed in place (on the event loop) instead of in a thread, the default:
    what each costs in token throughput and in JWKS latency under token load."""
    proc, base = start_service(run, "service-in-place", JWKS_SIGN_THREAD_MIN_BITS="3072")
    token = _token_request(sc, base)
    in_place = run.measure(token)
    ratio = in_place.rps / threaded.rps if threaded.rps else 0.0
    run.rows.append(
        Row(
            "token, RS256-2048 signed in place (JWKS_SIGN_THREAD_MIN_BITS=3072)",
            in_place.rps,
            in_place.p50_ms,
            in_place.p99_ms,
            in_place.errors,
            f"in a thread (default) {threaded.rps or 0:,.0f}/s",
            ratio,
            "informational",
            None,
            "throughput against the default",
        )
    )
    jwks = Request(f"{base}/.well-known/jwks.json")
    alone = load.probe(jwks, seconds=run.seconds / 2)
    loaded = _probe_beside(run, jwks, token)
    run.rows.append(
        _p99_row(
            "JWKS p99 while the token endpoint is saturated, RS256-2048 signed in place",
            alone,
            loaded,
            f"probe alone: p99 {alone.p99_ms:.2f} ms",
            "200 req/s probe",
        )
    )
    proc.stop()


def _probe_beside(run: Run, probed: Request, saturating: Request) -> Result:
    """The probe's view while ``saturating`` runs flat out from the load core."""
    thread = _in_background(
        lambda: load.run(saturating, seconds=run.seconds + 2, connections=32, cores=run.load_cores)
    )
    time.sleep(1)
    result = load.probe(probed, seconds=run.seconds)
    thread.join()
    return result


def granian_rows(run: Run, sc: scenario.Scenario, lim: Limits, ours: dict[str, Row]) -> None:
    """Reference rows: the bare app and the service under granian (a Rust ASGI server)."""
    spec = run.workdir / "jwks.json"
    g_ref, g_base = start_reference(run, spec, server="granian")
    uvicorn_bare, granian_bare = [], []
    for _ in range(2):  # alternated in one run
        uvicorn_bare.append(run.measure(Request(lim.bare_url), seconds=run.seconds / 2))
        granian_bare.append(
            run.measure(Request(f"{g_base}/.well-known/jwks.json"), seconds=run.seconds / 2)
        )
    g_ref.stop()
    u, g = _combined(uvicorn_bare), _combined(granian_bare)
    run.rows.append(
        Row(
            "reference: bare ASGI app under granian",
            g.rps,
            g.p50_ms,
            g.p99_ms,
            g.errors,
            f"same app under uvicorn {u.rps:,.0f}/s",
            g.rps / u.rps,
            "informational",
            None,
            "alternated with uvicorn",
        )
    )
    proc, base = start_service(run, "service-granian", server="granian")
    jwks = run.measure(Request(f"{base}/.well-known/jwks.json"))
    token = run.measure(_token_request(sc, base))
    proc.stop()
    for name, result, key in (
        ("JWKS GET 200", jwks, "jwks"),
        ("token, client_secret_basic, RS256-2048", token, "token"),
    ):
        row = ours[key]
        run.rows.append(
            Row(
                f"reference: the service under granian, {name}",
                result.rps,
                result.p50_ms,
                result.p99_ms,
                result.errors,
                f"under uvicorn {row.rps or 0:,.0f}/s",
                result.rps / (row.rps or 1),
                "informational",
                None,
                "unchanged app",
            )
        )


def scale_rows(run: Run, sc: scenario.Scenario, lim: Limits) -> None:
    """Many keys, realms and clients: what stays flat and what memory costs."""
    base, url = sc.base, run.store_url
    scale.add_realms(url, KEK, ["keys-100", "keys-100000", "clients"])
    scale.add_verify_only_keys(url, "keys-100", 99)
    scale.add_verify_only_keys(url, "keys-100000", 99_999)
    page = "/jwt_keys?limit=25"
    small = run.measure(
        Request(f"{base}/v1/realms/keys-100{page}", headers=sc.admin), connections=4
    )
    big = run.measure(
        Request(f"{base}/v1/realms/keys-100000{page}", headers=sc.admin), connections=4
    )
    ratio = big.p50_ms / small.p50_ms if small.p50_ms else 0.0
    run.rows.append(
        Row(
            "key-list page (25), realm of 100,000 keys",
            big.rps,
            big.p50_ms,
            big.p99_ms,
            big.errors,
            f"100 keys: p50 {small.p50_ms:.2f} ms",
            ratio,
            "≤ 1.5 (flat)",
            ratio <= 1.5 and big.errors == 0,
            "p50 ratio, 4 connections",
        )
    )

    before = scale.used_memory(url)
    scale.add_clients(url, "clients", 100_000)
    per_client = (scale.used_memory(url) - before) / 100_000
    run.rows.append(
        Row(
            "store memory per registered client (100,000 clients)",
            limit="INFO memory",
            target="informational",
            note=f"{per_client:,.0f} bytes per client",
        )
    )

    begin = time.monotonic()
    fresh, _ = start_service(run, "service-startup-3-realms")
    small_start = time.monotonic() - begin
    fresh.stop()
    names = [f"r-{i:05d}" for i in range(10_000)]
    seconds = scale.add_realms(url, KEK, names)
    run.notes.append(f"10,000 realms written in {seconds:.1f} s (one shared key, sealed per realm)")
    realm = Request(f"{base}/realms/r-05000/.well-known/jwks.json")
    run.rows.append(against_bare(run, lim, "JWKS of one realm among 10,000 realms", realm, 0.9))
    every = tuple(f"/realms/{n}/.well-known/jwks.json" for n in names)
    for cap in ("10000", "1000"):
        begin = time.monotonic()
        proc, proc_base = start_service(run, f"service-10k-{cap}", JWKS_CACHE_REALMS=cap)
        started = time.monotonic() - begin
        at_start = proc.rss_kib() / 1024
        swept = load.run(
            Request(f"{proc_base}/", paths=every), seconds=4, connections=8, cores=run.load_cores
        )
        load.run(
            Request(f"{proc_base}/", paths=every), seconds=2, connections=8, cores=run.load_cores
        )
        after = proc.rss_kib() / 1024
        proc.stop()
        if cap == "10000":
            run.rows.append(
                Row(
                    "start-up with 10,000 realms (to /readyz)",
                    limit=f"3 realms: {small_start:.2f} s",
                    ratio=started / small_start if small_start else 0.0,
                    target="≤ 1.5 (no realm loaded at start)",
                    met=started <= 1.5 * small_start,
                    note=f"{started:.2f} s, {at_start:.0f} MiB resident",
                )
            )
        per_realm = (after - at_start) * 1024 / min(int(cap), len(names))
        run.rows.append(
            Row(
                f"resident memory after serving all 10,000 realms, JWKS_CACHE_REALMS={cap}",
                swept.rps,
                swept.p50_ms,
                swept.p99_ms,
                swept.errors,
                f"at start {at_start:.0f} MiB",
                after / at_start,
                "bounded by the cache",
                None,
                f"{after:.0f} MiB; about {per_realm:.0f} KiB per cached realm",
            )
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 8)))
    parser.add_argument("--only", default="", help="comma-separated groups: " + ",".join(GROUPS))
    parser.add_argument(
        "--profile",
        choices=sorted(CORE_ROWS),
        help="run one row with the service under py-spy; print the profile",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; keep RESULTS.md")
    args = parser.parse_args(argv)
    groups = set(filter(None, args.only.split(","))) or set(GROUPS)
    usable = machine.cores()
    service_cores, load_cores = (usable[:1], usable[1:2]) if len(usable) > 1 else ([], [])
    if load_cores:
        # The probe and the set-up run here: keep them off the service's core.
        os.sched_setaffinity(0, load_cores)
    begin = time.monotonic()
    counters = machine.cpu_times()
    with tempfile.TemporaryDirectory(prefix="jwks-bench-") as tmp, procs.cleanup():
        run = Run(args.seconds, Path(tmp), service_cores, load_cores)
        if not load.has_wrk():
            run.notes.append(
                "wrk was not found: the Python load generator ran instead; its "
                "own cost bounds the fast rows"
            )
        if not load_cores:
            run.notes.append("one core only: service and load generator were not pinned apart")
        start_store(run)
        if args.profile:
            return _profile(run, args.profile)
        service, base = start_service(run, "service")
        sc = scenario.setup(base, ADMIN_KEY, run.store_url, KEK, run.workdir)
        lim = measure_limits(run, sc)
        ours: dict[str, Row] = {}
        if groups & {"core", "offload", "granian"}:
            for name, row in CORE_ROWS.items():
                ours[name] = row(run, sc, lim)
                run.rows.append(ours[name])
        if "workers" in groups:
            workers_row(run, sc, run.measure(_token_request(sc), connections=64))
        if "latency" in groups:
            latency_rows(run, sc)
        if "core" in groups:
            access_log_row(run, sc)
        if "offload" in groups:
            offload_rows(run, sc, lim, ours["token"])
        if "granian" in groups:
            granian_rows(run, sc, lim, ours)
        if "scale" in groups:
            scale_rows(run, sc, lim)
        run.notes.append(
            f"service resident memory after the rows: {service.rss_kib() / 1024:.0f} MiB"
        )
        steal = machine.steal_share(counters, machine.cpu_times())
        if steal is not None:
            run.notes.append(f"CPU time stolen by the hypervisor during the run: {steal:.1%}")
        run.notes.append(f"the whole run took {time.monotonic() - begin:.0f} s")
        print(report.render(run.rows))
        print("\n".join(f"- {n}" for n in run.notes))
        if not args.no_write:
            report.write(RESULTS, run.rows, machine.describe(), run.notes)
    return 0


def measure_limits(run: Run, sc: scenario.Scenario) -> Limits:
    """The bare app serving the JWKS bytes (left running), and raw signing on the
    service's core."""
    spec = scenario.jwks_spec(sc, run.workdir / "jwks.json")
    _ref, ref_base = start_reference(run, spec)
    bare_url = f"{ref_base}/.well-known/jwks.json"
    bare = run.measure(Request(bare_url))
    lim = Limits(
        bare.rps,
        limits.rsa_sign_rate(2048, run.service_cores),
        limits.rsa_sign_rate(4096, run.service_cores),
        bare_url,
    )
    run.notes.append(
        f"limits: bare ASGI app {bare.rps:,.0f} req/s (p99 {bare.p99_ms:.2f} ms); "
        f"RSA-2048 {lim.sign2048:,.0f} signatures/s; RSA-4096 {lim.sign4096:,.0f}/s, "
        f"on core {run.service_cores}; rows against the bare app alternate with it"
    )
    run.notes.append(
        f"service on core {run.service_cores}; wrk -t1 -c32, the store and the "
        f"probe on {run.load_cores}; {run.seconds:g} s per row after 1 s of warm-up"
    )
    return lim


def _profile(run: Run, row_name: str) -> int:
    spy = profile.py_spy()
    if spy is None:
        print("py-spy is not installed (make bench installs it)", file=sys.stderr)
        return 1
    raw = run.workdir / "profile.txt"
    # Signing in place: then the loop's thread does all the work, and the profile of
    # the thread holding the GIL (--gil) is the whole of it, without idle threads.
    service, base = start_service(
        run,
        "service",
        wrap=[spy, "record", "--gil", "--format", "raw", "--rate", "250", "-o", str(raw), "--"],
        JWKS_SIGN_THREAD_MIN_BITS="8192",
    )
    sc = scenario.setup(base, ADMIN_KEY, run.store_url, KEK, run.workdir)
    lim = measure_limits(run, sc)
    print(report.render([CORE_ROWS[row_name](run, sc, lim)]))
    # py-spy writes its file when interrupted; then the service goes with its session.
    service.popen.send_signal(signal.SIGINT)
    service.popen.wait(timeout=60)
    service.stop()
    print(profile.summarise(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
