"""The admin API for a realm's OAuth clients under /v1 (registration is at the issuer)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.errors import InvalidInput
from service.http._params import page_params, read_json_object
from service.http._render import client_object
from service.http._routing import Route
from service.http.admin import acting_on_realm, admin_for_realm
from service.oauth.errors import InvalidClientMetadata

__all__ = ["client_routes"]


async def list_clients(request: Request) -> Response:
    """``GET /v1/realms/{realm}/clients``: newest first, cursor-paginated."""
    svc, realm = await admin_for_realm(request)
    limit, cursor = page_params(request)
    page = await svc.clients.list(realm, limit, cursor)
    return JSONResponse(
        {"data": [client_object(c) for c in page.items], "next_cursor": page.next_cursor}
    )


async def get_client(request: Request) -> Response:
    """``GET /v1/realms/{realm}/clients/{client_id}``."""
    svc, realm = await admin_for_realm(request)
    return JSONResponse(client_object(await svc.clients.get(realm, request.path_params["id"])))


async def delete_client(request: Request) -> Response:
    """``DELETE /v1/realms/{realm}/clients/{client_id}``."""
    svc, realm, actor = await acting_on_realm(request)
    await svc.clients.delete(realm, request.path_params["id"], actor=actor)
    return Response(status_code=204)


async def replace_jwks(request: Request) -> Response:
    """``PUT /v1/realms/{realm}/clients/{client_id}/jwks {"keys": [...]}``: key rollover."""
    svc, realm, actor = await acting_on_realm(request)
    body = await read_json_object(request)
    try:
        client = await svc.clients.replace_jwks(realm, request.path_params["id"], body, actor=actor)
    except InvalidClientMetadata as exc:  # the admin API answers in problem+json
        raise InvalidInput(exc.detail, field="keys") from exc
    return JSONResponse(client_object(client))


def client_routes() -> list[Route]:
    """The /v1 client routes."""
    base = "/v1/realms/{realm}/clients"
    return [
        Route(base, list_clients, methods=["GET"]),
        Route(f"{base}/{{id}}", get_client, methods=["GET"]),
        Route(f"{base}/{{id}}", delete_client, methods=["DELETE"]),
        Route(f"{base}/{{id}}/jwks", replace_jwks, methods=["PUT"]),
    ]
