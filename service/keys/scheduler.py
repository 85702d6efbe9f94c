"""Scheduled rotation: a background loop, run by every replica, safe without a lock.

Each pass asks, for every realm and asymmetric algorithm, whether a next key
should be published or promoted (``policy.rotation_due``), and applies it by
compare-and-swap. Replicas that lose the race find nothing due and do nothing;
at worst a replica generates a key it then throws away.
"""

from __future__ import annotations

import logging
from typing import Final

from service.clock import Clock
from service.errors import NotFound
from service.keys._supervise import Supervised
from service.keys.manager import KeyManager
from service.models import ASYMMETRIC_ALGOS

__all__ = ["RotationScheduler"]

log = logging.getLogger(__name__)

_PAGE: Final = 100
_MAX_TICK: Final = 30.0
_MIN_TICK: Final = 0.5


class RotationScheduler:
    """Calls :meth:`KeyManager.rotate_if_due` for every realm, every tick."""

    def __init__(
        self,
        keys: KeyManager,
        interval: int,
        tick: float | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._keys = keys
        self._interval = interval
        # Promotion happens at most one tick late; a tenth of the interval keeps
        # that small, and 30 s bounds the cost of a pass over many realms. With no
        # default interval (0), only realms with their own rotate: every 30 s.
        default_tick = min(_MAX_TICK, max(_MIN_TICK, interval / 10)) if interval else _MAX_TICK
        self.tick = tick or default_tick
        #: The loop's record (readiness reads it).
        self.loop = Supervised("key-rotation", clock)

    async def run(self) -> None:
        """Run passes until cancelled; a failed pass (a store outage, or anything
        else) is logged and retried after a back-off, never stops the loop."""
        await self.loop.run(self._pass, every=self.tick)

    async def _pass(self) -> None:
        await self.run_once()

    async def run_once(self) -> int:
        """One pass over every realm; returns how many rings it changed."""
        changed = 0
        cursor: str | None = None
        while True:
            page = await self._keys.list_realms(_PAGE, cursor)
            for realm in page.items:
                interval = (
                    self._interval if realm.rotation_interval is None else realm.rotation_interval
                )
                if not interval:
                    continue  # this realm does not rotate on schedule
                for algo in sorted(ASYMMETRIC_ALGOS):
                    try:
                        changed += await self._keys.rotate_if_due(realm.name, algo, interval)
                    except NotFound:
                        break  # deleted meanwhile
            if page.next_cursor is None:
                return changed
            cursor = page.next_cursor
