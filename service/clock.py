"""Time, injected: every component that needs "now" takes a ``Clock``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock", "rfc3339"]


class Clock(Protocol):
    """A source of the current time, in seconds since the epoch."""

    def now(self) -> float:
        """Return the current time as a POSIX timestamp."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()


def rfc3339(timestamp: float | None) -> str | None:
    """Render a POSIX timestamp as an RFC 3339 UTC string (``None`` stays ``None``)."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
