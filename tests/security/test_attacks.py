"""One named test per known JWT, OAuth and key-management attack, through HTTP.

Every attack is tried on the two doors a token comes in by: a client assertion
at the token endpoint (``invalid_client``, nothing issued) and a token given to
introspection (``{"active": false}``). SECURITY.md links each promise to its test.

Attack tokens are made by hand on purpose (an attacker does not use a careful
library); the service itself never parses or signs by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from jwt.algorithms import RSAAlgorithm
from starlette.testclient import TestClient

from tests._certs import self_signed
from tests.oauth.test_token import assertion_claims

ISSUER = "http://testserver"
TOKEN_URL = "/oauth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = {"grant_type": "client_credentials"}


# ---- crafting ---------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def rs256(key: rsa.RSAPrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = unsigned({"alg": "RS256", **header}, claims)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = unsigned({"alg": "HS256", **header}, claims)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def public_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_jwk(key: rsa.RSAPrivateKey, kid: str = "k1", **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)  # type: ignore[assignment]
    return {**jwk, "kid": kid, **extra}


# ---- the doors --------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def register(client: TestClient, admin: dict[str, str], **metadata: Any) -> dict[str, Any]:
    response = client.post("/oauth/register", json=metadata, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def keyed(client: TestClient, admin: dict[str, str], client_key: rsa.RSAPrivateKey) -> str:
    """A private_key_jwt client whose one key, kid ``k1``, is ``client_key``."""
    reg = register(
        client,
        admin,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public_jwk(client_key)]},
    )
    client_id: str = reg["client_id"]
    return client_id


def refused_assertion(client: TestClient, assertion: str, reason: str = "") -> None:
    """Refused, and (given a ``reason``) for that reason: checks made once the
    signature verified are named in the answer."""
    response = client.post(
        TOKEN_URL,
        data={**FORM, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion},
    )
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] in ("invalid_client", "invalid_request")
    assert "access_token" not in response.json()
    assert reason in response.json().get("error_description", ""), response.text


def accepted_assertion(client: TestClient, assertion: str) -> None:
    response = client.post(
        TOKEN_URL,
        data={**FORM, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion},
    )
    assert response.status_code == 200, response.text


def inactive(client: TestClient, admin: dict[str, str], token: str, realm: str = "") -> None:
    prefix = f"/realms/{realm}" if realm else ""
    response = client.post(f"{prefix}/oauth/introspect", data={"token": token}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json() == {"active": False}


def server_token(client: TestClient, admin: dict[str, str], realm: str = "") -> str:
    prefix = f"/realms/{realm}" if realm else ""
    reg = client.post(
        f"{prefix}/oauth/register",
        json={"token_endpoint_auth_method": "client_secret_post"},
        headers=admin,
    ).json()
    response = client.post(
        f"{prefix}/oauth/token",
        data={**FORM, "client_id": reg["client_id"], "client_secret": reg["client_secret"]},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def server_key(client: TestClient, token: str) -> tuple[str, rsa.RSAPublicKey]:
    kid = jwt.get_unverified_header(token)["kid"]
    jwks = client.get("/.well-known/jwks.json").json()["keys"]
    key = RSAAlgorithm.from_jwk(next(k for k in jwks if k["kid"] == kid))
    assert isinstance(key, rsa.RSAPublicKey)
    return kid, key


def server_claims(token: str, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


# ---- the attacks ------------------------------------------------------------------


def test_alg_confusion_hs256_keyed_with_the_rsa_public_key(
    client: TestClient, admin: dict[str, str], client_key: rsa.RSAPrivateKey, keyed: str
) -> None:
    # The classic: an HS256 MAC keyed with the PEM (or DER) of the RSA key that should
    # verify the token. The algorithm comes from the stored key, so this never verifies.
    for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
        secret = client_key.public_key().public_bytes(
            encoding, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        refused_assertion(client, hs256(secret, {"kid": "k1"}, assertion_claims(keyed)))
    token = server_token(client, admin)
    kid, key = server_key(client, token)
    inactive(client, admin, hs256(public_pem(key), {"kid": kid}, server_claims(token)))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none_in_every_spelling(
    client: TestClient, admin: dict[str, str], keyed: str, alg: str
) -> None:
    refused_assertion(client, unsigned({"alg": alg, "kid": "k1"}, assertion_claims(keyed)) + ".")
    token = server_token(client, admin)
    kid, _ = server_key(client, token)
    inactive(client, admin, unsigned({"alg": alg, "kid": kid}, server_claims(token)) + ".")
    _header, payload, signature = token.split(".")
    # The real signature beside a header that says none.
    inactive(
        client,
        admin,
        f"{b64url(json.dumps({'alg': alg, 'kid': kid}).encode())}.{payload}.{signature}",
    )


class Listener:
    """A local HTTP listener that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/keys.json"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def _certificate(key: rsa.RSAPrivateKey) -> str:
    der = self_signed(key, "attacker").public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode()


