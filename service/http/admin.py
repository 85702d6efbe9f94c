"""The admin API under /v1: realms and their JWT keys.

Every endpoint authenticates the bearer admin key first. A realm-scoped key
sees only its realm: any other realm answers 404, exactly as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.audit import Actor
from service.errors import Forbidden, InvalidInput
from service.http._params import (
    actor_of,
    bearer_token,
    client_address,
    page_params,
    read_json_object,
)
from service.http._render import key_object, realm_object
from service.http._routing import Route
from service.http._state import Services, services
from service.keys import (
    CreatedKey,
    RealmNotFound,
    parse_algo,
    parse_key_request,
    parse_realm_name,
)
from service.models import REALM_NAME, AdminKey, Page, Realm

__all__ = ["acting_on_realm", "admin_for_realm", "admin_routes"]

#: On a response carrying an HS256 secret: no cache (browser, proxy) may keep it.
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Bodies that are a public key file to upload, not JSON.
_PEM_MEDIA: Final = frozenset({"application/x-pem-file", "text/plain"})
#: What ``curl --data-binary @file`` sends when no Content-Type is given.
_FORM: Final = "application/x-www-form-urlencoded"
#: The upload fields a key file body takes as query parameters.
_PEM_UPLOAD_FIELDS: Final = frozenset(
    {"algo", "kid", "name", "expected_issuer", "expected_audience"}
)
_KEY_BODY: Final = (
    "a JSON object, or a PEM public key sent as application/x-pem-file "
    "(curl --data-binary @k.pub -H 'Content-Type: application/x-pem-file')"
)


async def _admin(request: Request) -> tuple[Services, AdminKey]:
    svc = services(request)
    return svc, await svc.admins.authenticate(
        bearer_token(request), address=client_address(request)
    )


async def admin_for_realm(request: Request) -> tuple[Services, str]:
    """The services and the realm named in the path, if the admin key may act on it.

    :raises Unauthorized: no valid admin key.
    :raises RealmNotFound: the key is scoped to another realm (or the name is invalid).
    """
    svc, realm, _actor = await acting_on_realm(request)
    return svc, realm


async def acting_on_realm(request: Request) -> tuple[Services, str, Actor]:
    """:func:`admin_for_realm`, and the actor its changes are recorded under."""
    svc, admin = await _admin(request)
    realm: str = request.path_params["realm"]
    if not admin.allows(realm) or not REALM_NAME.fullmatch(realm):
        raise RealmNotFound(realm)
    return svc, realm, actor_of(request, admin)


def _page(data: list[object], cursor: str | None) -> Response:
    return JSONResponse({"data": data, "next_cursor": cursor})


async def list_realms(request: Request) -> Response:
    """``GET /v1/realms``: realms by name (a realm-scoped key sees its own)."""
    svc, admin = await _admin(request)
    limit, cursor = page_params(request)
    if admin.realm is not None:
        page = Page((await svc.keys.realm(admin.realm),), None)
    else:
        if cursor is not None and not REALM_NAME.fullmatch(cursor):
            raise InvalidInput("cursor is not one this API returned", field="cursor")
        page = await svc.keys.list_realms(limit, cursor)
    return _page([realm_object(r, svc.issuer) for r in page.items], page.next_cursor)


async def create_realm(request: Request) -> Response:
    """``POST /v1/realms {"name"}``: a realm with its first RS256 key."""
    svc, admin = await _admin(request)
    if admin.realm is not None:
        raise Forbidden("a realm-scoped admin key cannot create realms")
    body = await read_json_object(request)
    name = parse_realm_name(body.get("name"))
    realm: Realm = await svc.keys.create_realm(name, actor=actor_of(request, admin))
    return JSONResponse(realm_object(realm, svc.issuer), status_code=201)


async def get_realm(request: Request) -> Response:
    """``GET /v1/realms/{realm}``."""
    svc, realm = await admin_for_realm(request)
    return JSONResponse(realm_object(await svc.keys.realm(realm), svc.issuer))


async def configure_realm(request: Request) -> Response:
    """``PATCH /v1/realms/{realm} {"rotation_interval": seconds | null}``."""
    svc, realm, actor = await acting_on_realm(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"rotation_interval"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    interval = body.get("rotation_interval")
    lead = svc.settings.publish_lead
    if interval is not None and (
        not isinstance(interval, int)
        or isinstance(interval, bool)
        or not (interval == 0 or lead < interval <= 10 * 365 * 86_400)
    ):
        raise InvalidInput(
            f"rotation_interval must be null, 0 (off) or whole seconds over {lead} "
            "(JWKS_JWKS_MAX_AGE + 5)",
            field="rotation_interval",
        )
    updated = await svc.keys.configure_realm(realm, rotation_interval=interval, actor=actor)
    return JSONResponse(realm_object(updated, svc.issuer))


async def delete_realm(request: Request) -> Response:
    """``DELETE /v1/realms/{realm}``: the realm, its keys, clients and admin keys
    (``default`` cannot be deleted: 409)."""
    svc, realm, actor = await acting_on_realm(request)
    await svc.keys.delete_realm(realm, actor=actor)
    return Response(status_code=204)


async def list_keys(request: Request) -> Response:
    """``GET /v1/realms/{realm}/jwt_keys``: newest first, cursor-paginated."""
    svc, realm = await admin_for_realm(request)
    limit, cursor = page_params(request)
    page = await svc.keys.list_keys(realm, limit, cursor)
    return _page([key_object(k) for k in page.items], page.next_cursor)


async def create_key(request: Request) -> Response:
    """``POST /v1/realms/{realm}/jwt_keys``: generate, import a secret, or upload a public key
    (as JSON, or as the key file itself: :func:`_key_request`)."""
    svc, realm, actor = await acting_on_realm(request)
    spec = parse_key_request(await _key_request(request))
    created = await svc.keys.create_key(realm, spec, actor=actor)
    return _created_key(created, status_code=201)


async def _key_request(request: Request) -> dict[str, Any]:
    """The key request: the JSON body, or a public key file sent as the body.

    A body sent as ``application/x-pem-file`` or ``text/plain`` is the public key to
    upload (PEM, OpenSSH or certificate), as if it were the JSON ``public_key``; the
    query parameters give the other upload fields (:data:`_PEM_UPLOAD_FIELDS`) and the
    algo, if not given, is inferred from the key.

    So is a PEM body sent as ``application/x-www-form-urlencoded``: that is what
    ``curl --data-binary @k.pub`` sends without ``-H``, which is exactly what users
    type. It is safe: it is not a form, and never parsed as one (a body starting with
    ``-----BEGIN`` cannot be a form with fields of ours), and a browser cannot send it
    cross-site with the admin key's Authorization header without a CORS preflight.
    """
    body = await request.body()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in _PEM_MEDIA or (media == _FORM and body.lstrip().startswith(b"-----BEGIN")):
        return _pem_upload(body, request.query_params)
    return await read_json_object(request, expected=_KEY_BODY)


def _pem_upload(body: bytes, query: Mapping[str, str]) -> dict[str, Any]:
    """A key file body and the query parameters as a JSON key request."""
    unknown = sorted(set(query) - _PEM_UPLOAD_FIELDS)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter {unknown[0]!r} (with a key file body: "
            f"{', '.join(sorted(_PEM_UPLOAD_FIELDS))})",
            field=unknown[0],
        )
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidInput("a key file body must be ASCII text (PEM)", field="public_key") from exc
    return {**query, "public_key": text}


async def rotate_keys(request: Request) -> Response:
    """``POST /v1/realms/{realm}/jwt_keys/rotate {"algo", "immediate"?}``: the new active key
    (with hs256, which rotates only with immediate, its new secret, once)."""
    svc, realm, actor = await acting_on_realm(request)
    body = await read_json_object(request)
    algo = parse_algo(body.get("algo", "rs256"))
    immediate = body.get("immediate", False)
    if not isinstance(immediate, bool):
        raise InvalidInput("immediate must be true or false", field="immediate")
    return _created_key(await svc.keys.rotate_key(realm, algo, immediate=immediate, actor=actor))


def _created_key(created: CreatedKey, status_code: int = 200) -> Response:
    headers = _NO_STORE if created.secret is not None else None
    return JSONResponse(
        key_object(created.key, created.secret), status_code=status_code, headers=headers
    )


async def get_key(request: Request) -> Response:
    """``GET /v1/realms/{realm}/jwt_keys/{id}``."""
    svc, realm = await admin_for_realm(request)
    return JSONResponse(key_object(await svc.keys.get_key(realm, request.path_params["id"])))


async def delete_key(request: Request) -> Response:
    """``DELETE /v1/realms/{realm}/jwt_keys/{id}[?force=true]``: expire, or remove now
    (409 for the active hs256 key: rotate it first)."""
    svc, realm, actor = await acting_on_realm(request)
    force = request.query_params.get("force", "false").lower()
    if force not in ("true", "false"):
        raise InvalidInput("force must be true or false", field="force")
    key = await svc.keys.delete_key(
        realm, request.path_params["id"], force=force == "true", actor=actor
    )
    return JSONResponse(key_object(key), status_code=202)


def admin_routes() -> list[Route]:
    """The /v1 routes."""
    return [
        Route("/v1/realms", list_realms, methods=["GET"]),
        Route("/v1/realms", create_realm, methods=["POST"]),
        Route("/v1/realms/{realm}", get_realm, methods=["GET"]),
        Route("/v1/realms/{realm}", configure_realm, methods=["PATCH"]),
        Route("/v1/realms/{realm}", delete_realm, methods=["DELETE"]),
        Route("/v1/realms/{realm}/jwt_keys", list_keys, methods=["GET"]),
        Route("/v1/realms/{realm}/jwt_keys", create_key, methods=["POST"]),
        Route("/v1/realms/{realm}/jwt_keys/rotate", rotate_keys, methods=["POST"]),
        Route("/v1/realms/{realm}/jwt_keys/{id}", get_key, methods=["GET"]),
        Route("/v1/realms/{realm}/jwt_keys/{id}", delete_key, methods=["DELETE"]),
    ]
