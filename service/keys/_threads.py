"""Thread pools for the CPU-heavy work that must not run on the event loop.

OpenSSL releases the GIL while it generates keys and signs, so that work can run in
threads beside the loop. Background work (generating a key takes seconds at
RSA-4096; preparing a changed ring) runs in threads that lower their own
scheduling priority (Linux ``nice``, per thread): on a busy core the loop, which
only ever runs briefly, gets the CPU as soon as it wants it. Signing, which is
on the request path, stays at normal priority: lowered, the loop would preempt
the signing thread at every finished signature, and the context switches cost
a sixth of the token throughput on one core (bench/RESULTS.md). Where the OS
does not allow it, every thread runs at normal priority.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Final

__all__ = ["keygen_pool", "low_priority_pool", "prepare_pool", "signing_pool", "usable_cores"]

#: How much less CPU priority background threads ask for (nice 0 -> 10: about a
#: tenth of the loop's share when both want the CPU).
BACKGROUND_NICENESS: Final = 10


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity; all of them elsewhere than Linux)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _lower_priority() -> None:
    tid = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):
        # PRIO_PROCESS with a thread id: Linux schedules threads as tasks.
        niceness = os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICENESS
        os.setpriority(os.PRIO_PROCESS, tid, niceness)


def low_priority_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """``workers`` threads named ``name``, each at a lower priority than the loop."""
    return ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix=name, initializer=_lower_priority
    )


def signing_pool() -> ThreadPoolExecutor:
    """One thread per core this process may use, at normal priority (see above)."""
    return ThreadPoolExecutor(max_workers=usable_cores(), thread_name_prefix="jwt-sign")


@functools.cache
def keygen_pool() -> ThreadPoolExecutor:
    """One thread generates keys (seconds each at RSA-4096, and rare)."""
    return low_priority_pool("keygen", 1)


@functools.cache
def prepare_pool() -> ThreadPoolExecutor:
    """One thread opens and imports the keys of changed rings (kept apart from key
    generation, so a first request after a change never waits for one)."""
    return low_priority_pool("ring-prepare", 1)
