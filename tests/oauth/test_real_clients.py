"""End to end: real client libraries against a real ``python -m service serve``.

authlib's OAuth 2 client fetches tokens (client_secret_basic, client_secret_post,
and private_key_jwt with authlib's own ``PrivateKeyJWT`` defaults), PyJWT's
``PyJWKClient`` verifies them from the ``jwks_uri`` of the discovery document,
and a Jitsi verifier applies prosody's checks, with the key fetched from the
``asap`` URL as prosody's ``asap_key_server`` does.

One server serves the whole module: it starts on a store flushed by the fixture
itself, and none of these tests uses ``redis_client`` (which would flush the
store under the running server). Each test registers its own clients.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import httpx2
import jwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client, OAuthError  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import PrivateKeyJWT  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests._service import flush, free_port, start_service, stop, wait_ready
from tests.conftest import ADMIN_KEY

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class Server:
    """A running service, and what a client learns from its discovery document."""

    issuer: str
    token_endpoint: str
    jwks_uri: str


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``python -m service serve`` on a free port, on the flushed test store."""
    flush(redis_url)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    tmp = tmp_path_factory.mktemp("real-clients")
    log = tmp / "server.log"
    process = start_service(port, redis_url, tmp / "data", log)
    try:
        wait_ready(process, issuer, log)
        # What a real client does: learn the endpoints from the discovery document.
        discovery = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5.0)
        assert discovery.status_code == 200, discovery.text
        document: dict[str, Any] = discovery.json()
        assert document["issuer"] == issuer
        assert "client_credentials" in document["grant_types_supported"]
        for method in ("client_secret_basic", "client_secret_post", "private_key_jwt"):
            assert method in document["token_endpoint_auth_methods_supported"]
        yield Server(issuer, document["token_endpoint"], document["jwks_uri"])
    finally:
        stop(process)


def register(server: Server, **metadata: Any) -> dict[str, Any]:
    """RFC 7591 registration over HTTP, with the admin key as initial access token."""
    response = httpx.post(
        f"{server.issuer}/oauth/register",
        json=metadata,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=5.0,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["client_id"]
    return body


def verify_access_token(server: Server, token: str) -> dict[str, Any]:
    """An RFC 9068 resource server's checks, with the key from ``jwks_uri`` by PyJWKClient."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    signing_key = jwt.PyJWKClient(server.jwks_uri).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience=server.issuer,
        issuer=server.issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
    )
    return claims


def prosody_verify(server: Server, token: str, *, room: str, tenant: str) -> dict[str, Any]:
    """The checks of Jitsi's prosody token plugin (``token/util.lib.lua``).

    The key comes from ``asap_key_server``: ``{base}/{sha256hex(kid)}.pem``.
    """
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "JWT"
    assert header["alg"] == "RS256"
    digest = hashlib.sha256(header["kid"].encode()).hexdigest()
    pem = httpx.get(f"{server.issuer}/asap/{digest}.pem", timeout=5.0)
    assert pem.status_code == 200, pem.text
    key = serialization.load_pem_public_key(pem.content)
    assert isinstance(key, rsa.RSAPublicKey)
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],  # pinned: never taken from the token
        issuer=["my-app"],  # prosody's asap_accepted_issuers
        leeway=0,  # prosody allows no clock skew
        options={
            "verify_aud": False,  # compared as a string below, as prosody does
            "require": ["aud", "iss", "sub", "room", "exp", "nbf"],
        },
    )
    now = time.time()
    assert isinstance(claims["aud"], str) and claims["aud"] == "jitsi"
    assert claims["exp"] > now and claims["nbf"] <= now
    assert claims["room"] == room
    assert claims["sub"] == tenant
    return claims


def oauth_client(server: Server, client_id: str, secret: str, method: str) -> OAuth2Client:
    """authlib's OAuth 2 client (on httpx2), with ``PrivateKeyJWT`` registered when asked."""
    client = OAuth2Client(client_id, secret, token_endpoint_auth_method=method, timeout=5.0)
    if method == "private_key_jwt":
        client.register_client_auth_method(PrivateKeyJWT(server.token_endpoint))
    return client


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk["kid"] = kid
    return jwk


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_secret_methods(server: Server, method: str) -> None:
    reg = register(server, token_endpoint_auth_method=method, scope="read write")
    with oauth_client(server, reg["client_id"], reg["client_secret"], method) as client:
        token = client.fetch_token(
            server.token_endpoint, grant_type="client_credentials", scope="read"
        )
    assert token["token_type"] == "Bearer" and token["scope"] == "read"
    assert token["expires_in"] == 600
    claims = verify_access_token(server, token["access_token"])
    assert claims["sub"] == claims["client_id"] == reg["client_id"]
    assert claims["scope"] == "read"


def test_authlib_private_key_jwt(server: Server) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    reg = register(
        server,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public_jwk(key, "k1")]},
        allowed_rooms=["standup"],
    )
    assert "client_secret" not in reg
    sent: list[httpx2.Request] = []

    def keep_request(response: httpx2.Response) -> httpx2.Response:
        sent.append(response.request)
        return response

    with oauth_client(server, reg["client_id"], private_pem(key), "private_key_jwt") as client:
        client.register_compliance_hook("access_token_response", keep_request)
        token = client.fetch_token(
            server.token_endpoint, grant_type="client_credentials", room="standup"
        )
    claims = verify_access_token(server, token["access_token"])
    assert claims["sub"] == reg["client_id"] and claims["room"] == "standup"
    # The assertion used authlib's defaults, which the service accepts as they are:
    # aud = the token endpoint URL, a one-hour lifetime, no kid.
    (request,) = sent
    form = dict(parse_qsl(request.content.decode()))
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assertion = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert assertion["aud"] == server.token_endpoint
    assert assertion["exp"] - assertion["iat"] == 3600
    assert "kid" not in jwt.get_unverified_header(form["client_assertion"])


