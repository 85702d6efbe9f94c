"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.http._state import services

__all__ = ["health_routes"]


async def healthz(request: Request) -> Response:
    """Alive: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready: the store answers PING (else ``StoreUnavailable`` renders a 503)."""
    await services(request).store.ping()
    return JSONResponse({"status": "ready"})


def health_routes() -> list[Route]:
    """``/healthz`` and ``/readyz``."""
    return [Route("/healthz", healthz), Route("/readyz", readyz)]
