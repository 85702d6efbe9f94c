"""The representative requests of ``test_openapi``: one per documented status of each
operation, with what they refer to (the :class:`World`, made through the API).

Four tables: :func:`cases` (a working store), :func:`outage_cases` (the store has
gone away: the 503s), :func:`limited_cases` (limits of one request a minute: the
429s) and :func:`metrics_cases` (``JWKS_METRICS_TOKEN`` set: the 401s). A GET case
also stands for its HEAD twin.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.testclient import TestClient

from service.clock import SystemClock
from service.config import Settings
from service.http import openapi_document
from service.keys import AdminKeys
from service.storage.redis import connect

DOCUMENT: Final = openapi_document()
BIG: Final = b"x=" + b"y" * (65 * 1024)  # over the 64 KiB body limit
JWK: Final = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
_FORM: Final = {"content-type": "application/x-www-form-urlencoded"}
_JSON: Final = {"content-type": "application/json"}
_GRANT: Final = {"grant_type": "client_credentials"}
_NO_KEY: Final = {"headers": {"Authorization": "Bearer nope"}}
#: A valid body for each admin operation that takes one (each on its own path).
_VALID_BODIES: Final[dict[str, Any]] = {
    "/v1/realms": {"name": "fresh"},
    "/v1/realms/{realm}": {"rotation_interval": None},
    "/v1/realms/{realm}/jwt_keys": {"algo": "es256"},
    "/v1/realms/{realm}/jwt_keys/rotate": {"algo": "rs256", "immediate": True},
    "/v1/realms/{realm}/clients/{id}/jwks": {"keys": [JWK]},
}


@dataclass(frozen=True)
class Case:
    """A request (``url``, ``kwargs`` for ``TestClient.request``) that should get
    ``status`` from the documented operation ``method path``."""

    path: str
    method: str
    status: int
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.path, self.method, self.status)


def case(operation: str, status: int, url: str | None = None, **kwargs: Any) -> Case:
    """``case("GET /v1/realms/{realm}", 404, "/v1/realms/nope", headers=...)``."""
    method, path = operation.split(" ", 1)
    return Case(path, method, status, url or path, kwargs)


@dataclass(frozen=True)
class World:
    """What the representative requests refer to."""

    admin: dict[str, str]
    scoped: dict[str, str]  # an admin key for realm acme only
    basic: tuple[str, str]  # a client_secret_basic client of default
    acme_basic: tuple[str, str]
    es256: tuple[str, str]  # a client for ES256 tokens, in a realm without an ES256 key
    acme_es256: tuple[str, str]
    token: str
    etag: str
    acme_etag: str
    key_id: str
    kid: str
    acme_kid: str
    eddsa_id: str  # a key to delete
    hs256_id: str  # acme's active hs256 key
    client_id: str
    doomed_client: str


def admin_key(settings: Settings, realm: str | None = None) -> dict[str, str]:
    """Headers with a new admin key (for ``realm`` only, if given), made as the CLI does."""

    async def create() -> str:
        store = connect(str(settings.redis_url))
        try:
            _key, secret = await AdminKeys(store, SystemClock()).create(realm)
            return secret
        finally:
            await store.close()

    return {"Authorization": f"Bearer {asyncio.run(create())}"}


def register(client: TestClient, admin: dict[str, str], base: str = "", **metadata: Any) -> Any:
    """RFC 7591 registration; the 201's body."""
    response = client.post(f"{base}/oauth/register", json=metadata, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


def pair(registered: dict[str, str]) -> tuple[str, str]:
    """A registered client's (client_id, client_secret)."""
    return registered["client_id"], registered["client_secret"]


def make_world(client: TestClient, admin: dict[str, str], settings: Settings) -> World:
    """A realm acme beside default, clients, keys and a token."""
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    basic = pair(register(client, admin, scope="read"))
    token = client.post("/oauth/token", data=_GRANT, auth=basic)
    keys = client.get("/v1/realms/default/jwt_keys", headers=admin).json()["data"]
    acme_keys = client.get("/v1/realms/acme/jwt_keys", headers=admin).json()["data"]
    eddsa = client.post("/v1/realms/default/jwt_keys", json={"algo": "eddsa"}, headers=admin)
    hs256 = client.post("/v1/realms/acme/jwt_keys", json={"algo": "hs256"}, headers=admin)
    upload = {"public_key": JWK, "kid": "taken"}
    assert client.post("/v1/realms/default/jwt_keys", json=upload, headers=admin).is_success
    es256 = {"access_token_signed_response_alg": "ES256"}
    return World(
        admin=admin,
        scoped=admin_key(settings, "acme"),
        basic=basic,
        acme_basic=pair(register(client, admin, "/realms/acme")),
        es256=pair(register(client, admin, **es256)),
        acme_es256=pair(register(client, admin, "/realms/acme", **es256)),
        token=token.json()["access_token"],
        etag=client.get("/.well-known/jwks.json").headers["etag"],
        acme_etag=client.get("/realms/acme/.well-known/jwks.json").headers["etag"],
        key_id=keys[0]["id"],
        kid=keys[0]["kid"],
        acme_kid=acme_keys[0]["kid"],
        eddsa_id=eddsa.json()["id"],
        hs256_id=hs256.json()["id"],
        client_id=basic[0],
        doomed_client=register(client, admin)["client_id"],
    )


def _issuer_cases(w: World, realm: bool) -> list[Case]:
    base, url = ("/realms/{realm}", "/realms/acme") if realm else ("", "")
    basic, es256 = (w.acme_basic, w.acme_es256) if realm else (w.basic, w.es256)
    digest = hashlib.sha256((w.acme_kid if realm else w.kid).encode()).hexdigest()
    token, introspect, register_ = (
        f"POST {base}/oauth/{e}" for e in ("token", "introspect", "register")
    )
    metadata = f"GET {base}/.well-known/openid-configuration"
    rfc8414 = f"GET /.well-known/oauth-authorization-server{base}"
    asap = f"GET {base}/asap/{{digest}}.pem"
    result = [
        case(token, 200, f"{url}/oauth/token", data=_GRANT, auth=basic),
        case(token, 400, f"{url}/oauth/token", data={}, auth=basic),
        case(token, 401, f"{url}/oauth/token", data=_GRANT),
        case(token, 413, f"{url}/oauth/token", content=BIG, headers=_FORM),
        case(token, 500, f"{url}/oauth/token", data=_GRANT, auth=es256),
        case(introspect, 200, f"{url}/oauth/introspect", data={"token": w.token}, headers=w.admin),
        case(introspect, 400, f"{url}/oauth/introspect", data={}, headers=w.admin),
        case(introspect, 401, f"{url}/oauth/introspect", data={"token": w.token}),
        case(introspect, 413, f"{url}/oauth/introspect", content=BIG, headers=_FORM),
        case(register_, 201, f"{url}/oauth/register", json={}, headers=w.admin),
        case(register_, 400, f"{url}/oauth/register", content=b"{", headers={**w.admin, **_JSON}),
        case(register_, 401, f"{url}/oauth/register", json={}, **_NO_KEY),
        case(register_, 413, f"{url}/oauth/register", content=BIG, headers={**w.admin, **_JSON}),
        case(metadata, 200, f"{url}/.well-known/openid-configuration"),
        case(rfc8414, 200, f"/.well-known/oauth-authorization-server{url}"),
        case(asap, 200, f"{url}/asap/{digest}.pem"),
        case(asap, 404, f"{url}/asap/{'0' * 64}.pem"),
    ]
    if not realm:  # the default realm exists: a key for another realm is refused
        return [*result, case(register_, 404, json={}, headers=w.scoped)]
    return [
        *result,
        case(register_, 404, "/realms/nope/oauth/register", json={}, headers=w.admin),
        case(token, 404, "/realms/nope/oauth/token", data=_GRANT),
        case(
            introspect, 404, "/realms/nope/oauth/introspect", data={"token": "x"}, headers=w.admin
        ),
        case(metadata, 404, "/realms/nope/.well-known/openid-configuration"),
        case(rfc8414, 404, "/.well-known/oauth-authorization-server/realms/nope"),
    ]


def _admin_cases(w: World) -> list[Case]:
    a = {"headers": w.admin}
    big = {"content": BIG, "headers": {**w.admin, **_JSON}}
    realm, keys = "/v1/realms/{realm}", "/v1/realms/{realm}/jwt_keys"
    rotate, key = f"{keys}/rotate", f"{keys}/{{id}}"
    clients, events = f"{realm}/clients", f"{realm}/events"
    client, jwks = f"{clients}/{{id}}", f"{clients}/{{id}}/jwks"
    default_key, default_client = "/v1/realms/default/jwt_keys/", "/v1/realms/default/clients/"
    result = [
        case("GET /v1/realms", 200, **a),
        case("GET /v1/realms", 400, "/v1/realms?limit=0", **a),
        case("POST /v1/realms", 201, json={"name": "fresh"}, **a),
        case("POST /v1/realms", 400, json={}, **a),
        case("POST /v1/realms", 403, json={"name": "x"}, headers=w.scoped),
        case("POST /v1/realms", 409, json={"name": "acme"}, **a),
        case("POST /v1/realms", 413, **big),
        case(f"GET {realm}", 200, "/v1/realms/acme", **a),
        case(f"GET {realm}", 404, "/v1/realms/nope", **a),
        case(f"PATCH {realm}", 200, "/v1/realms/acme", json={"rotation_interval": None}, **a),
        case(f"PATCH {realm}", 400, "/v1/realms/acme", json={"other": 1}, **a),
        case(f"PATCH {realm}", 404, "/v1/realms/nope", json={}, **a),
        case(f"PATCH {realm}", 413, "/v1/realms/acme", **big),
        case(f"DELETE {realm}", 204, "/v1/realms/fresh", **a),  # POST 201 made it
        case(f"DELETE {realm}", 404, "/v1/realms/nope", **a),
        case(f"DELETE {realm}", 409, "/v1/realms/default", **a),
        case(f"GET {keys}", 200, "/v1/realms/acme/jwt_keys", **a),
        case(f"GET {keys}", 400, "/v1/realms/acme/jwt_keys?limit=101", **a),
        case(f"GET {keys}", 404, "/v1/realms/nope/jwt_keys", **a),
        case(f"POST {keys}", 201, "/v1/realms/acme/jwt_keys", json={"algo": "eddsa"}, **a),
        case(f"POST {keys}", 400, "/v1/realms/acme/jwt_keys", json={}, **a),
        case(f"POST {keys}", 404, "/v1/realms/nope/jwt_keys", json={"algo": "es256"}, **a),
        case(
            f"POST {keys}",
            409,
            "/v1/realms/default/jwt_keys",
            json={"public_key": JWK, "kid": "taken"},
            **a,
        ),
        case(f"POST {keys}", 413, "/v1/realms/acme/jwt_keys", **big),
        case(
            f"POST {rotate}",
            200,
            "/v1/realms/acme/jwt_keys/rotate",
            json={"algo": "rs256", "immediate": True},
            **a,
        ),
        case(f"POST {rotate}", 400, "/v1/realms/acme/jwt_keys/rotate", json={"algo": "x"}, **a),
        case(f"POST {rotate}", 404, "/v1/realms/nope/jwt_keys/rotate", json={}, **a),
        case(f"POST {rotate}", 409, "/v1/realms/acme/jwt_keys/rotate", json={"algo": "hs256"}, **a),
        case(f"POST {rotate}", 413, "/v1/realms/acme/jwt_keys/rotate", **big),
        case(f"GET {key}", 200, default_key + w.key_id, **a),
        case(f"GET {key}", 404, default_key + "nope", **a),
        case(f"DELETE {key}", 202, default_key + w.eddsa_id, **a),
        case(f"DELETE {key}", 400, f"{default_key}{w.key_id}?force=maybe", **a),
        case(f"DELETE {key}", 404, default_key + "nope", **a),
        case(f"DELETE {key}", 409, f"/v1/realms/acme/jwt_keys/{w.hs256_id}", **a),
        case("GET /v1/events", 200, **a),
        case("GET /v1/events", 400, "/v1/events?limit=0", **a),
        case("GET /v1/events", 403, headers=w.scoped),
        case(f"GET {events}", 200, "/v1/realms/acme/events", **a),
        case(f"GET {events}", 400, "/v1/realms/acme/events?limit=0", **a),
        case(f"GET {events}", 404, "/v1/realms/nope/events", **a),
        case(f"GET {clients}", 200, "/v1/realms/default/clients", **a),
        case(f"GET {clients}", 400, "/v1/realms/default/clients?cursor=nope", **a),
        case(f"GET {clients}", 404, "/v1/realms/nope/clients", **a),
        case(f"GET {client}", 200, default_client + w.client_id, **a),
        case(f"GET {client}", 404, default_client + "nope", **a),
        case(f"DELETE {client}", 204, default_client + w.doomed_client, **a),
        case(f"DELETE {client}", 404, default_client + "nope", **a),
        case(f"PUT {jwks}", 200, f"{default_client}{w.client_id}/jwks", json={"keys": [JWK]}, **a),
        case(
            f"PUT {jwks}",
            400,
            f"{default_client}{w.client_id}/jwks",
            json={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
            **a,
        ),
        case(f"PUT {jwks}", 404, f"{default_client}nope/jwks", json={"keys": [JWK]}, **a),
        case(f"PUT {jwks}", 413, f"{default_client}{w.client_id}/jwks", **big),
    ]
    # A wrong admin key is 401, on every admin operation.
    return result + [c for c in _every_admin_operation(401, _NO_KEY, "default")]


def _every_admin_operation(status: int, kwargs: dict[str, Any], realm: str) -> list[Case]:
    return [
        Case(
            path,
            method.upper(),
            status,
            path.replace("{realm}", realm).replace("{id}", "x"),
            {"json": _VALID_BODIES[path], **kwargs}
            if method in ("post", "patch", "put")
            else kwargs,
        )
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if path.startswith("/v1/") and method != "head"
    ]


def cases(w: World) -> list[Case]:
    """Every documented (path, method, status) but the 503s and 429s, in an order that works
    (a resource is deleted after the requests that use it)."""
    jwks, realm_jwks = "GET /.well-known/jwks.json", "GET /realms/{realm}/.well-known/jwks.json"
    acme = "/realms/acme/.well-known/jwks.json"
    return [
        case(jwks, 200),
        case(jwks, 304, headers={"If-None-Match": w.etag}),
        case(realm_jwks, 200, acme),
        case(realm_jwks, 304, acme, headers={"If-None-Match": w.acme_etag}),
        case(realm_jwks, 404, "/realms/nope/.well-known/jwks.json"),
        case("GET /healthz", 200),
        case("GET /readyz", 200),
        case("GET /openapi.json", 200),
        case("GET /metrics", 200),
        *_issuer_cases(w, realm=False),
        *_issuer_cases(w, realm=True),
        *_admin_cases(w),
    ]


def metrics_cases() -> list[Case]:
    """The documented 401 of ``/metrics``: ``JWKS_METRICS_TOKEN`` is set, and not sent."""
    return [case("GET /metrics", 401, **_NO_KEY)]


def outage_cases(admin: dict[str, str]) -> list[Case]:
    """Every documented 503: the store is down; realm acme exists but is not cached, and
    the client ``jcl_unknown`` is in no cache."""
    unknown = {"auth": ("jcl_unknown", "secret")}
    result = [
        case("GET /readyz", 503),
        case(
            "GET /realms/{realm}/.well-known/jwks.json", 503, "/realms/acme/.well-known/jwks.json"
        ),
        case(
            "GET /realms/{realm}/.well-known/openid-configuration",
            503,
            "/realms/acme/.well-known/openid-configuration",
        ),
        case(
            "GET /.well-known/oauth-authorization-server/realms/{realm}",
            503,
            "/.well-known/oauth-authorization-server/realms/acme",
        ),
        case("GET /realms/{realm}/asap/{digest}.pem", 503, f"/realms/acme/asap/{'0' * 64}.pem"),
    ]
    for base, url in (("", ""), ("/realms/{realm}", "/realms/acme")):
        result += [
            case(f"POST {base}/oauth/token", 503, f"{url}/oauth/token", data=_GRANT, **unknown),
            case(
                f"POST {base}/oauth/introspect",
                503,
                f"{url}/oauth/introspect",
                data={"token": "x"},
                **unknown,
            ),
            case(
                f"POST {base}/oauth/register", 503, f"{url}/oauth/register", json={}, headers=admin
            ),
        ]
    return result + _every_admin_operation(503, {"headers": admin}, "acme")


def limited_cases(
    admin: dict[str, str], basic: tuple[str, str], acme_basic: tuple[str, str]
) -> list[Case]:
    """Every documented 429: ``admin``, and each client at each endpoint, have had the
    one request a minute that their limits allow."""
    result: list[Case] = []
    for base, url, client in (("", "", basic), ("/realms/{realm}", "/realms/acme", acme_basic)):
        result += [
            case(f"POST {base}/oauth/token", 429, f"{url}/oauth/token", data=_GRANT, auth=client),
            case(
                f"POST {base}/oauth/introspect",
                429,
                f"{url}/oauth/introspect",
                data={"token": "x"},
                auth=client,
            ),
            case(
                f"POST {base}/oauth/register", 429, f"{url}/oauth/register", json={}, headers=admin
            ),
        ]
    return result + _every_admin_operation(429, {"headers": admin}, "acme")
