"""The ASGI application: routes, middleware, error handlers and lifespan, wired once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from service import logs, metrics
from service.bootstrap import open_runtime
from service.clock import Clock, SystemClock
from service.config import Settings
from service.http import (
    AccessLog,
    BodySizeLimit,
    HotPaths,
    Services,
    admin_routes,
    client_routes,
    event_routes,
    exception_handlers,
    health_routes,
    metrics_routes,
    oauth_routes,
    openapi_routes,
    wellknown_routes,
)
from service.keys import RotationScheduler, usable_cores
from service.models import DEFAULT_REALM
from service.storage import Store

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
) -> ASGIApp:
    """Build the app. ``store``, ``clock`` and the tracing ``tracer_provider``
    (with ``JWKS_OTEL`` on) are injectable for tests.

    The lifespan opens the store (starting the embedded server when there is no
    ``JWKS_REDIS_URL``), and keeps the key-ring and client caches current from the
    change feed. The hot paths (JWKS, token, introspection) and the access log sit
    in front of the framework (:class:`~service.http.HotPaths`).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        time = clock or SystemClock()
        async with open_runtime(settings, store=store, clock=time) as runtime:
            # Readiness waits for the ring it serves most; loaded now, it is served
            # from memory even if the store goes away before the first request.
            await runtime.keys.cache.get(DEFAULT_REALM)
            # Each task runs Supervised loops, which log and retry every failure and
            # never end but by cancellation; readiness reads their records.
            loops = list(runtime.watcher.loops)
            tasks = [asyncio.create_task(runtime.watcher.run(), name="cache-watch")]
            # Always: with JWKS_ROTATION_INTERVAL=0 the realms that set an interval of
            # their own still rotate on it (the others do not).
            scheduler = RotationScheduler(runtime.keys, settings.rotation_interval, clock=time)
            loops.append(scheduler.loop)
            tasks.append(asyncio.create_task(scheduler.run(), name="key-rotation"))
            try:
                yield {
                    "services": Services(
                        settings=settings,
                        keys=runtime.keys,
                        signer=runtime.signer,
                        admins=runtime.admins,
                        store=runtime.store,
                        clients=runtime.clients,
                        authenticator=runtime.authenticator,
                        grant=runtime.grant,
                        introspector=runtime.introspector,
                        audit=runtime.audit,
                        loops=tuple(loops),
                        freshness=runtime.watcher.revalidation,
                        clock=time,
                    )
                }
            finally:
                await _stop(tasks)
                log.info("stopped the background loops: %s", ", ".join(t.get_name() for t in tasks))
                metrics.process_exiting()

    metrics.limit_realms(settings.metrics_realms)
    handlers = exception_handlers()
    app = Starlette(
        routes=[
            *wellknown_routes(),
            *oauth_routes(),
            *health_routes(),
            *metrics_routes(),
            *admin_routes(),
            *client_routes(),
            *event_routes(),
            *openapi_routes(),
        ],
        middleware=[Middleware(BodySizeLimit)],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    # The router would answer a path with a trailing slash by a redirect built from
    # the Host header, which a caller chooses: a redirect to any host it likes. A
    # path is either a route or a 404.
    app.router.redirect_slashes = False
    access_log = AccessLog(log_format=settings.log_format) if settings.access_log else None
    hot = HotPaths(
        app,
        handlers,
        access_log=access_log,
        max_realms=settings.cache_realms,
        token_concurrency=2 * usable_cores(),
    )
    if settings.otel:
        from service.http.tracing import traced

        return traced(hot, tracer_provider)
    return hot


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the background tasks until they end.

    On Python 3.11 a cancel that arrives as an awaited operation finishes can be
    lost (``asyncio.wait_for`` returns the result instead; redis-py wraps every
    command in it), and a loop that lost one would hold the shutdown for ever. So
    each task is cancelled again until it is done.
    """
    for task in tasks:
        task.cancel()
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app_from_env() -> ASGIApp:
    """Factory for uvicorn workers: settings from the environment.

    A worker is a new interpreter (spawned): its logging is configured here.
    """
    settings = Settings.from_env()
    logs.configure(settings.log_format, settings.log_level)
    return create_app(settings)
