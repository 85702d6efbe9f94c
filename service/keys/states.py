"""What a metrics scrape reports about the signing keys of each cached realm.

Computed from the process's ring cache at the scrape, never kept: how long each
active key has signed, and whether the next key of its algorithm has been
published long enough to take over (the promotion rule of ``policy``).
"""

from __future__ import annotations

from service import metrics
from service.keys import policy
from service.keys.cache import RingCache
from service.models import ALGOS, ASYMMETRIC_ALGOS

__all__ = ["key_states"]


async def key_states(cache: RingCache, now: float, lead: int) -> list[metrics.KeyState]:
    """One state per cached realm and algorithm that has an active key (an outdated
    ring is loaded again first).

    :param lead: how long a next key must be published before it may sign
        (``Settings.publish_lead``).
    """
    states: list[metrics.KeyState] = []
    for ring in await cache.rings():
        for algo in ALGOS:
            active = ring.active(algo)
            if active is None:
                continue
            started = active.activated_at if active.activated_at is not None else active.created_at
            # HS256 has no next keys: its verifiers hold the secret, not a JWKS.
            ready = (
                policy.ready_next(ring, algo, now, lead) is not None
                if algo in ASYMMETRIC_ALGOS
                else None
            )
            states.append(metrics.KeyState(ring.realm.name, algo, max(0.0, now - started), ready))
    return states
