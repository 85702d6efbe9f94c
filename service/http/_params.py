"""Request parsing shared by the admin endpoints."""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.requests import Request

from service.audit import Actor
from service.errors import InvalidInput
from service.models import AdminKey

__all__ = ["actor_of", "bearer_token", "client_address", "page_params", "read_json_object"]

DEFAULT_LIMIT: Final = 25
MAX_LIMIT: Final = 100


async def read_json_object(request: Request, *, expected: str | None = None) -> dict[str, Any]:
    """The body as a JSON object.

    :param expected: what the body must be, for the error (default: a JSON object);
        an endpoint that takes other bodies too names them here.
    :raises InvalidInput: not JSON, or not an object.
    """
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        detail = f": the body must be {expected}" if expected else ""
        raise InvalidInput(f"the body is not valid JSON{detail}") from exc
    if not isinstance(body, dict):
        raise InvalidInput(f"the body must be {expected or 'a JSON object'}")
    return body


def page_params(request: Request) -> tuple[int, str | None]:
    """``limit`` (1-100, default 25) and ``cursor`` from the query string."""
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return int(raw), request.query_params.get("cursor") or None


def actor_of(request: Request, admin: AdminKey) -> Actor:
    """Who makes a change, for its audit event: the admin key's id (never the key) and
    the caller's address (:func:`client_address`)."""
    return Actor(admin.id, client_address(request))


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), if there is one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def client_address(request: Request) -> str | None:
    """The caller's address, as the server reports it (behind trusted proxies, the
    forwarded one): what rate limits and lockouts count per address."""
    return request.client.host if request.client else None