def test_jitsi_token_passes_prosody_checks(server: Server) -> None:
    reg = register(
        server,
        token_endpoint_auth_method="client_secret_post",
        token_profile="jitsi",
        jitsi_app_id="my-app",
        allowed_rooms=["standup"],
        allowed_features=["recording"],
    )
    with oauth_client(server, reg["client_id"], reg["client_secret"], "client_secret_post") as c:
        token = c.fetch_token(
            server.token_endpoint,
            grant_type="client_credentials",
            room="standup",
            user_name="Ada",
            user_email="ada@example.com",
            moderator="true",
            **{"features.recording": "true"},
        )
    claims = prosody_verify(server, token["access_token"], room="standup", tenant="default")
    assert claims["iss"] == "my-app"
    assert claims["context"]["user"] == {
        "name": "Ada",
        "email": "ada@example.com",
        "moderator": "true",
    }
    assert claims["context"]["features"] == {"recording": "true"}


def test_authlib_wrong_secret_is_invalid_client(server: Server) -> None:
    reg = register(server, token_endpoint_auth_method="client_secret_basic")
    received: list[httpx2.Response] = []

    def keep_response(response: httpx2.Response) -> httpx2.Response:
        received.append(response)
        return response

    wrong = reg["client_secret"] + "x"
    with oauth_client(server, reg["client_id"], wrong, "client_secret_basic") as client:
        client.register_compliance_hook("access_token_response", keep_response)
        with pytest.raises(OAuthError) as caught:
            client.fetch_token(server.token_endpoint, grant_type="client_credentials")
    assert caught.value.error == "invalid_client"
    (response,) = received
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["cache-control"] == "no-store"
    assert reg["client_secret"] not in response.text


def test_replayed_assertion_is_invalid_client(server: Server) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    reg = register(
        server,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public_jwk(key, "k1")]},
    )
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": reg["client_id"],
            "sub": reg["client_id"],
            "aud": server.issuer,
            "iat": now,
            "exp": now + 60,
            "jti": "sent-twice",
        },
        key,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    with httpx.Client(timeout=5.0) as http:
        first = http.post(server.token_endpoint, data=form)
        assert first.status_code == 200, first.text
        verify_access_token(server, first.json()["access_token"])
        second = http.post(server.token_endpoint, data=form)
    assert second.status_code == 401, second.text
    assert second.json()["error"] == "invalid_client"
    assert "jti" in second.json()["error_description"]
    assert "access_token" not in second.json()


NODE_DIR = Path(__file__).parent / "node"


def run_openid_client(*args: str) -> dict[str, Any]:
    """Run the npm openid-client script (installed by ``make test`` when npm exists)."""
    if not (NODE_DIR / "node_modules" / "openid-client").is_dir() or not shutil.which("node"):
        pytest.skip(
            "node and openid-client are not installed (make test installs them when npm exists)"
        )
    done = subprocess.run(
        ["node", str(NODE_DIR / "client_credentials.mjs"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_openid_client_secret_post(server: Server) -> None:
    reg = register(server, token_endpoint_auth_method="client_secret_post", scope="read")
    result = run_openid_client(
        server.issuer, reg["client_id"], "secret", reg["client_secret"], "read"
    )
    assert result["issuer"] == server.issuer and result["scope"] == "read"
    assert verify_access_token(server, result["access_token"])["sub"] == reg["client_id"]


def test_openid_client_private_key_jwt(server: Server, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "client.pem"
    pem.write_text(private_pem(key))
    reg = register(
        server,
        token_endpoint_auth_method="private_key_jwt",
        scope="read",
        jwks={"keys": [public_jwk(key, "k1")]},
    )
    result = run_openid_client(server.issuer, reg["client_id"], "key", str(pem), "read")
    assert verify_access_token(server, result["access_token"])["client_id"] == reg["client_id"]
