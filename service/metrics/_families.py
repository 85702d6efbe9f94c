"""The metric families, and their label children made once each.

``labels()`` costs more than an increment, so each family's children are kept
in a dict keyed by the label values (:class:`Children`). Every label takes its
values from a closed set but ``realm``: the first :data:`REALMS` ``.limit``
realms a process sees get a value of their own, the rest share ``_other``.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["LOOP_SUCCESS_NAME", "OTHER", "REALMS", "Children"]

#: The label value of realms past the limit, of unknown methods and of routes past
#: the bound. A realm name has no ``_`` (``models.REALM_NAME``): no realm is named so.
OTHER: Final = "_other"
#: Realms that get a ``realm`` label value of their own in each process, by default.
DEFAULT_MAX_REALMS: Final = 100
#: A fast service: most answers take well under a millisecond.
_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOOP_SUCCESS_NAME: Final = "jwks_background_loop_last_success_timestamp_seconds"

# A counter's _created series doubles the output and has no multi-process value.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

REQUESTS = Counter(
    "jwks_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ("route", "method", "status"),
)
DURATION = Histogram(
    "jwks_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ("route", "method"),
    buckets=_BUCKETS,
)
TOKENS = Counter(
    "jwks_tokens_issued_total",
    "Access tokens issued, by realm, client authentication method and token profile.",
    ("realm", "auth_method", "profile"),
)
AUTH_FAILURES = Counter(
    "jwks_client_auth_failures_total",
    "Client authentications that failed (invalid_client), by reason.",
    ("reason",),
)
INTROSPECTIONS = Counter(
    "jwks_introspections_total",
    "Tokens introspected, by result (active, inactive) and reason.",
    ("result", "reason"),
)
ROTATIONS = Counter(
    "jwks_key_rotations_total",
    "Signing keys replaced by a new one, by realm, algorithm and trigger.",
    ("realm", "algo", "trigger"),
)
STORE_ERRORS = Counter(
    "jwks_store_errors_total",
    "Store operations that failed because the store was unreachable, by kind of error.",
    ("kind",),
)
RECONNECTS = Counter(
    "jwks_store_reconnects_total",
    "Times the change subscription was established again after losing its connection.",
    ("topology",),
)
FAILOVERS = Counter(
    "jwks_store_failovers_total",
    "Times the Sentinel master changed address (seen when the change subscription reconnects).",
    ("topology",),
)
INVALIDATIONS = Counter(
    "jwks_cache_invalidations_total",
    "Cache entries invalidated, by cache (key_ring, client) and cause (message, "
    "revalidation, write).",
    ("cache", "cause"),
)
LOOP_SUCCESS = Gauge(
    LOOP_SUCCESS_NAME,
    "When each background loop last succeeded (Unix time), per process.",
    ("loop",),
    # One sample per live process (labelled pid): a stuck worker must not hide
    # behind the others.
    multiprocess_mode="liveall",
)
LOOP_FAILURES = Counter(
    "jwks_background_loop_failures_total",
    "Background loop passes that failed, by loop and kind (outage: the store was "
    "unreachable; fault: anything else).",
    ("loop", "kind"),
)

M = TypeVar("M", bound=MetricWrapperBase)


class _RealmLabels:
    """The realms with a label value of their own: the first ``limit`` seen."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._named: set[str] = set()

    def label(self, realm: str) -> str:
        """``realm``, or ``_other`` once ``limit`` other realms have a value."""
        if realm in self._named:
            return realm
        if len(self._named) < self.limit:
            self._named.add(realm)
            return realm
        return OTHER


REALMS: Final = _RealmLabels(DEFAULT_MAX_REALMS)


class Children(Generic[M]):
    """A metric's children by label values, each made once.

    ``realm_at`` is the position of a ``realm`` label: a realm past the limit is
    looked up as ``_other`` every time, and never kept under its own name, so the
    dict stays as small as the label sets.
    """

    def __init__(self, metric: M, realm_at: int | None = None) -> None:
        self._metric = metric
        self._realm_at = realm_at
        self._children: dict[tuple[str, ...], M] = {}

    def get(self, *values: str) -> M:
        """The child for these label values."""
        child = self._children.get(values)
        if child is None:
            child = self._miss(values)
        return child

    def _miss(self, values: tuple[str, ...]) -> M:
        at = self._realm_at
        if at is not None:
            values = (*values[:at], REALMS.label(values[at]), *values[at + 1 :])
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child
