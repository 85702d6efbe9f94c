"""``/.well-known/jwks.json`` for the default realm and every other realm."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from service.http._routing import Route
from service.http._state import services
from service.keys import RealmNotFound
from service.models import DEFAULT_REALM, REALM_NAME

__all__ = ["JWKS_MEDIA_TYPE", "if_none_match", "wellknown_routes"]

JWKS_MEDIA_TYPE: Final = "application/jwk-set+json"


def if_none_match(headers: list[tuple[bytes, bytes]], etag: str) -> bool:
    """Whether an ``If-None-Match`` header of the raw ASGI ``headers`` matches ``etag``."""
    for name, value in headers:
        if name == b"if-none-match":
            # RFC 9110 §13.1.2: If-None-Match uses the weak comparison.
            tags = {t.strip().removeprefix("W/") for t in value.decode("latin-1").split(",")}
            return "*" in tags or etag in tags
    return False


async def jwks(request: Request) -> Response:
    """The realm's JWKS: pre-serialised, with a strong ETag and a public max-age.

    :mod:`.hot` answers GET itself from the same document; this answers HEAD.
    """
    svc = services(request)
    realm = request.path_params.get("realm", DEFAULT_REALM)
    if not REALM_NAME.fullmatch(realm):
        raise RealmNotFound(realm)
    document = await svc.keys.jwks(realm)
    headers = {
        "Cache-Control": f"public, max-age={svc.jwks_max_age}",
        "ETag": document.etag,
        # Public data: browser-side verifiers may fetch it too.
        "Access-Control-Allow-Origin": "*",
    }
    if if_none_match(request.scope["headers"], document.etag):
        return Response(status_code=304, headers=headers)
    return Response(document.body, media_type=JWKS_MEDIA_TYPE, headers=headers)


def wellknown_routes() -> list[Route]:
    """The JWKS routes."""
    return [
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/realms/{realm}/.well-known/jwks.json", jwks, methods=["GET"]),
    ]
