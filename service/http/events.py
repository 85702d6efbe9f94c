"""The audit events under /v1: each realm's stream, and the global one.

A realm's events are read with any admin key that may act on the realm (another
realm answers 404, as everywhere under /v1); the global stream (realms created
and deleted, admin keys for every realm) only with a global admin key.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.audit import AuditEvent, event_object
from service.errors import Forbidden
from service.http._params import bearer_token, client_address, page_params
from service.http._routing import Route
from service.http._state import services
from service.http.admin import admin_for_realm
from service.models import Page

__all__ = ["event_routes"]


def _page(page: Page[AuditEvent]) -> Response:
    return JSONResponse(
        {"data": [event_object(e) for e in page.items], "next_cursor": page.next_cursor}
    )


async def list_realm_events(request: Request) -> Response:
    """``GET /v1/realms/{realm}/events``: newest first, cursor-paginated."""
    svc, realm = await admin_for_realm(request)
    limit, cursor = page_params(request)
    return _page(await svc.audit.page(realm, limit, cursor))


async def list_events(request: Request) -> Response:
    """``GET /v1/events``: the global stream, newest first (a global admin key only)."""
    svc = services(request)
    admin = await svc.admins.authenticate(bearer_token(request), address=client_address(request))
    if admin.realm is not None:
        raise Forbidden(
            "a realm-scoped admin key cannot read the global events; "
            f"its realm's are at /v1/realms/{admin.realm}/events"
        )
    limit, cursor = page_params(request)
    return _page(await svc.audit.page_global(limit, cursor))


def event_routes() -> list[Route]:
    """The /v1 event routes."""
    return [
        Route("/v1/events", list_events, methods=["GET"]),
        Route("/v1/realms/{realm}/events", list_realm_events, methods=["GET"]),
    ]