def test_jku_x5u_jwk_and_x5c_headers_are_ignored(
    client: TestClient,
    admin: dict[str, str],
    client_key: rsa.RSAPrivateKey,
    attacker_key: rsa.RSAPrivateKey,
    keyed: str,
    listener: Listener,
) -> None:
    # The attacker signs with its own key and points at it from the header.
    pointers: list[dict[str, Any]] = [
        {"jku": listener.url},
        {"x5u": listener.url},
        {"jwk": public_jwk(attacker_key, kid="k1")},
        {"x5c": [_certificate(attacker_key)]},
    ]
    token = server_token(client, admin)
    kid, _ = server_key(client, token)
    for pointer in pointers:
        refused_assertion(
            client, rs256(attacker_key, {"kid": "k1", **pointer}, assertion_claims(keyed))
        )
        inactive(client, admin, rs256(attacker_key, {"kid": kid, **pointer}, server_claims(token)))
    # Beside a genuine signature the pointers change nothing: the stored key decides.
    accepted_assertion(
        client, rs256(client_key, {"kid": "k1", "jku": listener.url}, assertion_claims(keyed))
    )
    time.sleep(0.3)
    assert listener.connections == 0  # no outbound request was ever made


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "k1\r\nFLUSHALL\r\n",
        "*\r\n$8\r\nFLUSHALL\r\n",
        "{default}:clients",
        "jwks:realm:default",
        "k1\x00",
        "\x1b[31mred\x1b[0m",
        "k" * 4000,
        "",
    ],
)
def test_kid_injection(
    client: TestClient,
    admin: dict[str, str],
    attacker_key: rsa.RSAPrivateKey,
    client_key: rsa.RSAPrivateKey,
    keyed: str,
    kid: str,
) -> None:
    refused_assertion(client, rs256(attacker_key, {"kid": kid}, assertion_claims(keyed)))
    token = server_token(client, admin)
    inactive(client, admin, rs256(attacker_key, {"kid": kid}, server_claims(token)))
    # Nothing in the store was touched: the client and the realm's keys still work.
    accepted_assertion(client, rs256(client_key, {"kid": "k1"}, assertion_claims(keyed)))
    assert client.post("/oauth/introspect", data={"token": token}, headers=admin).json()["active"]


