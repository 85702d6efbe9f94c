"""Background loops that survive their failures and report their health.

A background task that ends on an unexpected exception ends silently: asyncio
only logs it when the task is garbage-collected, and the replica goes on
serving whatever its caches held when it died. :class:`Supervised` runs a loop
body again and again instead: every failure is logged (with its traceback
unless it is a store outage), followed by an exponential, jittered back-off;
and the loop's record (last success, last error, consecutive failures) is what
``/readyz`` reads.

A store outage (:class:`~service.errors.Unavailable`) is logged and backed off
like any failure but does not make the loop unhealthy: every loop fails while
the store is away, and readiness judges an outage by its length instead (see
``service.http.health``). Any other exception is a fault this replica may not
recover from (an ACL that forbids SUBSCRIBE, a bug), so after
:data:`MAX_FAILURES` in a row the loop reports itself unhealthy until its next
success.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Final

from service import metrics
from service.clock import Clock, SystemClock
from service.errors import Unavailable

__all__ = ["MAX_FAILURES", "Supervised"]

log = logging.getLogger(__name__)

#: Consecutive non-outage failures after which a loop is unhealthy (with the
#: back-off below, about 15 s of failing).
MAX_FAILURES: Final = 5
_MIN_BACKOFF: Final = 0.5
_MAX_BACKOFF: Final = 30.0


class Supervised:
    """The record of one background loop, and the runner that keeps it going."""

    def __init__(
        self,
        name: str,
        clock: Clock | None = None,
        *,
        min_backoff: float = _MIN_BACKOFF,
        max_backoff: float = _MAX_BACKOFF,
        max_failures: int = MAX_FAILURES,
    ) -> None:
        self.name = name
        self._clock = clock or SystemClock()
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._max_failures = max_failures
        self.started_at = self._clock.now()
        #: When a pass last succeeded (``None``: not yet).
        self.last_success: float | None = None
        #: The last failure, as ``"ExceptionName: message"``.
        self.last_error: str | None = None
        #: Failures in a row (outages included), reset by a success.
        self.failures = 0
        # Failures in a row that were not outages: only these make the loop unhealthy.
        self._faults = 0

    @property
    def healthy(self) -> bool:
        """False once :data:`MAX_FAILURES` non-outage failures happened in a row."""
        return self._faults < self._max_failures

    @property
    def reason(self) -> str | None:
        """Why the loop is unhealthy, or ``None`` while it is healthy."""
        if self.healthy:
            return None
        return f"{self.name}: {self._faults} failures in a row, last {self.last_error}"

    def succeeded(self) -> None:
        """Record a success (bodies that never return call it as they make progress)."""
        self.last_success = self._clock.now()
        self.failures = self._faults = 0
        metrics.loop_succeeded(self.name, self.last_success)

    def failed(self, exc: Exception) -> float:
        """Record and log ``exc``; returns the back-off to wait before the next try."""
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        metrics.loop_failed(self.name, outage=isinstance(exc, Unavailable))
        if isinstance(exc, Unavailable):
            # Expected during an outage, and every loop says so: one line each.
            log.warning("%s failed: the store is unavailable; retrying", self.name)
        else:
            self._faults += 1
            log.exception("%s failed (%d in a row); retrying", self.name, self.failures)
        # The exponent is capped: 2.0 ** 1024 overflows, and a loop may fail for days.
        doubled = self._min_backoff * 2.0 ** min(self.failures - 1, 32)
        backoff: float = min(self._max_backoff, doubled)
        # Jitter, so replicas that failed together do not retry in lockstep.
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - not for secrets

    async def run(self, body: Callable[[], Awaitable[None]], *, every: float = 0.0) -> None:
        """Until cancelled: ``await body()``, then wait ``every`` seconds after a
        success or the back-off after a failure, and again."""
        while True:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure is logged and retried
                _raise_if_cancelled()
                await asyncio.sleep(self.failed(exc))
                continue
            _raise_if_cancelled()
            self.succeeded()
            await asyncio.sleep(every)


def _raise_if_cancelled() -> None:
    """Stop a loop whose cancellation its body lost.

    On Python 3.11, ``asyncio.wait_for`` returns the result of an operation that
    completes as the cancellation arrives and drops the cancellation (fixed in
    3.12); redis-py wraps every command it sends in one. The loop would then go
    on for ever, and the lifespan shutdown that awaits it with it: ``serve`` on a
    port already taken hung so (issue 9). The task still counts the request.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
