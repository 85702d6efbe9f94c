"""Keeping in-process caches current: one subscription to the store's change feed.

Every cache of store data (the key rings here, the OAuth clients in ``oauth``)
registers as a :class:`ChangeListener`. A message invalidates what it names at
once. After every (re)subscribe, and periodically in case a message was lost
anyway, every listener checks what it holds against the store's versions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final, Protocol

from service.errors import Unavailable
from service.storage import Change, Store

__all__ = ["REVALIDATE_INTERVAL", "ChangeListener", "ChangeWatcher"]

log = logging.getLogger(__name__)

#: How often caches are version-checked even if no change message arrived.
REVALIDATE_INTERVAL: Final = 10.0


class ChangeListener(Protocol):
    """A cache that the change feed keeps current."""

    def changed(self, change: Change) -> None:
        """Forget what ``change`` names (called for every message but the resubscribe)."""
        ...

    async def revalidate(self) -> None:
        """Forget whatever no longer matches the store's versions.

        :raises Unavailable: the store did not answer (the watcher retries later).
        """
        ...


class ChangeWatcher:
    """Runs the subscription and the periodic version check for ``listeners``."""

    def __init__(
        self, store: Store, listeners: Sequence[ChangeListener], *, interval: float
    ) -> None:
        self._store = store
        self._listeners = tuple(listeners)
        self._interval = interval

    async def run(self) -> None:
        """Until cancelled: apply every change message; revalidate after each resubscribe."""
        poller = asyncio.ensure_future(self._poll())
        try:
            async for change in self._store.changes():
                if change.realm is not None:
                    for listener in self._listeners:
                        listener.changed(change)
                    continue
                try:
                    await self.revalidate()
                except Unavailable:
                    # Keep serving what we have (verifiers need the JWKS most while
                    # the store is down); the periodic check catches up.
                    log.warning("cache revalidation failed; retrying in the background")
        finally:
            poller.cancel()

    async def revalidate(self) -> None:
        """Every listener checks what it holds against the store."""
        for listener in self._listeners:
            await listener.revalidate()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.revalidate()
            except Exception:
                log.warning("cache revalidation failed", exc_info=True)
