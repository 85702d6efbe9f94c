"""The hot paths, answered in a thin ASGI layer in front of the framework.

Verifiers fetching the JWKS and backends asking for tokens are nearly all of the
traffic, and the framework's generic machinery (middleware stack, route matching
by regex, a Request per layer) cost more than the JWKS answer itself. So this
layer, the outermost app:

- answers ``GET .../.well-known/jwks.json`` from ASGI messages built once per
  ring change (body, ETag, Cache-Control): a dict lookup and two sends;
- calls the token and introspection endpoints directly, with the body limit and
  the same exception handlers the framework would use, admitting only a few token
  requests at a time so that cheap requests never queue behind many of them;
- passes everything else (and every other method on these paths) to the app;
- gives every request an id (the caller's ``X-Request-ID`` when it is a sane
  one, else a new one), echoed in the response and in every log line of the
  request (:data:`service.logs.REQUEST_ID`);
- writes the access log line of every request (:mod:`.access_log`), and adds
  ``X-Content-Type-Options: nosniff`` and a Content-Security-Policy that allows
  nothing to every response.

Routes and handlers stay defined once, in :mod:`.wellknown` and :mod:`.oauth`;
this layer only finds them faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from service import metrics
from service.http._routing import CLIENT_ID, REALM, ROUTE
from service.http._state import Services
from service.http.access_log import AccessLog, request_target
from service.http.limits import BodySizeLimit
from service.http.oauth import introspect, token
from service.http.wellknown import JWKS_MEDIA_TYPE, if_none_match
from service.keys import JwksDocument, RealmNotFound
from service.logs import REQUEST_ID
from service.models import DEFAULT_REALM, REALM_NAME

__all__ = ["HotPaths"]

_JWKS: Final = ".well-known/jwks.json"
_EMPTY: Final[Message] = {"type": "http.response.body", "body": b""}
#: On every response: no browser may guess another type than the one declared (a
#: JWKS or a token answer sniffed as HTML would be a script's way in), and nothing
#: served here may run, load anything or be framed, were it ever rendered.
_NOSNIFF: Final = (b"x-content-type-options", b"nosniff")
_CSP: Final = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
#: A caller's request id is kept when it is this: short, and nothing a log line or a
#: header could be split by (a UUID, a W3C trace id, an AWS or Heroku id all are).
_SANE_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")
#: Where the default realm's issuer endpoints are (its other routes name no realm).
_ISSUER_PATHS: Final = ("/oauth/", "/.well-known/", "/asap/")
#: The templates of the routes answered here (the framework's record theirs).
_TEMPLATES: Final = {
    (_JWKS, False): "/.well-known/jwks.json",
    (_JWKS, True): "/realms/{realm}/.well-known/jwks.json",
    ("oauth/token", False): "/oauth/token",
    ("oauth/token", True): "/realms/{realm}/oauth/token",
    ("oauth/introspect", False): "/oauth/introspect",
    ("oauth/introspect", True): "/realms/{realm}/oauth/introspect",
}

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, eq=False)
class _Prebuilt:
    document: JwksDocument
    ok_headers: list[tuple[bytes, bytes]]
    body: Message
    not_modified_headers: list[tuple[bytes, bytes]]


class HotPaths:
    """The outermost ASGI app: fast answers for the hot paths, ``app`` for the rest."""

    def __init__(
        self,
        app: ASGIApp,
        handlers: Mapping[Any, ExceptionHandler],
        *,
        access_log: AccessLog | None,
        max_realms: int,
        token_concurrency: int,
    ) -> None:
        self.app = app
        self._handlers = handlers
        self._log = access_log
        self._max_realms = max_realms
        self._jwks: OrderedDict[str, _Prebuilt] = OrderedDict()
        # Token requests admitted at once: enough to keep the signing threads busy
        # (one request signs while another parses), few enough that a JWKS or health
        # request never waits behind dozens of them on the event loop. The rest
        # wait their turn, in order.
        self._token_gate = asyncio.Semaphore(max(1, token_concurrency))
        self._posts: dict[str, ASGIApp] = {
            "oauth/token": BodySizeLimit(self._endpoint(token, self._token_gate)),
            "oauth/introspect": BodySizeLimit(self._endpoint(introspect)),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            if scope["type"] == "lifespan" and self._log is not None:
                self._log.flush()
            return
        begin = perf_counter()
        request_id = _request_id(scope["headers"])
        REQUEST_ID.set(request_id)  # this request's task has a context of its own
        id_header = (b"x-request-id", request_id.encode())
        path: str = scope["path"]
        method: str = scope["method"]
        realm, rest = DEFAULT_REALM, path[1:]
        in_realm = path.startswith("/realms/")
        if in_realm:
            realm, _, rest = path[8:].partition("/")
        # ROUTE and REALM are scope keys, for the wrappers outside (tracing) to read
        # as the answer starts; the framework's routes set ROUTE as they match.
        if method == "GET" and rest == _JWKS:
            route: str | None = _TEMPLATES[rest, in_realm]
            scope[ROUTE], scope[REALM] = route, realm
            status = await self._serve_jwks(scope, send, realm, id_header)
            logged_realm: str | None = realm
        elif method == "POST" and rest in self._posts:
            route = _TEMPLATES[rest, in_realm]
            scope[ROUTE], scope[REALM] = route, realm
            # The endpoint reads the realm from the path parameters, as when routed.
            scope["path_params"] = {"realm": realm} if in_realm else {}
            status = await self._status_of(self._posts[rest], scope, receive, send, id_header)
            logged_realm = realm
        else:
            status = await self._status_of(self.app, scope, receive, send, id_header)
            route = scope.get(ROUTE)
            logged_realm = scope.get("path_params", {}).get("realm") if route else None
            if logged_realm is None and route and route.startswith(_ISSUER_PATHS):
                logged_realm = DEFAULT_REALM  # an endpoint of the default issuer
        seconds = perf_counter() - begin
        metrics.observe_request(route or "", method, status, seconds)
        if self._log is not None:
            self._log.record(
                scope.get("client"),
                method,
                request_target(scope),
                scope["http_version"],
                status,
                seconds,
                request_id=request_id,
                route=route,
                realm=logged_realm,
                client_id=scope.get(CLIENT_ID),
            )

    async def _serve_jwks(
        self, scope: Scope, send: Send, realm: str, id_header: tuple[bytes, bytes]
    ) -> int:
        services: Services = scope["state"]["services"]
        ring = services.keys.cache.current(realm)  # the usual case: no await at all
        if ring is not None:
            document = ring.jwks
        else:
            try:
                if realm != DEFAULT_REALM and not REALM_NAME.fullmatch(realm):
                    raise RealmNotFound(realm)
                document = await services.keys.jwks(realm)
            except Exception as exc:  # rendered exactly as the framework would
                response = await self._render(Request(scope), exc)
                return await self._status_of(response, scope, _no_body, send, id_header)
        prebuilt = self._prebuilt(realm, document, services.jwks_max_age)
        if if_none_match(scope["headers"], document.etag):
            await send(_start(304, prebuilt.not_modified_headers, id_header))
            await send(_EMPTY)
            return 304
        await send(_start(200, prebuilt.ok_headers, id_header))
        await send(prebuilt.body)
        return 200

    def _prebuilt(self, realm: str, document: JwksDocument, max_age: int) -> _Prebuilt:
        prebuilt = self._jwks.get(realm)
        if prebuilt is not None and prebuilt.document is document:
            self._jwks.move_to_end(realm)
            return prebuilt
        headers = [
            _NOSNIFF,
            _CSP,
            (b"cache-control", f"public, max-age={max_age}".encode()),
            (b"etag", document.etag.encode()),
            # Public data: browser-side verifiers may fetch it too.
            (b"access-control-allow-origin", b"*"),
        ]
        body_headers = [
            (b"content-type", JWKS_MEDIA_TYPE.encode()),
            (b"content-length", str(len(document.body)).encode()),
        ]
        prebuilt = _Prebuilt(
            document,
            body_headers + headers,
            {"type": "http.response.body", "body": document.body},
            headers,
        )
        self._jwks[realm] = prebuilt
        self._jwks.move_to_end(realm)
        while len(self._jwks) > self._max_realms:
            self._jwks.popitem(last=False)
        return prebuilt

    def _endpoint(self, endpoint: Endpoint, gate: asyncio.Semaphore | None = None) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            async with gate or contextlib.nullcontext():
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except Exception as exc:  # rendered exactly as the framework would
                    response = await self._render(request, exc)
                await response(scope, receive, send)

        return app

    async def _render(self, request: Request, exc: Exception) -> Response:
        for cls in type(exc).__mro__:  # the framework looks handlers up by MRO too
            handler = self._handlers.get(cls)
            if handler is not None:
                response = await handler(request, exc)  # type: ignore[arg-type,misc]
                assert isinstance(response, Response)
                return response
        raise exc  # pragma: no cover - the handlers include Exception

    async def _status_of(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        id_header: tuple[bytes, bytes],
    ) -> int:
        status = 500  # if nothing is sent, the server answers 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), _NOSNIFF, _CSP, id_header]
            await send(message)

        await app(scope, receive, sending)
        return status


def _start(
    status: int, headers: list[tuple[bytes, bytes]], id_header: tuple[bytes, bytes]
) -> Message:
    return {"type": "http.response.start", "status": status, "headers": [*headers, id_header]}


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` if it is a sane one, else a new random id.

    A caller's id is kept so that a request can be followed from the gateway that
    named it; it only labels log lines, so one a caller made up costs nothing.
    """
    for name, value in headers:
        if name == b"x-request-id":
            if _SANE_REQUEST_ID.fullmatch(value):
                return value.decode()
            break
    return secrets.token_hex(8)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
