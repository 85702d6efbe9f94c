"""``GET /openapi.json``: the OpenAPI 3.1 document of every endpoint, built and serialised once.

The document is data, built here from the same constants the endpoints use
(:mod:`._schemas`). Two error formats: the endpoints under an issuer
answer RFC 6749 §5.2 JSON (``application/json``), the rest RFC 9457
problem+json. A GET route also answers HEAD (Starlette adds it), so each GET
operation gets a HEAD twin with the same statuses and no body.

``tests/http/test_openapi.py`` checks the document against the routes and the
responses; schemathesis fuzzes the live service against it.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import __version__
from service.http.openapi._admin import admin_paths
from service.http.openapi._parts import JSON, Operation, components
from service.http.openapi._public import issuer_paths, public_paths

__all__ = ["openapi_document", "openapi_routes"]


def _with_head(
    paths: dict[str, dict[str, Operation]], components: dict[str, Any]
) -> dict[str, dict[str, Operation]]:
    """Give each GET operation its HEAD twin: the same statuses and headers, no body."""
    for item in paths.values():
        get = item.get("get")
        if get is None:
            continue
        head = copy.deepcopy(get)
        head["operationId"] = "head" + get["operationId"][0].upper() + get["operationId"][1:]
        for status, response in head["responses"].items():
            if "$ref" in response:  # the shared response has content: copy it without
                name = response["$ref"].rsplit("/", 1)[1]
                response = copy.deepcopy(components["responses"][name])
                head["responses"][status] = response
            response.pop("content", None)
        item["head"] = head
    return paths


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, built on first use. Callers must not modify it."""
    paths = {
        **public_paths(),
        **issuer_paths("", realm=False),
        **issuer_paths("/realms/{realm}", realm=True),
        **admin_paths(),
    }
    parts = components()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jwks-service",
            "version": __version__,
            "description": "JWT signing and verification keys per realm, published as a JWKS, "
            "with an OAuth 2.0 authorization server per realm. Endpoints under an issuer "
            "answer errors as RFC 6749 §5.2 JSON; the admin API as RFC 9457 problem+json.",
        },
        "paths": _with_head(paths, parts),
        "components": parts,
    }


@functools.cache
def _serialised() -> bytes:
    return json.dumps(openapi_document(), separators=(",", ":")).encode()


async def openapi(request: Request) -> Response:
    """``GET /openapi.json``: the document, serialised once per process."""
    return Response(
        _serialised(), media_type=JSON, headers={"Cache-Control": "public, max-age=300"}
    )


def openapi_routes() -> list[Route]:
    """The document's route."""
    return [Route("/openapi.json", openapi, methods=["GET"])]
