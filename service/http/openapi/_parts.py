"""The pieces the paths are made of: media types, shared responses and parameters."""

from __future__ import annotations

from typing import Any, Final

from service.http.openapi._schemas import REALM_PATTERN, ref, schemas

__all__ = [
    "ADMIN",
    "CLIENT",
    "FORM",
    "JSON",
    "NO_CACHE_HEADER",
    "PROBLEM",
    "Operation",
    "body",
    "components",
    "headers_of",
    "oauth_errors",
    "ok",
    "operation",
    "param",
    "path_param",
    "problems",
]

Operation = dict[str, Any]

Security = list[dict[str, list[str]]]

JSON: Final = "application/json"
FORM: Final = "application/x-www-form-urlencoded"
PROBLEM: Final = "application/problem+json"
ADMIN: Final[Security] = [{"adminKey": []}]
#: Token and introspection: HTTP Basic, or credentials in the form (post, private_key_jwt).
CLIENT: Final[Security] = [{"clientSecretBasic": []}, {}]
#: On the OAuth endpoints' answers (their §5.2 errors too): no cache may keep them.
NO_CACHE_HEADER: Final = {"Cache-Control": True}

#: status: (description, headers) of a problem+json answer.
_PROBLEMS: Final = {
    400: ("Bad input; `field` names the member at fault", None),
    401: ("No valid admin key", {"WWW-Authenticate": True}),
    403: ("A realm-scoped admin key cannot do this", None),
    404: ("No such resource, or not visible to this admin key", None),
    409: ("Refused in the current state; `detail` says why", {"Retry-After": False}),
    413: ("The body is over 64 KiB", None),
    429: (
        "Over the admin key's rate limit, or the address is locked out after failed "
        "authentications",
        {"Retry-After": True},
    ),
    503: ("The store is unreachable", {"Retry-After": True}),
}
#: status: description of an RFC 6749 §5.2 answer.
_OAUTH: Final = {
    400: "invalid_request and the endpoint's own codes",
    401: "invalid_client (WWW-Authenticate: Basic after HTTP Basic), or invalid_token",
    404: "No such realm under this issuer, or no such key",
    413: "The body is over 64 KiB",
    429: "temporarily_unavailable with Retry-After: over a rate limit, or locked out after "
    "failed authentications",
    500: "server_error: the realm has no active key for the client's algorithm",
    503: "temporarily_unavailable: the store is unreachable",
}


def headers_of(spec: dict[str, bool] | None) -> dict[str, Any]:
    """Response headers from ``{name: required}``."""
    return {
        name: {"required": required, "schema": {"type": "string"}}
        for name, required in (spec or {}).items()
    }


def components() -> dict[str, Any]:
    """The document's ``components``: schemas, shared responses and parameters, security."""
    responses: dict[str, Any] = {}
    for status, (description, headers) in _PROBLEMS.items():
        responses[f"Problem{status}"] = {
            "description": description,
            "headers": headers_of(headers),
            "content": {PROBLEM: {"schema": ref("Problem")}},
        }
    for status, description in _OAUTH.items():
        retry = {"Retry-After": True} if status in (429, 503) else {}
        responses[f"OAuth{status}"] = {
            "description": description,
            "headers": headers_of({**NO_CACHE_HEADER, **retry}),
            "content": {JSON: {"schema": ref("OAuthError")}},
        }
    parameters = {
        "Realm": path_param("realm", {"type": "string", "pattern": REALM_PATTERN}, "default"),
        "KeyId": path_param("id", {"type": "string", "minLength": 1}, None, "The key's id"),
        "ClientId": path_param("id", {"type": "string", "minLength": 1}, None, "The client_id"),
        "Limit": {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
        },
        "Cursor": {
            "name": "cursor",
            "in": "query",
            "description": "next_cursor of the previous page",
            "schema": {"type": "string"},
        },
    }
    return {
        "schemas": schemas(),
        "responses": responses,
        "parameters": parameters,
        "securitySchemes": {
            "adminKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "An admin key (jwks-service admin-key create); for /oauth/register "
                "it is the RFC 7591 initial access token",
            },
            "metricsToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "JWKS_METRICS_TOKEN, when it is set (else /metrics answers anyone)",
            },
            "clientSecretBasic": {
                "type": "http",
                "scheme": "basic",
                "description": "client_secret_basic: client_id and secret, form-urlencoded "
                "(RFC 6749 §2.3.1)",
            },
        },
    }


def path_param(
    name: str, schema: dict[str, Any], example: str | None, description: str = ""
) -> Any:
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
    if example:
        parameter["example"] = example
    if description:
        parameter["description"] = description
    return parameter


def param(name: str) -> dict[str, str]:
    """A reference to the shared parameter ``name``."""
    return {"$ref": f"#/components/parameters/{name}"}


def problems(*statuses: int) -> dict[str, Any]:
    """The shared problem+json responses of ``statuses``."""
    return {str(s): {"$ref": f"#/components/responses/Problem{s}"} for s in statuses}


def oauth_errors(*statuses: int) -> dict[str, Any]:
    """The shared RFC 6749 §5.2 responses of ``statuses``."""
    return {str(s): {"$ref": f"#/components/responses/OAuth{s}"} for s in statuses}


def ok(
    description: str,
    schema: str | None = None,
    media: str = JSON,
    headers: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """A success response: ``schema`` (a component name) as ``media``, and ``headers``
    (name: required)."""
    response: dict[str, Any] = {"description": description, "headers": headers_of(headers)}
    if schema:
        response["content"] = {media: {"schema": ref(schema)}}
    return response


def operation(
    op_id: str, summary: str, tag: str, responses: dict[str, Any], **extra: Any
) -> Operation:
    """An operation; ``extra`` are its other members (parameters, requestBody, security),
    left out when empty."""
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "responses": responses,
        **{name: value for name, value in extra.items() if value},
    }


def body(schema: str, media: str = JSON) -> dict[str, Any]:
    """A required request body of the component schema ``schema``."""
    return {"required": True, "content": {media: {"schema": ref(schema)}}}
