"""``python -m bench``: run every row, print the table, write ``bench/RESULTS.md``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import limits, load, machine, procs, profile, report, scale_rows, scenario
from bench.harness import (
    ADMIN_KEY,
    KEK,
    Limits,
    Run,
    start_reference,
    start_service,
    start_store,
    token_request,
)
from bench.load import Request
from bench.report import Row
from bench.rows import (
    CORE_ROWS,
    access_log_row,
    granian_rows,
    latency_rows,
    offload_rows,
    workers_row,
)

RESULTS = Path(__file__).with_name("RESULTS.md")


GROUPS = ("core", "workers", "latency", "offload", "granian", "scale")


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
            workers_row(run, sc, run.measure(token_request(sc), connections=64))
        if "latency" in groups:
            latency_rows(run, sc)
        if "core" in groups:
            access_log_row(run)
        if "offload" in groups:
            offload_rows(run, sc, lim, ours["token"])
        if "granian" in groups:
            granian_rows(run, sc, lim, ours)
        if "scale" in groups:
            scale_rows.scale_rows(run, sc, lim)
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
