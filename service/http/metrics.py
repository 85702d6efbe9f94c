"""``GET /metrics``: the Prometheus text exposition, behind a bearer token if one is set.

With ``JWKS_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer
<token>`` (Prometheus: ``authorization: {credentials: ...}``); the token is
compared in constant time and never echoed. The exposition is built in a thread:
reading every worker's value files is file I/O the event loop must not wait on.
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response

from service import metrics
from service.errors import Unauthorized
from service.http._params import bearer_token
from service.http._routing import Route
from service.http._state import Services, services
from service.keys import key_states

__all__ = ["metrics_routes"]


async def scrape(request: Request) -> Response:
    """``GET /metrics``: every metric of every worker, and this worker's key gauges.

    :raises Unauthorized: a token is configured and the request lacks it.
    """
    svc = services(request)
    _authorize(request, svc)
    now = svc.clock.now()
    # Read here, on the loop that changes the cache; rendered in a thread.
    keys = await key_states(svc.keys.cache, now, svc.settings.publish_lead)
    loop = svc.freshness.name if svc.freshness is not None else None
    body = await asyncio.to_thread(metrics.exposition, keys, now=now, cache_loop=loop)
    return Response(body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def _authorize(request: Request, svc: Services) -> None:
    expected = svc.settings.metrics_token
    if expected is None:
        return
    given = bearer_token(request)
    if given is None:
        raise Unauthorized("a metrics token is required: Authorization: Bearer <token>")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("the metrics token is not valid")


def metrics_routes() -> list[Route]:
    """``/metrics``."""
    return [Route("/metrics", scrape, methods=["GET"])]
