"""Liveness and readiness probes.

Readiness means "this process can serve": the default realm's key ring is in
memory and every background loop is healthy. The store's state is reported, not
decisive: JWKS and client_secret tokens are served from memory while the store
is away (a Sentinel failover takes seconds), and taking every replica out of
the Service at the first failed PING would turn a store blip into an outage.
Only once the caches have gone unconfirmed by the store for longer than
``JWKS_JWKS_MAX_AGE`` (what verifiers may cache anyway) while the store is away
does a replica turn unready. A replica that is shutting down (draining, see
:mod:`service.http.lifecycle`) is unready too, while it still serves.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.http._routing import Route
from service.http._state import Services, services
from service.http.lifecycle import DRAIN
from service.models import DEFAULT_REALM

__all__ = ["PING_TIMEOUT", "health_routes"]

log = logging.getLogger(__name__)

#: How long readiness waits for PING: probes time out after a second or so, and a
#: stalled store must not make the probe stall with it.
PING_TIMEOUT: Final = 0.5


async def healthz(request: Request) -> Response:
    """Alive: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready (200) or not (503), with the reasons, the store's state and the caches' age."""
    found = services(request)
    store = await _store_state(found)
    age = found.cache_age()
    reasons = _reasons(found, store, age)
    if not await _default_ring_held(found):
        reasons.insert(0, "the default realm's key ring is not loaded")
    if DRAIN.active:
        reasons.insert(0, "shutting down")
    body = {
        "status": "unready" if reasons else "ready",
        "store": store,
        "reasons": reasons,
        "cache_age_s": round(age, 1),
    }
    return JSONResponse(body, status_code=503 if reasons else 200)


def _reasons(found: Services, store: str, age: float) -> list[str]:
    reasons: list[str] = []
    reasons.extend(loop.reason for loop in found.loops if loop.reason is not None)
    bound = found.settings.jwks_max_age
    if store != "up" and age > bound:
        reasons.append(
            f"the store is {store} and the caches were last checked {age:.0f} s ago,"
            f" longer than JWKS_JWKS_MAX_AGE ({bound} s)"
        )
    return reasons


async def _default_ring_held(found: Services) -> bool:
    """The default ring is in memory, or loads within :data:`PING_TIMEOUT`.

    The lifespan loads it before the first request; with more realms than
    ``JWKS_CACHE_REALMS`` it may be evicted later, and a replica must not turn
    unready (and so get no request that would bring it back) for that alone.
    """
    if found.keys.cache.holds(DEFAULT_REALM):
        return True
    try:
        await asyncio.wait_for(found.keys.prepared(DEFAULT_REALM), PING_TIMEOUT)
    except Exception:  # whatever the store does, the probe answers
        log.debug("readiness could not load the default ring", exc_info=True)
        return False
    return True


async def _store_state(found: Services) -> str:
    """``up``, ``down`` (an error) or ``slow`` (no answer within :data:`PING_TIMEOUT`)."""
    try:
        await asyncio.wait_for(found.store.ping(), PING_TIMEOUT)
    except TimeoutError:
        return "slow"
    except Exception:  # whatever the store says, the probe answers
        log.debug("readiness PING failed", exc_info=True)
        return "down"
    return "up"


def health_routes() -> list[Route]:
    """``/healthz`` and ``/readyz``."""
    return [Route("/healthz", healthz), Route("/readyz", readyz)]
