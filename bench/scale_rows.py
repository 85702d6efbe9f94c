"""The scale rows: many keys, realms and clients; what stays flat, what memory costs."""

from __future__ import annotations

import time

from bench import load, scale, scenario
from bench.harness import KEK, Limits, Run, against_bare, start_service
from bench.load import Request
from bench.report import Row


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
    every = tuple(f"/realms/{n}/.well-known/jwks.json" for n in names)
    for cap in ("10000", "1000"):
        begin = time.monotonic()
        proc, proc_base = start_service(run, f"service-10k-{cap}", JWKS_CACHE_REALMS=cap)
        started = time.monotonic() - begin
        at_start = proc.rss_kib() / 1024
        if cap == "10000":  # a fresh process, beside 10,000 realms, serving one of them
            realm = Request(f"{proc_base}/realms/r-05000/.well-known/jwks.json")
            run.rows.append(
                against_bare(run, lim, "JWKS of one realm among 10,000 realms", realm, 0.9)
            )
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
