"""The token endpoint: client authentication methods, grants, profiles, §5.2 errors.

Assertions and tokens are built and checked with PyJWT, an implementation
independent of the service's own (joserfc).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.testclient import TestClient

ISSUER = "http://testserver"
TOKEN_URL = "/oauth/token"
FORM = {"grant_type": "client_credentials"}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key.public_key(), as_dict=True)  # type: ignore[attr-defined]
    jwk["kid"] = kid
    return jwk


def register(client: TestClient, admin: dict[str, str], **metadata: Any) -> dict[str, Any]:
    response = client.post("/oauth/register", json=metadata, headers=admin)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def register_key_client(
    client: TestClient, admin: dict[str, str], key: rsa.RSAPrivateKey, **metadata: Any
) -> dict[str, Any]:
    """A private_key_jwt client whose one key (kid "k1") is ``key``."""
    return register(
        client,
        admin,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public_jwk(key, "k1")]},
        **metadata,
    )


def assertion_claims(client_id: str, **claims: Any) -> dict[str, Any]:
    """A client assertion's claims (RFC 7523 §3), valid for a minute; ``claims`` override."""
    now = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
        **claims,
    }


def assertion(
    key: Any, client_id: str, *, alg: str = "RS256", kid: str | None = "k1", **claims: Any
) -> str:
    headers = {"kid": kid} if kid else {}
    return jwt.encode(assertion_claims(client_id, **claims), key, algorithm=alg, headers=headers)


def assertion_form(token: str, **extra: str) -> dict[str, str]:
    return {
        **FORM,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": token,
        **extra,
    }


def verify(client: TestClient, token: str, audience: str = ISSUER) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    keys = {k["kid"]: k for k in client.get("/.well-known/jwks.json").json()["keys"]}
    key = RSAAlgorithm.from_jwk(keys[header["kid"]])
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], audience=audience)  # type: ignore[arg-type]
    return claims