def test_kid_of_another_realm(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post("/v1/realms", json={"name": "other"}, headers=admin).status_code == 201
    theirs = server_token(client, admin, realm="other")
    # A genuine token of realm "other", signed by its key, is no token of "default".
    inactive(client, admin, theirs)
    ours = server_token(client, admin)
    inactive(client, admin, ours, realm="other")
    # And a token of "default" re-signed under the kid of "other"'s key fails too.
    other_kid = jwt.get_unverified_header(theirs)["kid"]
    _header, payload, signature = ours.split(".")
    moved = (
        f"{b64url(json.dumps({'alg': 'RS256', 'kid': other_kid}).encode())}.{payload}.{signature}"
    )
    inactive(client, admin, moved)


def test_assertion_replay(client: TestClient, client_key: rsa.RSAPrivateKey, keyed: str) -> None:
    assertion = rs256(client_key, {"kid": "k1"}, assertion_claims(keyed))
    accepted_assertion(client, assertion)
    refused_assertion(client, assertion, "jti")


@pytest.mark.parametrize(
    "aud",
    [
        "https://another-server.example",
        f"{ISSUER}/realms/other",
        f"{ISSUER}/realms/other/oauth/token",
        f"{ISSUER}/oauth/introspect",
        [ISSUER, "https://another-server.example"],
    ],
)
def test_assertion_audience_of_another_server_or_realm(
    client: TestClient, client_key: rsa.RSAPrivateKey, keyed: str, aud: Any
) -> None:
    refused_assertion(
        client, rs256(client_key, {"kid": "k1"}, assertion_claims(keyed, aud=aud)), "aud"
    )


def test_expired_tokens(
    client: TestClient, admin: dict[str, str], client_key: rsa.RSAPrivateKey, keyed: str
) -> None:
    past = int(time.time()) - 3600
    refused_assertion(
        client,
        rs256(client_key, {"kid": "k1"}, assertion_claims(keyed, iat=past - 60, exp=past)),
        "exp",
    )
    # A tenant's own token (an uploaded key): expired is inactive, the same one
    # unexpired is active.
    tenant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    uploaded = client.post(
        "/v1/realms/default/jwt_keys",
        json={"algo": "rs256", "public_key": public_pem(tenant.public_key()).decode()},
        headers=admin,
    )
    assert uploaded.status_code == 201, uploaded.text
    kid = uploaded.json()["kid"]
    inactive(client, admin, rs256(tenant, {"kid": kid}, {"sub": "t", "exp": past}))
    fresh = rs256(tenant, {"kid": kid}, {"sub": "t", "exp": int(time.time()) + 60})
    assert client.post("/oauth/introspect", data={"token": fresh}, headers=admin).json()["active"]


def test_nbf_in_the_future(client: TestClient, client_key: rsa.RSAPrivateKey, keyed: str) -> None:
    later = int(time.time()) + 600
    refused_assertion(
        client, rs256(client_key, {"kid": "k1"}, assertion_claims(keyed, nbf=later)), "nbf"
    )


def test_iat_far_in_the_future(
    client: TestClient, client_key: rsa.RSAPrivateKey, keyed: str
) -> None:
    later = int(time.time()) + 86400
    refused_assertion(
        client,
        rs256(client_key, {"kid": "k1"}, assertion_claims(keyed, iat=later, exp=later + 60)),
        "iat",
    )


def test_assertion_with_a_lifetime_far_beyond_the_limit(
    client: TestClient, client_key: rsa.RSAPrivateKey, keyed: str
) -> None:
    # A long-lived assertion would make a stolen one useful for long: refused.
    refused_assertion(
        client,
        rs256(client_key, {"kid": "k1"}, assertion_claims(keyed, exp=int(time.time()) + 86400)),
        "exp",
    )


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h, p, s: f"{h}.{p}.{s}===",
        lambda h, p, s: f"{h}.{p}.{s.replace('-', '+').replace('_', '/')}+/",
        lambda h, p, s: f"{h}!.{p}.{s}",
        lambda h, p, s: f"{h}.{p[:-1]}*.{s}",
        lambda h, p, s: f"{h}.{p}",
        lambda h, p, s: f"{h}.{p}.{s}.extra",
        lambda h, p, s: f" {h}.{p}.{s}",
        lambda h, p, s: f"{h}.{p}.{s[:-2]}",
        lambda h, p, s: "\u00e9" + f"{h}.{p}.{s}",
    ],
)
def test_malformed_base64(
    client: TestClient,
    admin: dict[str, str],
    client_key: rsa.RSAPrivateKey,
    keyed: str,
    mangle: Any,
) -> None:
    h, p, s = rs256(client_key, {"kid": "k1"}, assertion_claims(keyed)).split(".")
    refused_assertion(client, mangle(h, p, s))
    h, p, s = server_token(client, admin).split(".")
    inactive(client, admin, mangle(h, p, s))


def test_crit_header_not_understood(
    client: TestClient, admin: dict[str, str], client_key: rsa.RSAPrivateKey, keyed: str
) -> None:
    # RFC 7515 §4.1.11: a recipient that does not understand a crit extension MUST
    # reject the JWS, even when the signature is good.
    header = {"kid": "k1", "crit": ["exp-policy"], "exp-policy": "strict"}
    refused_assertion(client, rs256(client_key, header, assertion_claims(keyed)))
    for crit in (["b64"], [], "exp-policy"):
        refused_assertion(
            client, rs256(client_key, {"kid": "k1", "crit": crit}, assertion_claims(keyed))
        )


def test_ps_rs_downgrade(
    client: TestClient, admin: dict[str, str], client_key: rsa.RSAPrivateKey
) -> None:
    # A key registered for PS256 verifies PS256 only, and one for RS256 RS256 only.
    ps = register(
        client,
        admin,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public_jwk(client_key, alg="PS256")]},
    )["client_id"]
    refused_assertion(client, rs256(client_key, {"kid": "k1"}, assertion_claims(ps)))
    accepted_assertion(
        client,
        jwt.encode(assertion_claims(ps), client_key, algorithm="PS256", headers={"kid": "k1"}),
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs = register(
        client,
        admin,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public_jwk(other, kid="k2", alg="RS256")]},
    )["client_id"]
    refused_assertion(
        client, jwt.encode(assertion_claims(rs), other, algorithm="PS256", headers={"kid": "k2"})
    )
    accepted_assertion(client, rs256(other, {"kid": "k2"}, assertion_claims(rs)))


