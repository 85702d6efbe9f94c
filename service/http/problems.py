"""The one place where errors become HTTP responses: RFC 9457 problem+json.

Endpoints raise; they never build error bodies. Expected errors carry a detail
that is safe to show; anything else is logged and answered with a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from service.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceError,
    Unauthorized,
    Unavailable,
)
from service.http.access_log import request_target
from service.oauth.errors import InvalidClient, InvalidToken, MethodNotAllowed, OAuthError

__all__ = ["exception_handlers", "problem"]

log = logging.getLogger(__name__)

MEDIA_TYPE: Final = "application/problem+json"


#: Most specific first: the first base class that matches decides the status.
_STATUS: Final[tuple[tuple[type[ServiceError], int, str], ...]] = (
    (InvalidInput, 400, "invalid-request"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (PayloadTooLarge, 413, "payload-too-large"),
    (RateLimited, 429, "too-many-requests"),
    (Unavailable, 503, "unavailable"),
)


def problem(
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A problem+json response (RFC 9457 §3)."""
    body: dict[str, Any] = {
        "type": f"tag:jwks-service,2026:{slug}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    match = next(((s, slug) for base, s, slug in _STATUS if isinstance(exc, base)), None)
    if match is None:
        return await _unexpected(request, exc)
    status, slug = match
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="jwks-service"'
    if exc.retry_after is not None:  # 503s, 429s, and a rotation that must wait (409)
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, InvalidInput) and exc.field:
        extra["field"] = exc.field
    return problem(status, slug, exc.detail, title=exc.title, extra=extra, headers=headers)


async def _oauth_error(request: Request, exc: Exception) -> Response:
    # RFC 6749 §5.2 (and RFC 7591 §3.2.2): {"error", "error_description"}, never cached.
    assert isinstance(exc, OAuthError)
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if isinstance(exc, InvalidClient) and exc.basic:
        headers["WWW-Authenticate"] = 'Basic realm="jwks-service"'
    if isinstance(exc, InvalidToken):  # RFC 6750 §3
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = exc.allow
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    body = {"error": exc.error}
    if exc.detail:
        body["error_description"] = exc.detail
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    return problem(exc.status_code, slug, None, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):  # gone before its body arrived: not a bug
        log.info("client disconnected on %s %s", request.method, request_target(request.scope))
        return problem(400, "client-disconnected", "the client went away")
    log.error(
        "unhandled error on %s %s", request.method, request_target(request.scope), exc_info=exc
    )
    return problem(500, "server-error", "an unexpected error occurred")


def exception_handlers() -> dict[Any, ExceptionHandler]:
    """Handlers for ``Starlette(exception_handlers=...)``, looked up by MRO."""
    return {
        OAuthError: _oauth_error,
        ServiceError: _service_error,
        HTTPException: _http_exception,
        Exception: _unexpected,
    }