def oauth_error(response: Any, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    description: str = body["error_description"]
    return description


def test_client_secret_basic(client: TestClient, admin: dict[str, str]) -> None:
    reg = register(client, admin, client_name="backend", scope="read write")
    basic = base64.b64encode(f"{reg['client_id']}:{reg['client_secret']}".encode()).decode()
    response = client.post(
        TOKEN_URL, data={**FORM, "scope": "read"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600 and body["scope"] == "read"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    claims = verify(client, body["access_token"])
    assert claims["iss"] == ISSUER and claims["sub"] == reg["client_id"] == claims["client_id"]
    assert claims["scope"] == "read" and claims["exp"] - claims["iat"] == 600 and claims["jti"]


def test_client_secret_post_and_wrong_method(client: TestClient, admin: dict[str, str]) -> None:
    reg = register(client, admin, token_endpoint_auth_method="client_secret_post")
    ok = client.post(
        TOKEN_URL,
        data={**FORM, "client_id": reg["client_id"], "client_secret": reg["client_secret"]},
    )
    assert ok.status_code == 200
    basic = base64.b64encode(f"{reg['client_id']}:{reg['client_secret']}".encode()).decode()
    wrong = client.post(TOKEN_URL, data=FORM, headers={"Authorization": f"Basic {basic}"})
    oauth_error(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic")
    bad = client.post(
        TOKEN_URL, data={**FORM, "client_id": reg["client_id"], "client_secret": "nope"}
    )
    assert reg["client_secret"] not in oauth_error(bad, 401, "invalid_client")


def test_private_key_jwt(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    reg = register(
        client,
        admin,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public_jwk(rsa_key, "k1")]},
        allowed_rooms=["team-*"],
    )
    assert "client_secret" not in reg
    cid = reg["client_id"]
    response = client.post(TOKEN_URL, data=assertion_form(assertion(rsa_key, cid), room="team-a"))
    assert response.status_code == 200, response.text
    claims = verify(client, response.json()["access_token"])
    assert claims["room"] == "team-a" and claims["sub"] == cid
    # The token endpoint URL is accepted as audience too (what client libraries send).
    token_aud = assertion(rsa_key, cid, aud=f"{ISSUER}/oauth/token")
    assert client.post(TOKEN_URL, data=assertion_form(token_aud)).status_code == 200
    # No kid: the single RSA key is used.
    assert (
        client.post(TOKEN_URL, data=assertion_form(assertion(rsa_key, cid, kid=None))).status_code
        == 200
    )


def test_assertion_replay_and_forgery(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    reg = register_key_client(client, admin, rsa_key)
    cid = reg["client_id"]
    jti = "once-only"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = client.post(TOKEN_URL, data=assertion_form(assertion(other, cid, jti=jti)))
    oauth_error(forged, 401, "invalid_client")
    # The forgery did not burn the jti: the real client can still use it, once.
    real = assertion(rsa_key, cid, jti=jti)
    assert client.post(TOKEN_URL, data=assertion_form(real)).status_code == 200
    assert "jti" in oauth_error(
        client.post(TOKEN_URL, data=assertion_form(real)), 401, "invalid_client"
    )


@pytest.mark.parametrize(
    ("claims_at", "check"),
    [
        # Claims as a function of "now", taken when the test runs, not when collected.
        (lambda now: {"aud": "http://elsewhere"}, "aud"),
        (lambda now: {"aud": [ISSUER, "http://other"]}, "aud"),
        (lambda now: {"exp": now + 7200}, "exp"),
        (lambda now: {"exp": now - 120}, "exp"),
        (lambda now: {"nbf": now + 120}, "nbf"),
        (lambda now: {"iss": "someone-else"}, "iss"),
        (lambda now: {"jti": None}, "jti"),
    ],
)
def test_bad_assertion_claims(
    client: TestClient,
    admin: dict[str, str],
    rsa_key: rsa.RSAPrivateKey,
    claims_at: Callable[[int], dict[str, Any]],
    check: str,
) -> None:
    reg = register_key_client(client, admin, rsa_key)
    claims = claims_at(int(time.time()))
    payload = {k: v for k, v in claims.items() if v is not None}
    token = assertion(rsa_key, reg["client_id"], **payload)
    if claims.get("jti", "") is None:
        decoded = jwt.decode(token, options={"verify_signature": False})
        decoded.pop("jti")
        token = jwt.encode(decoded, rsa_key, algorithm="RS256", headers={"kid": "k1"})
    description = oauth_error(
        client.post(TOKEN_URL, data=assertion_form(token)), 401, "invalid_client"
    )
    assert check in description


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_hs256_and_none_assertions_are_refused(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    reg = register_key_client(client, admin, rsa_key)
    cid = reg["client_id"]
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"iss": cid, "sub": cid, "aud": ISSUER, "exp": now + 60}
    unsigned = ".".join(
        [
            b64url(b'{"alg":"none","kid":"k1"}'),
            b64url(json.dumps({**claims, "jti": "1"}).encode()),
            "",
        ]
    )
    oauth_error(client.post(TOKEN_URL, data=assertion_form(unsigned)), 401, "invalid_client")
    # Key confusion: HMAC-SHA256 keyed with the client's own public key.
    signing_input = ".".join(
        [b64url(b'{"alg":"HS256","kid":"k1"}'), b64url(json.dumps({**claims, "jti": "2"}).encode())]
    )
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64url(mac)}"
    oauth_error(client.post(TOKEN_URL, data=assertion_form(forged)), 401, "invalid_client")


def test_request_errors(client: TestClient, admin: dict[str, str]) -> None:
    reg = register(
        client,
        admin,
        token_endpoint_auth_method="client_secret_post",
        scope="read",
        allowed_rooms=["standup"],
        allowed_audiences=["https://api.example"],
    )
    auth = {"client_id": reg["client_id"], "client_secret": reg["client_secret"]}
    oauth_error(
        client.post(TOKEN_URL, data={**auth, "grant_type": "password"}),
        400,
        "unsupported_grant_type",
    )
    oauth_error(client.post(TOKEN_URL, data=auth), 400, "invalid_request")
    oauth_error(
        client.post(TOKEN_URL, data={**FORM, **auth, "scope": "admin"}), 400, "invalid_scope"
    )
    oauth_error(
        client.post(TOKEN_URL, data={**FORM, **auth, "room": "other"}), 400, "invalid_target"
    )
    oauth_error(client.post(TOKEN_URL, data=FORM), 401, "invalid_client")
    oauth_error(
        client.post(
            TOKEN_URL,
            content=b"grant_type=client_credentials&grant_type=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        400,
        "invalid_request",
    )
    oauth_error(client.post(TOKEN_URL, json=FORM), 400, "invalid_request")
    oauth_error(client.post("/realms/nope/oauth/token", data=FORM), 404, "invalid_request")
    ok = client.post(
        TOKEN_URL, data={**FORM, **auth, "room": "standup", "audience": "https://api.example"}
    )
    claims = verify(client, ok.json()["access_token"], audience="https://api.example")
    assert claims["room"] == "standup"


def test_registration_errors(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    private = RSAAlgorithm.to_jwk(rsa_key, as_dict=True)
    small = public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024), "s")  # noqa: S505
    jwk = public_jwk(rsa_key, "k1")
    no_kid = {k: v for k, v in jwk.items() if k != "kid"}
    cases: list[dict[str, Any]] = [
        {"token_endpoint_auth_method": "private_key_jwt"},
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}},
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [small]}},
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [no_kid, public_jwk(rsa_key, "k2")]},
        },
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk, jwk]}},
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{**jwk, "alg": "ES256"}]},
        },
        {"token_endpoint_auth_method": "client_secret_jwt"},
        {"grant_types": ["authorization_code"]},
        {"token_profile": "jitsi"},
    ]
    for metadata in cases:
        response = client.post("/oauth/register", json=metadata, headers=admin)
        oauth_error(response, 400, "invalid_client_metadata")
        assert '"d"' not in response.text
    assert client.get("/v1/realms/default/clients", headers=admin).json()["data"] == []
    unauthorized = client.post("/oauth/register", json={})
    oauth_error(unauthorized, 401, "invalid_token")


