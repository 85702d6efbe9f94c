"""The OAuth endpoints of each realm, under its issuer: token, register, discovery, ASAP keys.

Issuer of ``default`` is ``JWKS_ISSUER``; of realm R, ``JWKS_ISSUER/realms/R``.
Every failure on these endpoints is RFC 6749 §5.2 JSON: other service errors are
translated into OAuth errors by ``service.oauth.errors.to_oauth``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from service import metrics
from service.errors import NotFound, ServiceError
from service.http._params import actor_of, bearer_token, client_address, read_json_object
from service.http._render import client_object
from service.http._routing import CLIENT_ID, Route
from service.http._state import services
from service.http.access_log import request_target
from service.keys import RealmNotFound
from service.models import DEFAULT_REALM, REALM_NAME
from service.oauth.client_auth import AssertionPolicy
from service.oauth.discovery import server_metadata
from service.oauth.errors import (
    InvalidClient,
    InvalidRequest,
    MethodNotAllowed,
    OAuthError,
    ServerError,
    UnsupportedGrantType,
    to_oauth,
)

__all__ = ["introspect", "oauth_routes", "token"]

_FORM: Final = "application/x-www-form-urlencoded"
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_KID_DIGEST: Final = re.compile(r"[0-9a-fA-F]{64}")
#: Routed whatever the method: the endpoint answers a wrong one itself, in §5.2 JSON.
_ANY: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

Endpoint = Callable[[Request], Awaitable[Response]]

log = logging.getLogger(__name__)


def _oauth_endpoint(*methods: str) -> Callable[[Endpoint], Endpoint]:
    """An endpoint under an issuer: it answers ``methods`` only, and every failure,
    a wrong method included, in the §5.2 format (:func:`~service.oauth.errors.to_oauth`).

    The route takes every method, so that the router never answers for it.
    """
    allow = ", ".join(methods)

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            if request.method not in methods:
                raise MethodNotAllowed(f"{request.url.path} answers {allow}", allow=allow)
            try:
                return await endpoint(request)
            except Exception as exc:
                oauth = to_oauth(exc)
                _log_failure(request, exc, oauth)
                if oauth is exc:
                    raise
                raise oauth from exc

        return wrapper

    return decorate


def _log_failure(request: Request, exc: Exception, oauth: OAuthError) -> None:
    # What the answer does not say goes to the log: a bug's traceback, why a
    # client failed to authenticate. Never a credential: reasons name checks only.
    if isinstance(exc, ClientDisconnect):  # gone before its body arrived: not a bug
        log.info("client disconnected on %s %s", request.method, request_target(request.scope))
    elif not isinstance(exc, ServiceError):
        log.error(
            "unhandled error on %s %s", request.method, request_target(request.scope), exc_info=exc
        )
    elif isinstance(oauth, ServerError):
        log.warning("server_error on %s: %s", request_target(request.scope), exc.detail)
    elif isinstance(oauth, InvalidClient):
        log.info("invalid_client on %s: %s", request_target(request.scope), oauth.reason)
        metrics.client_auth_failed(oauth.cause)


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


@_oauth_endpoint("POST")
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
        realm,
        form,
        request.headers.get("authorization"),
        policy,
        address=client_address(request),
        endpoint="token",
    )
    request.scope[CLIENT_ID] = client.client_id
    response = await svc.grant.issue(realm, issuer, client, form)
    return JSONResponse(response.as_dict(), headers=_NO_STORE)


@_oauth_endpoint("POST")
async def register(request: Request) -> Response:
    """``POST {issuer}/oauth/register`` (RFC 7591): the initial access token is an admin key."""
    svc = services(request)
    realm = _realm(request)
    admin = await svc.admins.authenticate(bearer_token(request), address=client_address(request))
    if not admin.allows(realm):
        raise RealmNotFound(realm)
    await svc.keys.realm(realm)
    metadata = await read_json_object(request)
    client, client_secret = await svc.clients.register(
        realm, metadata, actor=actor_of(request, admin)
    )
    return JSONResponse(client_object(client, client_secret), status_code=201, headers=_NO_STORE)


@_oauth_endpoint("POST")
async def introspect(request: Request) -> Response:
    """``POST {issuer}/oauth/introspect`` (RFC 7662): a client of the realm, or an admin key."""
    svc = services(request)
    realm = _realm(request)
    await svc.keys.realm(realm)
    form = await _form(request)
    issuer = svc.settings.issuer_of(realm)
    authorization = request.headers.get("authorization")
    if (authorization or "").lower().startswith("bearer"):
        admin = await svc.admins.authenticate(
            bearer_token(request), address=client_address(request)
        )
        if not admin.allows(realm):
            raise RealmNotFound(realm)
    else:
        policy = AssertionPolicy(
            issuer=issuer,
            token_endpoint=f"{issuer}/oauth/introspect",
            max_lifetime=svc.settings.max_assertion_lifetime,
            strict_audience=svc.settings.strict_assertion_audience,
        )
        client = await svc.authenticator.authenticate(
            realm,
            form,
            authorization,
            policy,
            address=client_address(request),
            endpoint="introspect",
        )
        request.scope[CLIENT_ID] = client.client_id
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    return JSONResponse(await svc.introspector.introspect(realm, issuer, token), headers=_NO_STORE)


@functools.lru_cache(maxsize=4096)
def _metadata_body(issuer: str) -> bytes:
    # The document depends on the issuer only: serialised once per realm.
    return json.dumps(server_metadata(issuer), separators=(",", ":")).encode()


@_oauth_endpoint("GET", "HEAD")
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


@_oauth_endpoint("GET", "HEAD")
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
            Route(f"{base}/oauth/token", token, methods=_ANY),
            Route(f"{base}/oauth/register", register, methods=_ANY),
            Route(f"{base}/oauth/introspect", introspect, methods=_ANY),
            Route(f"{base}/.well-known/openid-configuration", discovery, methods=_ANY),
            Route(f"{base}/asap/{{digest}}.pem", asap_key, methods=_ANY),
        ]
        # RFC 8414 §3: the well-known segment goes before the issuer's path.
        routes.append(
            Route(f"/.well-known/oauth-authorization-server{base}", discovery, methods=_ANY)
        )
    return routes
