"""One scrape: every process's values, and what the answering process computes.

Counters, histograms and the loop gauges come from ``prometheus_client``: in
multi-process mode from every process's files in ``PROMETHEUS_MULTIPROC_DIR``
(a custom collector would see only its own process), else from this process's
registry. The key gauges and the cache ages are computed for the scrape, from
the answering process's ring cache and from the loop gauges of every process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import prometheus_client
from prometheus_client import REGISTRY, multiprocess, values
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.metrics import _families

__all__ = [
    "KeyState",
    "clear_multiprocess_dir",
    "exposition",
    "multiprocess_mode",
    "process_exiting",
]


@dataclass(frozen=True)
class KeyState:
    """The signing key of one realm and algorithm, as a scrape reports it."""

    realm: str
    algo: str
    #: Seconds since the active key started signing.
    age: float
    #: Whether a next key has been published long enough to take over; ``None``
    #: for an algorithm that has no next keys (hs256).
    next_ready: bool | None


def multiprocess_mode() -> bool:
    """Whether values go to files in ``PROMETHEUS_MULTIPROC_DIR`` (``prometheus_client``
    decided when it was imported)."""
    return values.ValueClass is not values.MutexValue


@functools.cache
def _values() -> Collector:
    if multiprocess_mode():
        # It reads PROMETHEUS_MULTIPROC_DIR itself, as the values did.
        return multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]
    return REGISTRY


class _Scrape:
    def __init__(self, keys: Sequence[KeyState], now: float, cache_loop: str | None) -> None:
        self._keys = keys
        self._now = now
        self._cache_loop = cache_loop

    def collect(self) -> Iterator[Metric]:
        checked: list[tuple[dict[str, str], float]] = []
        for family in _values().collect():
            yield family
            if family.name == _families.LOOP_SUCCESS_NAME:
                checked += [
                    ({k: v for k, v in s.labels.items() if k != "loop"}, s.value)
                    for s in family.samples
                    if s.labels.get("loop") == self._cache_loop
                ]
        yield self._cache_ages(checked)
        yield from self._key_states()

    def _cache_ages(self, checked: list[tuple[dict[str, str], float]]) -> Metric:
        # Per process (pid) in multi-process mode, as the loop gauge they come from.
        names = sorted({name for labels, _at in checked for name in labels})
        family = GaugeMetricFamily(
            "jwks_cache_age_seconds",
            "Seconds since each process last confirmed its key-ring and client caches "
            "current against the store (what /readyz reports as cache_age_s).",
            labels=names,
        )
        for labels, at in checked:
            family.add_metric([labels.get(n, "") for n in names], max(0.0, self._now - at))
        return family

    def _key_states(self) -> Iterator[Metric]:
        labels = ("realm", "algo")
        age = GaugeMetricFamily(
            "jwks_signing_key_age_seconds",
            "Seconds since the active key of each realm and algorithm started signing.",
            labels=labels,
        )
        ready = GaugeMetricFamily(
            "jwks_next_key_ready",
            "1 if the next key of the realm and algorithm has been published long "
            "enough (JWKS max-age + 5 s) to take over signing, else 0.",
            labels=labels,
        )
        for state in self._keys:
            if _families.REALMS.label(state.realm) != state.realm:
                continue  # past the realm limit: no series of its own
            age.add_metric([state.realm, state.algo], state.age)
            if state.next_ready is not None:
                ready.add_metric([state.realm, state.algo], float(state.next_ready))
        yield age
        yield ready


def exposition(keys: Iterable[KeyState], *, now: float, cache_loop: str | None = None) -> bytes:
    """The Prometheus text exposition of every metric.

    :param keys: the answering process's signing keys (from its ring cache).
    :param now: when the key and cache ages are measured.
    :param cache_loop: the background loop whose last success is when the caches
        were last confirmed against the store (``jwks_cache_age_seconds``).
    """
    return prometheus_client.generate_latest(_Scrape(list(keys), now, cache_loop))


def clear_multiprocess_dir(path: Path) -> None:
    """Delete the value files a previous run left in ``path``: prometheus_client
    would add them to this run's."""
    for leftover in path.glob("*.db"):
        leftover.unlink(missing_ok=True)


def process_exiting() -> None:
    """Take this process's per-process gauges out of the scrape (multi-process mode)
    as it stops. A process killed without stopping leaves its last values."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