def test_admin_clients_api(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    reg = register_key_client(client, admin, rsa_key)
    cid = reg["client_id"]
    listed = client.get("/v1/realms/default/clients", headers=admin).json()["data"]
    assert [c["client_id"] for c in listed] == [cid] and "client_secret" not in listed[0]
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    replaced = client.put(
        f"/v1/realms/default/clients/{cid}/jwks",
        json={"keys": [public_jwk(new_key, "k2")]},
        headers=admin,
    )
    assert replaced.status_code == 200
    oauth_error(
        client.post(TOKEN_URL, data=assertion_form(assertion(rsa_key, cid))), 401, "invalid_client"
    )
    assert (
        client.post(TOKEN_URL, data=assertion_form(assertion(new_key, cid, kid="k2"))).status_code
        == 200
    )
    assert client.delete(f"/v1/realms/default/clients/{cid}", headers=admin).status_code == 204
    assert client.get(f"/v1/realms/default/clients/{cid}", headers=admin).status_code == 404
    oauth_error(
        client.post(TOKEN_URL, data=assertion_form(assertion(new_key, cid, kid="k2"))),
        401,
        "invalid_client",
    )


def test_jitsi_profile(client: TestClient, admin: dict[str, str]) -> None:
    reg = register(
        client,
        admin,
        token_endpoint_auth_method="client_secret_post",
        token_profile="jitsi",
        jitsi_app_id="my-app",
        allowed_rooms=["*"],
        allowed_features=["recording"],
    )
    auth = {**FORM, "client_id": reg["client_id"], "client_secret": reg["client_secret"]}
    response = client.post(
        TOKEN_URL,
        data={
            **auth,
            "room": "daily",
            "user_name": "Ada",
            "moderator": "true",
            "features.recording": "true",
        },
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "JWT" and header["alg"] == "RS256"
    claims = verify(client, token, audience="jitsi")
    assert claims["aud"] == "jitsi" and claims["iss"] == "my-app" and claims["sub"] == "default"
    assert claims["room"] == "daily" and claims["nbf"] <= int(time.time()) - 5
    assert claims["context"] == {
        "user": {"name": "Ada", "moderator": "true"},
        "features": {"recording": "true"},
    }
    oauth_error(
        client.post(TOKEN_URL, data={**auth, "room": "x", "features.livestreaming": "true"}),
        400,
        "invalid_request",
    )
    oauth_error(client.post(TOKEN_URL, data=auth), 400, "invalid_request")


def test_discovery_and_asap(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/v1/realms", json={"name": "acme"}, headers=admin)
    for path, issuer in (
        ("/.well-known/openid-configuration", ISSUER),
        ("/.well-known/oauth-authorization-server", ISSUER),
        ("/realms/acme/.well-known/openid-configuration", f"{ISSUER}/realms/acme"),
        ("/.well-known/oauth-authorization-server/realms/acme", f"{ISSUER}/realms/acme"),
    ):
        doc = client.get(path).json()
        assert doc["issuer"] == issuer and doc["token_endpoint"] == f"{issuer}/oauth/token"
        assert doc["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
        assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    (key,) = client.get("/realms/acme/.well-known/jwks.json").json()["keys"]
    digest = hashlib.sha256(key["kid"].encode()).hexdigest()
    pem = client.get(f"/realms/acme/asap/{digest}.pem")
    assert pem.status_code == 200 and pem.text.startswith("-----BEGIN PUBLIC KEY-----")
    loaded = serialization.load_pem_public_key(pem.content)
    assert RSAAlgorithm.to_jwk(loaded, as_dict=True)["n"] == key["n"]
    assert client.get(f"/asap/{digest}.pem").status_code == 404
    assert client.get("/realms/acme/asap/nothex.pem").status_code == 404


def test_access_token_algorithm_chosen_by_the_client(
    client: TestClient, admin: dict[str, str]
) -> None:
    reg = register(
        client,
        admin,
        token_endpoint_auth_method="client_secret_post",
        access_token_signed_response_alg="ES256",
    )
    assert reg["access_token_signed_response_alg"] == "ES256"
    form = {**FORM, "client_id": reg["client_id"], "client_secret": reg["client_secret"]}
    # The realm has no ES256 key yet: the operator's problem, not the client's.
    assert "es256" in oauth_error(client.post(TOKEN_URL, data=form), 500, "server_error")
    client.post("/v1/realms/default/jwt_keys", json={"algo": "es256"}, headers=admin)
    token = client.post(TOKEN_URL, data=form).json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    jwk = next(
        k for k in client.get("/.well-known/jwks.json").json()["keys"] if k["kid"] == header["kid"]
    )
    claims = jwt.decode(token, ECAlgorithm.from_jwk(jwk), algorithms=["ES256"], audience=ISSUER)  # type: ignore[arg-type]
    assert claims["sub"] == reg["client_id"]
    for bad in (
        {"access_token_signed_response_alg": "none"},
        {
            "token_profile": "jitsi",
            "jitsi_app_id": "a",
            "access_token_signed_response_alg": "ES256",
        },
    ):
        oauth_error(
            client.post("/oauth/register", json=bad, headers=admin), 400, "invalid_client_metadata"
        )


def test_assertion_with_unknown_kid(
    client: TestClient,
    admin: dict[str, str],
    rsa_key: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "service.http.oauth")
    reg = register_key_client(client, admin, rsa_key)
    response = client.post(
        TOKEN_URL, data=assertion_form(assertion(rsa_key, reg["client_id"], kid="k9"))
    )
    # The same answer as for an unknown client: the reason is in the log only.
    assert oauth_error(response, 401, "invalid_client") == "client authentication failed"
    assert "'k9' is not one of the client's keys" in caplog.text
