"""The OAuth endpoints of each realm, under its issuer: token, register, discovery, ASAP keys.

Issuer of ``default`` is ``JWKS_ISSUER``; of realm R, ``JWKS_ISSUER/realms/R``.
Errors on these endpoints are RFC 6749 §5.2 JSON: other service errors are
translated into OAuth errors here.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.errors import Conflict, InvalidInput, NotFound, Unauthorized, Unavailable
from service.http._params import bearer_token, read_json_object
from service.http._render import client_object
from service.http._state import services
from service.keys import RealmNotFound
from service.models import DEFAULT_REALM, REALM_NAME
from service.oauth.client_auth import AssertionPolicy
from service.oauth.discovery import server_metadata
from service.oauth.errors import InvalidRequest, OAuthError, UnsupportedGrantType

__all__ = ["introspect", "oauth_routes", "token"]

_FORM: Final = "application/x-www-form-urlencoded"
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_KID_DIGEST: Final = re.compile(r"[0-9a-fA-F]{64}")

Endpoint = Callable[[Request], Awaitable[Response]]


class _NotFound(OAuthError):
    status = 404


class _Unavailable(OAuthError):
    error = "temporarily_unavailable"
    status = 503
    retry_after = 1


class _InvalidToken(OAuthError):
    error = "invalid_token"
    status = 401


def _oauth_errors(endpoint: Endpoint) -> Endpoint:
    """Answer every failure of an OAuth endpoint in the §5.2 format."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except OAuthError:
            raise
        except NotFound as exc:
            raise _NotFound(exc.detail) from exc
        except Unavailable as exc:
            unavailable = _Unavailable(exc.detail)
            unavailable.retry_after = exc.retry_after
            raise unavailable from exc
        except Unauthorized as exc:
            raise _InvalidToken(exc.detail) from exc
        except (InvalidInput, Conflict) as exc:
            raise InvalidRequest(exc.detail) from exc

    return wrapper


def _realm(request: Request) -> str:
    realm: str = request.path_params.get("realm", DEFAULT_REALM)
    if not REALM_NAME.fullmatch(realm):
        raise RealmNotFound(realm)
    return realm


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded body; RFC 6749 §3.2: a parameter must not appear twice."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
        raise InvalidRequest(f"the body must be {_FORM}")
    try:
        pairs = parse_qsl(
            (await request.body()).decode(), keep_blank_values=True, max_num_fields=100
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("the body is not a valid form") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(f"{name} is repeated")
        form[name] = value
    return form


@_oauth_errors
async def token(request: Request) -> Response:
    """``POST {issuer}/oauth/token``: client_credentials (RFC 6749 §4.4)."""
    svc = services(request)
    realm = _realm(request)
    await svc.keys.realm(realm)
    form = await _form(request)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    if grant_type != "client_credentials":
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
    issuer = svc.settings.issuer_of(realm)
    policy = AssertionPolicy(
        issuer=issuer,
        token_endpoint=f"{issuer}/oauth/token",
        max_lifetime=svc.settings.max_assertion_lifetime,
        strict_audience=svc.settings.strict_assertion_audience,
    )
    client = await svc.authenticator.authenticate(
        realm, form, request.headers.get("authorization"), policy
    )
    response = await svc.grant.issue(realm, issuer, client, form)
    return JSONResponse(response.as_dict(), headers=_NO_STORE)


@_oauth_errors
async def register(request: Request) -> Response:
    """``POST {issuer}/oauth/register`` (RFC 7591): the initial access token is an admin key."""
    svc = services(request)
    realm = _realm(request)
    admin = await svc.admins.authenticate(bearer_token(request))
    if not admin.allows(realm):
        raise RealmNotFound(realm)
    metadata = await read_json_object(request)
    client, client_secret = await svc.clients.register(realm, metadata)
    return JSONResponse(client_object(client, client_secret), status_code=201, headers=_NO_STORE)


@_oauth_errors
async def introspect(request: Request) -> Response:
    """``POST {issuer}/oauth/introspect`` (RFC 7662): a client of the realm, or an admin key."""
    svc = services(request)
    realm = _realm(request)
    await svc.keys.realm(realm)
    form = await _form(request)
    issuer = svc.settings.issuer_of(realm)
    authorization = request.headers.get("authorization")
    if (authorization or "").lower().startswith("bearer"):
        admin = await svc.admins.authenticate(bearer_token(request))
        if not admin.allows(realm):
            raise RealmNotFound(realm)
    else:
        policy = AssertionPolicy(
            issuer=issuer,
            token_endpoint=f"{issuer}/oauth/introspect",
            max_lifetime=svc.settings.max_assertion_lifetime,
            strict_audience=svc.settings.strict_assertion_audience,
        )
        await svc.authenticator.authenticate(realm, form, authorization, policy)
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    return JSONResponse(await svc.introspector.introspect(realm, issuer, token), headers=_NO_STORE)


@functools.lru_cache(maxsize=4096)
def _metadata_body(issuer: str) -> bytes:
    # The document depends on the issuer only: serialised once per realm.
    return json.dumps(server_metadata(issuer), separators=(",", ":")).encode()


async def discovery(request: Request) -> Response:
    """RFC 8414 metadata (also at the OpenID discovery path)."""
    svc = services(request)
    realm = _realm(request)
    await svc.keys.realm(realm)
    return Response(
        _metadata_body(svc.settings.issuer_of(realm)),
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={svc.jwks_max_age}"},
    )


async def asap_key(request: Request) -> Response:
    """``GET {issuer}/asap/{sha256hex(kid)}.pem`` for prosody's ``asap_key_server``."""
    svc = services(request)
    realm = _realm(request)
    digest = request.path_params["digest"]
    if not _KID_DIGEST.fullmatch(digest):
        raise NotFound("not a sha256 hex digest of a kid")
    pem = await svc.signer.public_pem(realm, digest)
    return Response(
        pem,
        media_type="application/x-pem-file",
        headers={"Cache-Control": f"public, max-age={svc.jwks_max_age}"},
    )


def oauth_routes() -> list[Route]:
    """The OAuth routes for the default realm and for ``/realms/{realm}``."""
    routes: list[Route] = []
    for base in ("", "/realms/{realm}"):
        routes += [
            Route(f"{base}/oauth/token", token, methods=["POST"]),
            Route(f"{base}/oauth/register", register, methods=["POST"]),
            Route(f"{base}/oauth/introspect", introspect, methods=["POST"]),
            Route(f"{base}/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route(f"{base}/asap/{{digest}}.pem", asap_key, methods=["GET"]),
        ]
        # RFC 8414 §3: the well-known segment goes before the issuer's path.
        routes.append(
            Route(f"/.well-known/oauth-authorization-server{base}", discovery, methods=["GET"])
        )
    return routes
