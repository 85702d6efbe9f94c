"""Prometheus metrics: the one-line calls the layers make, and the scrape.

The only package that imports ``prometheus_client``. Each layer reports what it
sees with one call (``metrics.token_issued(realm, method, profile)``); ``GET
/metrics`` renders :func:`exposition`. The families and their label children
are in ``_families``; a scrape's composition is in ``_scrape``.

Under ``serve --workers N`` each worker is a process of its own, and a scrape
reaches one of them. ``prometheus_client``'s multi-process mode makes that one
report them all: with ``PROMETHEUS_MULTIPROC_DIR`` set before it is imported,
every process writes its values to files there and a scrape adds them up
(counters and histograms summed; the loop gauges ``liveall``, one sample per
live process, labelled ``pid``). ``serve`` sets the variable for its workers.
"""

from __future__ import annotations

import sys
from typing import Final

import prometheus_client
from prometheus_client import Counter, Histogram

from service.metrics import _families as f
from service.metrics._families import DEFAULT_MAX_REALMS, OTHER
from service.metrics._scrape import (
    KeyState,
    clear_multiprocess_dir,
    exposition,
    multiprocess_mode,
    process_exiting,
)

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_REALMS",
    "OTHER",
    "KeyState",
    "cache_invalidated",
    "clear_multiprocess_dir",
    "client_auth_failed",
    "exposition",
    "introspected",
    "key_rotated",
    "limit_realms",
    "loop_failed",
    "loop_succeeded",
    "multiprocess_mode",
    "observe_request",
    "process_exiting",
    "store_error",
    "store_failover",
    "store_reconnected",
    "token_issued",
]

#: The exposition's media type (the Prometheus text format).
CONTENT_TYPE: Final = prometheus_client.CONTENT_TYPE_LATEST
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: A bound on distinct routes, should a caller ever pass paths instead of templates.
_MAX_ROUTES: Final = 256

_requests: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
_routes: set[str] = set()
_tokens = f.Children(f.TOKENS, realm_at=0)
_auth_failures = f.Children(f.AUTH_FAILURES)
_introspections = f.Children(f.INTROSPECTIONS)
_rotations = f.Children(f.ROTATIONS, realm_at=0)
_store_errors = f.Children(f.STORE_ERRORS)
_reconnects = f.Children(f.RECONNECTS)
_failovers = f.Children(f.FAILOVERS)
_invalidations = f.Children(f.INVALIDATIONS)
_loop_success = f.Children(f.LOOP_SUCCESS)
_loop_failures = f.Children(f.LOOP_FAILURES)


def limit_realms(limit: int) -> None:
    """Give at most ``limit`` realms (per process; 0: no limit) a ``realm`` label
    value of their own; the others are counted as ``_other``. Realms already named
    keep theirs."""
    f.REALMS.limit = limit or sys.maxsize


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration.

    :param route: the matched route's template (``/realms/{realm}/oauth/token``),
        never the path; ``""`` for a path that no route matched.
    """
    pair = _requests.get((route, method, status))
    if pair is None:
        pair = _request_children(route, method, status)
    pair[0].inc()
    pair[1].observe(seconds)


def _request_children(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    # Only label values from closed sets are kept: a request with a made-up method
    # (or a route past the bound) is counted as _other, and looked up so every time.
    if method not in _METHODS:
        method = OTHER
    if route not in _routes:
        if len(_routes) < _MAX_ROUTES:
            _routes.add(route)
        else:
            route = OTHER
    key = (route, method, status)
    pair = _requests.get(key)
    if pair is None:
        pair = _requests[key] = (
            f.REQUESTS.labels(route, method, str(status)),
            f.DURATION.labels(route, method),
        )
    return pair


def token_issued(realm: str, auth_method: str, profile: str) -> None:
    """An access token was issued (``profile``: ``rfc9068`` or ``jitsi``)."""
    _tokens.get(realm, auth_method, profile).inc()


def client_auth_failed(reason: str) -> None:
    """A client failed to authenticate; ``reason`` is one of a closed set."""
    _auth_failures.get(reason).inc()


def introspected(active: bool, reason: str) -> None:
    """A token was introspected: active (``reason`` ``valid``) or not, and why."""
    _introspections.get("active" if active else "inactive", reason).inc()


def key_rotated(realm: str, algo: str, trigger: str) -> None:
    """A new key took over signing (``trigger``: ``scheduled``, ``manual``, ``immediate``)."""
    _rotations.get(realm, algo, trigger).inc()


def store_error(kind: str) -> None:
    """A store operation failed because the store was unreachable."""
    _store_errors.get(kind).inc()


def store_reconnected(topology: str) -> None:
    """The change subscription was established again after a loss."""
    _reconnects.get(topology).inc()


def store_failover(topology: str) -> None:
    """The store's master moved to another address."""
    _failovers.get(topology).inc()


def cache_invalidated(cache: str, cause: str, entries: int = 1) -> None:
    """``entries`` entries of ``cache`` were invalidated, for ``cause``."""
    _invalidations.get(cache, cause).inc(entries)


def loop_succeeded(loop: str, at: float) -> None:
    """A background loop succeeded at ``at`` (Unix time)."""
    _loop_success.get(loop).set(at)


def loop_failed(loop: str, outage: bool) -> None:
    """A background loop's pass failed: a store outage, or another fault."""
    _loop_failures.get(loop, "outage" if outage else "fault").inc()