def test_es_rs_confusion(
    client: TestClient, admin: dict[str, str], client_key: rsa.RSAPrivateKey, keyed: str
) -> None:
    # An EC signature, or an ES256 header over an RSA signature, against the RSA key.
    ec_key = ec.generate_private_key(ec.SECP256R1())
    refused_assertion(
        client,
        jwt.encode(assertion_claims(keyed), ec_key, algorithm="ES256", headers={"kid": "k1"}),
    )
    _h, p, s = rs256(client_key, {"kid": "k1"}, assertion_claims(keyed)).split(".")
    relabelled = b64url(json.dumps({"alg": "ES256", "kid": "k1"}).encode())
    refused_assertion(client, f"{relabelled}.{p}.{s}")
    token = server_token(client, admin)
    kid, _ = server_key(client, token)
    inactive(
        client,
        admin,
        jwt.encode(server_claims(token), ec_key, algorithm="ES256", headers={"kid": kid}),
    )


def test_a_client_registering_another_clients_public_key(
    client: TestClient, admin: dict[str, str], client_key: rsa.RSAPrivateKey, keyed: str
) -> None:
    # The same key under another kid, as a JWK, is the same key: a second client
    # holding it could speak for the first.
    response = client.post(
        "/oauth/register",
        json={
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [public_jwk(client_key, kid="mine")]},
        },
        headers=admin,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    # Nor can an existing client take it over by replacing its keys.
    other = register(client, admin, token_endpoint_auth_method="client_secret_basic")
    replaced = client.put(
        f"/v1/realms/default/clients/{other['client_id']}/jwks",
        json={"keys": [public_jwk(client_key, kid="x")]},
        headers=admin,
    )
    assert replaced.status_code in (400, 409), replaced.text


def test_an_uploaded_key_with_private_members(
    client: TestClient, admin: dict[str, str], client_key: rsa.RSAPrivateKey
) -> None:
    private: dict[str, Any] = RSAAlgorithm.to_jwk(client_key, as_dict=True)  # type: ignore[assignment]
    before = client.get("/v1/realms/default/jwt_keys", headers=admin).json()["data"]
    upload = client.post(
        "/v1/realms/default/jwt_keys", json={"algo": "rs256", "public_key": private}, headers=admin
    )
    assert upload.status_code == 400, upload.text
    assert "private" in upload.json()["detail"] and private["d"] not in upload.text
    registered = client.post(
        "/oauth/register",
        json={"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}},
        headers=admin,
    )
    assert registered.status_code == 400 and private["d"] not in registered.text
    assert "private" in registered.json()["error_description"]
    assert client.get("/v1/realms/default/jwt_keys", headers=admin).json()["data"] == before


@pytest.mark.parametrize(
    ("bits", "exponent"),
    [(1024, 65537), (2048, 1), (2048, 2**32 + 1), (2048, 3 * 2**1000 + 1), (4096, 2**3000 + 1)],
)
def test_rsa_with_a_small_or_huge_exponent_or_a_tiny_modulus(
    client: TestClient, admin: dict[str, str], bits: int, exponent: int
) -> None:
    modulus = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    n = modulus.public_numbers().n
    jwk = {
        "kty": "RSA",
        "kid": "weak",
        "n": b64url(n.to_bytes((n.bit_length() + 7) // 8, "big")),
        "e": b64url(exponent.to_bytes((exponent.bit_length() + 7) // 8, "big")),
    }
    registered = client.post(
        "/oauth/register",
        json={"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}},
        headers=admin,
    )
    assert registered.status_code == 400, registered.text
    assert registered.json()["error"] == "invalid_client_metadata"
    # e = 1 is no RSA key at all: cryptography refuses to build it.
    reason = "2048" if bits < 2048 else "well-formed" if exponent == 1 else "exponent"
    assert reason in registered.json()["error_description"], registered.text
    upload = client.post(
        "/v1/realms/default/jwt_keys", json={"algo": "rs256", "public_key": jwk}, headers=admin
    )
    assert upload.status_code == 400, upload.text
    assert reason in upload.json()["detail"], upload.text
