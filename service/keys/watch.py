"""Keeping in-process caches current: one subscription to the store's change feed.

Every cache of store data (the key rings here, the OAuth clients in ``oauth``)
registers as a :class:`ChangeListener`. A message invalidates what it names at
once. After every (re)subscribe, and periodically in case a message was lost
anyway, every listener checks what it holds against the store's versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Final, Protocol

from service.clock import Clock
from service.keys._supervise import Supervised
from service.storage import Change, Store

__all__ = ["REVALIDATE_INTERVAL", "ChangeListener", "ChangeWatcher"]

log = logging.getLogger(__name__)

#: How often caches are version-checked even if no change message arrived.
REVALIDATE_INTERVAL: Final = 10.0
_REFOLLOW_DELAY: Final = 0.5


class ChangeListener(Protocol):
    """A cache that the change feed keeps current."""

    def changed(self, change: Change) -> None:
        """Forget what ``change`` names (called for every message but the resubscribe)."""
        ...

    async def revalidate(self) -> None:
        """Forget whatever no longer matches the store's versions.

        :raises Unavailable: the store did not answer (the watcher retries later;
            it logs and retries any other exception too).
        """
        ...


class ChangeWatcher:
    """Runs the subscription and the periodic version check for ``listeners``.

    The two run as separate :class:`Supervised` loops, so that a subscription that
    keeps failing (an ACL that forbids SUBSCRIBE, say) leaves the version check
    going: the caches then lag by at most ``interval`` instead of forever.
    """

    def __init__(
        self,
        store: Store,
        listeners: Sequence[ChangeListener],
        *,
        interval: float,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._listeners = tuple(listeners)
        self._interval = interval
        self.subscription = Supervised("cache-watch subscription", clock)
        self.revalidation = Supervised("cache revalidation", clock)
        # Set after every (re)subscribe: a message may have been lost meanwhile.
        self._due = asyncio.Event()

    @property
    def loops(self) -> tuple[Supervised, ...]:
        """The records of both loops (readiness reads them)."""
        return (self.subscription, self.revalidation)

    async def run(self) -> None:
        """Until cancelled: apply every change message; revalidate after each
        resubscribe and every ``interval``."""
        poller = asyncio.ensure_future(self.revalidation.run(self._revalidate_when_due))
        try:
            # A feed that ends (it should not) is followed again after a pause.
            await self.subscription.run(self._follow, every=_REFOLLOW_DELAY)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def revalidate(self) -> None:
        """Every listener checks what it holds against the store."""
        for listener in self._listeners:
            await listener.revalidate()

    async def _follow(self) -> None:
        async for change in self._store.changes():
            self.subscription.succeeded()
            if change.realm is not None:
                for listener in self._listeners:
                    listener.changed(change)
            else:
                self._due.set()

    async def _revalidate_when_due(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._due.wait(), self._interval)
        # Cleared before the check, so a resubscribe during it asks for another.
        self._due.clear()
        await self.revalidate()
