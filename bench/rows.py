"""The rows of the table: one function a row (or a few rows that share a service)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import httpx

from bench import limits, load, machine, scenario
from bench.harness import (
    Limits,
    Run,
    against_bare,
    against_signing,
    in_background,
    p99_row,
    paired,
    probe_beside,
    ratio_row,
    start_reference,
    start_service,
    token_request,
)
from bench.load import Request, Result
from bench.report import Row


def _jwks(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    return against_bare(run, lim, "JWKS GET 200", Request(f"{sc.base}/.well-known/jwks.json"), 0.9)


def _jwks304(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    request = Request(f"{sc.base}/.well-known/jwks.json", headers={"If-None-Match": sc.etag})
    return against_bare(run, lim, "JWKS GET 304 (If-None-Match)", request, 0.9)


def _token(run: Run, sc: scenario.Scenario, lim: Limits) -> Row:
    return against_signing(
        run, 2048, "token, client_secret_basic, RS256-2048", token_request(sc), 0.8
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
    return ratio_row(
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


def latency_rows(run: Run, sc: scenario.Scenario) -> None:
    """JWKS latency, as a light fixed-rate probe sees it, alone and beside heavy work."""
    jwks = Request(f"{sc.base}/.well-known/jwks.json")
    alone = load.probe(jwks, seconds=run.seconds)
    token = Request(
        f"{sc.base}/oauth/token", "POST", sc.rs256_basic, "grant_type=client_credentials"
    )
    saturating: list[Result] = []
    thread = in_background(
        lambda: saturating.append(
            load.run(token, seconds=run.seconds + 2, connections=32, cores=run.load_cores)
        )
    )
    time.sleep(1)
    loaded = load.probe(jwks, seconds=run.seconds)
    thread.join()
    limit = f"probe alone: p99 {alone.p99_ms:.2f} ms"
    run.rows.append(
        p99_row(
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

    thread = in_background(create_realms)
    time.sleep(0.5)
    loaded = load.probe(jwks4096, seconds=run.seconds)
    stop.set()
    thread.join()
    proc.stop()
    mean = sum(created) / len(created) if created else 0.0
    run.rows.append(
        p99_row(
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


def access_log_row(run: Run) -> None:
    """What the access log (on by default) costs the JWKS: two fresh services, alike but
    for the log (the main one has logged every row before this one)."""
    with_log, base_on = start_service(run, "service-access-log")
    without, base_off = start_service(run, "service-no-access-log", JWKS_ACCESS_LOG="false")
    logged, silent, ratio = paired(
        run,
        Request(f"{base_on}/.well-known/jwks.json"),
        Request(f"{base_off}/.well-known/jwks.json"),
    )
    with_log.stop()
    without.stop()
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
            "median of 6 alternated rounds",
        )
    )


def offload_rows(run: Run, sc: scenario.Scenario, lim: Limits, threaded: Row) -> None:
    """RSA-2048 signed in place (on the event loop) instead of in a thread, the default:
    what each costs in token throughput and in JWKS latency under token load."""
    proc, base = start_service(run, "service-in-place", JWKS_SIGN_THREAD_MIN_BITS="3072")
    token = token_request(sc, base)
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
    loaded = probe_beside(run, jwks, token)
    run.rows.append(
        p99_row(
            "JWKS p99 while the token endpoint is saturated, RS256-2048 signed in place",
            alone,
            loaded,
            f"probe alone: p99 {alone.p99_ms:.2f} ms",
            "200 req/s probe",
        )
    )
    proc.stop()


def granian_rows(run: Run, sc: scenario.Scenario, lim: Limits, ours: dict[str, Row]) -> None:
    """Reference rows: the bare app and the service under granian (a Rust ASGI server)."""
    spec = run.workdir / "jwks.json"
    g_ref, g_base = start_reference(run, spec, server="granian")
    g, u, ratio = paired(run, Request(f"{g_base}/.well-known/jwks.json"), Request(lim.bare_url))
    g_ref.stop()
    run.rows.append(
        Row(
            "reference: bare ASGI app under granian",
            g.rps,
            g.p50_ms,
            g.p99_ms,
            g.errors,
            f"same app under uvicorn {u.rps:,.0f}/s",
            ratio,
            "informational",
            None,
            "median of 6 rounds alternated with uvicorn",
        )
    )
    proc, base = start_service(run, "service-granian", server="granian")
    jwks = run.measure(Request(f"{base}/.well-known/jwks.json"))
    token = run.measure(token_request(sc, base))
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
