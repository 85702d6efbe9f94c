"""``POST /v1/realms/{realm}/jwt_keys``: uploads of tenants' public keys, HS256 secrets,
and bad input, which must be answered with a problem and store nothing.

Public keys are made by the exact commands our users' docs show, with the real
``ssh-keygen`` and ``openssl`` when they are installed, and always also as equivalent
files made with ``cryptography``. Each key is generated once per module.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import httpx2
import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.testclient import TestClient

PROBLEM = "application/problem+json"
REALM = "default"
KEYS_URL = f"/v1/realms/{REALM}/jwt_keys"
JWKS_URL = f"/realms/{REALM}/.well-known/jwks.json"
JWS_ALG = {"rs256": "RS256", "es256": "ES256", "eddsa": "EdDSA"}
#: The members a published JWK has, by algo: the public key, kid, alg and use.
PUBLISHED_MEMBERS = {
    "rs256": {"kty", "n", "e", "kid", "alg", "use"},
    "es256": {"kty", "crv", "x", "y", "kid", "alg", "use"},
    "eddsa": {"kty", "crv", "x", "kid", "alg", "use"},
}

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Upload:
    """A public key as a user uploads it, what the service should make of it, and the
    private key that signs for it."""

    public_key: str | dict[str, Any]
    private_key: PrivateKey
    algo: str
    extra: Mapping[str, str] = field(default_factory=dict)
    #: The kid the key must get: ``None`` means "its id".
    kid: str | None = None


@dataclass(frozen=True)
class Material:
    """Everything one source (the real tools, or cryptography) made."""

    uploads: Mapping[str, Upload]
    #: Private key files a user might paste by mistake, by PEM kind.
    private_pems: Mapping[str, str]


UPLOAD_CASES = (
    "ssh-keygen-pem+openssl-pubout",
    "openssl-genrsa+openssl-pubout",
    "ssh-keygen-e-pkcs8",
    "pkcs1-rsa-public-key",
    "ec-p256-pem",
    "ed25519-pem",
    "openssh-ssh-rsa-line",
    "openssh-ssh-ed25519-line",
    "jwk-object",
    "jwk-json-string",
)
PRIVATE_PEM_KINDS = {
    "pkcs1": "-----BEGIN RSA PRIVATE KEY-----",
    "pkcs8": "-----BEGIN PRIVATE KEY-----",
    "sec1-ec": "-----BEGIN EC PRIVATE KEY-----",
    "openssh": "-----BEGIN OPENSSH PRIVATE KEY-----",
}
#: Given with the README's example upload; a JWK's own kid is kept.
README_KID = "my-app/key-1"
JWK_KID = "tenant-key-7"


def _jwk_of(key: object) -> dict[str, Any]:
    """A JWK of a public or private key, made by PyJWT: the service must accept (or refuse)
    what other libraries make, not only what joserfc makes."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        text = RSAAlgorithm.to_jwk(key)
    elif isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        text = ECAlgorithm.to_jwk(key)
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey)
        text = OKPAlgorithm.to_jwk(key)
    members: dict[str, Any] = json.loads(text)
    return members


def _material(
    *,
    rsa_pkcs1_private: str,
    rsa_pkcs1_spki: str,
    rsa_pkcs8_private: str,
    rsa_pkcs8_spki: str,
    rsa_ssh_e_pkcs8: str,
    rsa_pkcs1_public: str,
    rsa_ssh_line: str,
    ec_sec1_private: str,
    ec_spki: str,
    ed_pkcs8_private: str,
    ed_spki: str,
    ed_openssh_private: str,
    ed_ssh_line: str,
) -> Material:
    rsa_a = _load_private(rsa_pkcs1_private)
    rsa_b = _load_private(rsa_pkcs8_private)
    ec_key = _load_private(ec_sec1_private)
    ed_key = _load_private(ed_pkcs8_private)
    ed_ssh = _load_private(ed_openssh_private)
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    jwk = {**_jwk_of(ec_key.public_key()), "kid": JWK_KID}
    uploads = {
        "ssh-keygen-pem+openssl-pubout": Upload(
            rsa_pkcs1_spki, rsa_a, "rs256", {"name": "JaaS key", "kid": README_KID}, README_KID
        ),
        "openssl-genrsa+openssl-pubout": Upload(rsa_pkcs8_spki, rsa_b, "rs256"),
        "ssh-keygen-e-pkcs8": Upload(rsa_ssh_e_pkcs8, rsa_b, "rs256", {"algo": "rs256"}),
        "pkcs1-rsa-public-key": Upload(rsa_pkcs1_public, rsa_b, "rs256"),
        "ec-p256-pem": Upload(ec_spki, ec_key, "es256", {"algo": "es256"}),
        "ed25519-pem": Upload(ed_spki, ed_key, "eddsa", {"name": "edge"}),
        "openssh-ssh-rsa-line": Upload(rsa_ssh_line, rsa_a, "rs256"),
        "openssh-ssh-ed25519-line": Upload(ed_ssh_line, ed_ssh, "eddsa"),
        "jwk-object": Upload(jwk, ec_key, "es256", {}, JWK_KID),
        "jwk-json-string": Upload(json.dumps(jwk), ec_key, "es256", {}, JWK_KID),
    }
    assert set(uploads) == set(UPLOAD_CASES)
    private_pems = {
        "pkcs1": rsa_pkcs1_private,
        "pkcs8": rsa_pkcs8_private,
        "sec1-ec": ec_sec1_private,
        "openssh": ed_openssh_private,
    }
    for kind, header in PRIVATE_PEM_KINDS.items():
        assert private_pems[kind].startswith(header), kind
    return Material(uploads, private_pems)


def _load_private(text: str) -> PrivateKey:
    data = text.encode()
    key = (
        ser.load_ssh_private_key(data, None)
        if "OPENSSH PRIVATE KEY" in text
        else ser.load_pem_private_key(data, None)
    )
    assert isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    )
    return key


def _run(cwd: Path, *argv: str) -> str:
    return subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def made_by_tools(tmp_path_factory: pytest.TempPathFactory) -> Material:
    """Keys made by the real ``ssh-keygen`` and ``openssl``, with the docs' commands."""
    if not (shutil.which("openssl") and shutil.which("ssh-keygen")):
        pytest.skip("openssl or ssh-keygen is not installed")
    d = tmp_path_factory.mktemp("tools")
    # The two 4096-bit keys are the slow part: make them side by side.
    slow = [
        subprocess.Popen(argv, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for argv in (
            ["ssh-keygen", "-q", "-t", "rsa", "-b", "4096", "-m", "PEM", "-N", "", "-f", "k"],
            ["openssl", "genrsa", "-out", "private.key", "4096"],
        )
    ]
    assert [p.wait(timeout=60) for p in slow] == [0, 0]
    k_pub = _run(d, "openssl", "rsa", "-in", "k", "-pubout", "-outform", "PEM")
    private_pub = _run(d, "openssl", "rsa", "-in", "private.key", "-pubout")
    ssh_e = _run(d, "ssh-keygen", "-f", "private.key", "-e", "-m", "PKCS8")
    pkcs1_pub = _run(d, "openssl", "rsa", "-in", "private.key", "-RSAPublicKey_out")
    _run(d, "openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.key")
    ec_pub = _run(d, "openssl", "ec", "-in", "ec.key", "-pubout")
    _run(d, "openssl", "genpkey", "-algorithm", "ed25519", "-out", "ed25519.key")
    ed_pub = _run(d, "openssl", "pkey", "-in", "ed25519.key", "-pubout")
    _run(d, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "id_ed25519")
    return _material(
        rsa_pkcs1_private=(d / "k").read_text(),
        rsa_pkcs1_spki=k_pub,
        rsa_pkcs8_private=(d / "private.key").read_text(),
        rsa_pkcs8_spki=private_pub,
        rsa_ssh_e_pkcs8=ssh_e,
        rsa_pkcs1_public=pkcs1_pub,
        rsa_ssh_line=(d / "k.pub").read_text(),
        ec_sec1_private=(d / "ec.key").read_text(),
        ec_spki=ec_pub,
        ed_pkcs8_private=(d / "ed25519.key").read_text(),
        ed_spki=ed_pub,
        ed_openssh_private=(d / "id_ed25519").read_text(),
        ed_ssh_line=(d / "id_ed25519.pub").read_text(),
    )


def _pem(key: PrivateKey, fmt: ser.PrivateFormat) -> str:
    return key.private_bytes(ser.Encoding.PEM, fmt, ser.NoEncryption()).decode()


def _public(key: PrivateKey, encoding: ser.Encoding, fmt: ser.PublicFormat) -> str:
    return key.public_key().public_bytes(encoding, fmt).decode()


@pytest.fixture(scope="module")
def made_by_cryptography() -> Material:
    """The same files, made with ``cryptography`` (one 4096-bit RSA key stands for both)."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    pem, spki = ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo
    ssh, ssh_fmt = ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH
    return _material(
        rsa_pkcs1_private=_pem(rsa_key, ser.PrivateFormat.TraditionalOpenSSL),
        rsa_pkcs1_spki=_public(rsa_key, pem, spki),
        rsa_pkcs8_private=_pem(rsa_key, ser.PrivateFormat.PKCS8),
        rsa_pkcs8_spki=_public(rsa_key, pem, spki),
        rsa_ssh_e_pkcs8=_public(rsa_key, pem, spki),
        rsa_pkcs1_public=_public(rsa_key, pem, ser.PublicFormat.PKCS1),
        rsa_ssh_line=_public(rsa_key, ssh, ssh_fmt) + " tenant@example\n",
        ec_sec1_private=_pem(ec_key, ser.PrivateFormat.TraditionalOpenSSL),
        ec_spki=_public(ec_key, pem, spki),
        ed_pkcs8_private=_pem(ed_key, ser.PrivateFormat.PKCS8),
        ed_spki=_public(ed_key, pem, spki),
        ed_openssh_private=_pem(ed_key, ser.PrivateFormat.OpenSSH),
        ed_ssh_line=_public(ed_key, ssh, ssh_fmt) + " tenant@example\n",
    )


@pytest.fixture(params=["tools", "cryptography"])
def material(request: pytest.FixtureRequest) -> Material:
    """Each source in turn; the tools' one skips where the tools are missing."""
    made: Material = request.getfixturevalue(f"made_by_{request.param}")
    return made


@pytest.fixture(scope="module")
def other_keys() -> dict[str, PrivateKey]:
    """Keys that were never uploaded: their tokens must not verify."""
    return {
        "rs256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "es256": ec.generate_private_key(ec.SECP256R1()),
        "eddsa": ed25519.Ed25519PrivateKey.generate(),
    }


@pytest.fixture(scope="module")
def rsa_1024() -> rsa.RSAPrivateKey:
    """A key too small to accept."""
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


# Helpers ----------------------------------------------------------------------


def assert_problem(response: httpx2.Response, status: int, field: str | None) -> dict[str, Any]:
    """An RFC 9457 problem with ``status``, naming ``field`` (or no field)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert str(body["type"]).startswith("tag:jwks-service,")
    assert body["title"] and isinstance(body["title"], str)
    assert body["status"] == status
    assert body["detail"] and isinstance(body["detail"], str)
    assert body.get("field") == field
    return body


@dataclass(frozen=True)
class Snapshot:
    """What the realm shows and what the store holds."""

    listing: Any
    jwks: Any
    dbsize: int


def snapshot(client: TestClient, admin: dict[str, str], redis_client: redis.Redis) -> Snapshot:
    """The realm's key listing, its JWKS and the store's size, now."""
    listing = client.get(KEYS_URL, headers=admin)
    jwks = client.get(JWKS_URL)
    assert listing.status_code == 200 and jwks.status_code == 200
    size = redis_client.dbsize()
    assert isinstance(size, int)
    return Snapshot(listing.json(), jwks.json(), size)


def fragments(secret: str, size: int = 16) -> Iterator[str]:
    """Every run of ``size`` characters of the key text (its base64 body, not its armour)."""
    body = "".join(
        line.strip() for line in secret.splitlines() if line.strip() and "-----" not in line
    )
    assert len(body) >= size
    for i in range(len(body) - size + 1):
        yield body[i : i + size]


def assert_not_echoed(secret: str, *texts: str) -> None:
    """No part of ``secret`` (not even its PEM header) appears in ``texts``."""
    for text in texts:
        for line in secret.splitlines():
            if line.startswith("-----BEGIN"):
                assert line not in text
        for fragment in fragments(secret):
            assert fragment not in text, "the response or log echoes the submitted key"


def published(client: TestClient, kid: str) -> dict[str, Any]:
    """The JWKS member with this kid (exactly one)."""
    matches = [k for k in client.get(JWKS_URL).json()["keys"] if k["kid"] == kid]
    assert len(matches) == 1, matches
    key: dict[str, Any] = matches[0]
    return key


def sign(private_key: PrivateKey, algo: str, kid: str) -> str:
    """A token a tenant signs with its private key."""
    return jwt.encode(
        {"sub": "tenant-user"}, private_key, algorithm=JWS_ALG[algo], headers={"kid": kid}
    )


def verify(token: str, jwk: Mapping[str, Any]) -> dict[str, Any]:
    """Verify ``token`` with a published JWK, as a relying party would."""
    key = jwt.PyJWK(dict(jwk))
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=[jwk["alg"]])
    return claims


# Good uploads -----------------------------------------------------------------


@pytest.mark.parametrize("case", UPLOAD_CASES)
def test_upload_public_key(
    client: TestClient,
    admin: dict[str, str],
    material: Material,
    other_keys: dict[str, PrivateKey],
    case: str,
) -> None:
    """201 verify_only, algo inferred, kid chosen, published in the JWKS, and it verifies."""
    upload = material.uploads[case]
    response = client.post(
        KEYS_URL, json={"public_key": upload.public_key, **upload.extra}, headers=admin
    )
    assert response.status_code == 201, response.text
    key = response.json()
    assert key["status"] == "verify_only"
    assert key["expired"] is False
    assert key["algo"] == upload.algo
    assert key["id"].startswith("jky_")
    assert key["kid"] == (upload.kid or key["id"])
    assert key["name"] == upload.extra.get("name")
    assert "key" not in key
    assert client.get(f"{KEYS_URL}/{key['id']}", headers=admin).json() == key

    jwk = published(client, key["kid"])
    assert jwk == key["public_jwk"]
    assert jwk["alg"] == JWS_ALG[upload.algo] and jwk["use"] == "sig"
    assert set(jwk) == PUBLISHED_MEMBERS[upload.algo]

    assert verify(sign(upload.private_key, upload.algo, key["kid"]), jwk) == {"sub": "tenant-user"}
    with pytest.raises(jwt.InvalidSignatureError):
        verify(sign(other_keys[upload.algo], upload.algo, key["kid"]), jwk)


def test_given_kid_wins_over_the_jwks_own(
    client: TestClient, admin: dict[str, str], made_by_cryptography: Material
) -> None:
    upload = made_by_cryptography.uploads["jwk-object"]
    response = client.post(
        KEYS_URL, json={"public_key": upload.public_key, "kid": "chosen"}, headers=admin
    )
    assert response.status_code == 201, response.text
    assert response.json()["kid"] == "chosen"
    assert published(client, "chosen")["kid"] == "chosen"
    assert JWK_KID not in {k["kid"] for k in client.get(JWKS_URL).json()["keys"]}


def test_readme_ed25519_jwk_example(client: TestClient, admin: dict[str, str]) -> None:
    """The README's curl example, verbatim."""
    body = {
        "public_key": {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }
    }
    response = client.post(KEYS_URL, json=body, headers=admin)
    assert response.status_code == 201, response.text
    key = response.json()
    assert (key["algo"], key["kid"], key["status"]) == ("eddsa", key["id"], "verify_only")
    assert published(client, key["kid"])["x"] == body["public_key"]["x"]


# Bad input: a problem, and nothing stored ---------------------------------------


@pytest.mark.parametrize("kind", PRIVATE_PEM_KINDS)
def test_private_key_pem_is_rejected_and_not_echoed(
    client: TestClient,
    admin: dict[str, str],
    redis_client: redis.Redis,
    material: Material,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    pem = material.private_pems[kind]
    before = snapshot(client, admin, redis_client)
    response = client.post(KEYS_URL, json={"public_key": pem}, headers=admin)
    body = assert_problem(response, 400, "public_key")
    assert "private key" in body["detail"]
    assert_not_echoed(pem, response.text, caplog.text)
    assert snapshot(client, admin, redis_client) == before


@pytest.mark.parametrize("kty", ["RSA", "EC", "OKP"])
def test_private_jwk_is_rejected_and_not_echoed(
    client: TestClient,
    admin: dict[str, str],
    redis_client: redis.Redis,
    made_by_cryptography: Material,
    caplog: pytest.LogCaptureFixture,
    kty: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = {
        "RSA": made_by_cryptography.uploads["openssl-genrsa+openssl-pubout"].private_key,
        "EC": made_by_cryptography.uploads["ec-p256-pem"].private_key,
        "OKP": made_by_cryptography.uploads["ed25519-pem"].private_key,
    }[kty]
    private_jwk = _jwk_of(key)
    assert "d" in private_jwk
    before = snapshot(client, admin, redis_client)
    for public_key in (private_jwk, json.dumps(private_jwk)):
        response = client.post(KEYS_URL, json={"public_key": public_key}, headers=admin)
        assert_problem(response, 400, "public_key")
        for member in ("d", "p", "q", "dp", "dq", "qi"):
            if member in private_jwk:
                assert_not_echoed(private_jwk[member], response.text, caplog.text)
    assert snapshot(client, admin, redis_client) == before


BodyMaker: TypeAlias = Callable[[Material, rsa.RSAPrivateKey], Any]


def _rsa_spki(m: Material) -> str:
    return str(m.uploads["openssl-genrsa+openssl-pubout"].public_key)


def _ec_jwk(m: Material) -> dict[str, Any]:
    jwk = m.uploads["jwk-object"].public_key
    assert isinstance(jwk, dict)
    return jwk


def _p384_spki() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    return _public(key, ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)


#: A valid start of an RSA SubjectPublicKeyInfo, cut short.
MALFORMED_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
    "-----END PUBLIC KEY-----\n"
)

#: (case, body maker, field): each must be a 400 naming ``field``.
BAD_JSON_BODIES: list[tuple[str, BodyMaker, str]] = [
    (
        "rsa-1024",
        lambda m, small: {
            "public_key": _public(small, ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
        },
        "public_key",
    ),
    (
        "rsa-1024-jwk",
        lambda m, small: {"public_key": _jwk_of(small.public_key())},
        "public_key",
    ),
    ("ec-p384", lambda m, small: {"public_key": _p384_spki()}, "public_key"),
    ("malformed-pem", lambda m, small: {"public_key": MALFORMED_PEM}, "public_key"),
    ("truncated-pem", lambda m, small: {"public_key": _rsa_spki(m)[:300]}, "public_key"),
    ("garbage-string", lambda m, small: {"public_key": "hello, this is my key"}, "public_key"),
    ("empty-string", lambda m, small: {"public_key": ""}, "public_key"),
    ("not-a-string-or-object", lambda m, small: {"public_key": 42}, "public_key"),
    ("array", lambda m, small: {"public_key": [_rsa_spki(m)]}, "public_key"),
    ("bad-jwk-json-string", lambda m, small: {"public_key": '{"kty": "EC",'}, "public_key"),
    (
        "oct-jwk",
        lambda m, small: {
            "public_key": {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}
        },
        "public_key",
    ),
    (
        "jwk-bad-point",
        lambda m, small: {"public_key": {**_ec_jwk(m), "y": _ec_jwk(m)["x"]}},
        "public_key",
    ),
    ("jwk-use-enc", lambda m, small: {"public_key": {**_ec_jwk(m), "use": "enc"}}, "public_key"),
    (
        "jwk-key-ops-sign-only",
        lambda m, small: {"public_key": {**_ec_jwk(m), "key_ops": ["sign"]}},
        "public_key",
    ),
    (
        "jwk-alg-disagrees",
        lambda m, small: {"public_key": {**_ec_jwk(m), "alg": "RS256"}},
        "public_key",
    ),
    (
        "jwk-string-alg-disagrees",
        lambda m, small: {"public_key": json.dumps({**_ec_jwk(m), "alg": "RS256"})},
        "public_key",
    ),
    ("unknown-algo", lambda m, small: {"public_key": _rsa_spki(m), "algo": "rs512"}, "algo"),
    ("algo-uppercase", lambda m, small: {"public_key": _rsa_spki(m), "algo": "RS256"}, "algo"),
    (
        "algo-disagrees-es256",
        lambda m, small: {"public_key": _rsa_spki(m), "algo": "es256"},
        "public_key",
    ),
    (
        "algo-disagrees-eddsa",
        lambda m, small: {"public_key": _rsa_spki(m), "algo": "eddsa"},
        "public_key",
    ),
    (
        "algo-hs256-with-public-key",
        lambda m, small: {"public_key": _rsa_spki(m), "algo": "hs256"},
        "algo",
    ),
    ("name-empty", lambda m, small: {"public_key": _rsa_spki(m), "name": ""}, "name"),
    ("name-51", lambda m, small: {"public_key": _rsa_spki(m), "name": "n" * 51}, "name"),
    ("name-not-string", lambda m, small: {"public_key": _rsa_spki(m), "name": 7}, "name"),
    ("kid-empty", lambda m, small: {"public_key": _rsa_spki(m), "kid": ""}, "kid"),
    ("kid-with-space", lambda m, small: {"public_key": _rsa_spki(m), "kid": "my key"}, "kid"),
    ("kid-129", lambda m, small: {"public_key": _rsa_spki(m), "kid": "k" * 129}, "kid"),
    ("unknown-field", lambda m, small: {"public_key": _rsa_spki(m), "comment": "x"}, "comment"),
    ("use-verify", lambda m, small: {"public_key": _rsa_spki(m), "use": "verify"}, "use"),
    ("public-key-and-key", lambda m, small: {"public_key": _rsa_spki(m), "key": "s" * 40}, "key"),
    ("no-public-key-no-algo", lambda m, small: {"name": "x"}, "algo"),
    ("hs256-secret-31-bytes", lambda m, small: {"algo": "hs256", "key": "s" * 31}, "key"),
    ("hs256-secret-not-string", lambda m, small: {"algo": "hs256", "key": 12345}, "key"),
    ("key-for-rs256", lambda m, small: {"algo": "rs256", "key": "s" * 40}, "key"),
    ("kid-for-generated-key", lambda m, small: {"algo": "es256", "kid": "mine"}, "kid"),
]


@pytest.mark.parametrize(
    ("case", "make", "field"), BAD_JSON_BODIES, ids=[c[0] for c in BAD_JSON_BODIES]
)
def test_bad_body_is_400_and_stores_nothing(
    client: TestClient,
    admin: dict[str, str],
    redis_client: redis.Redis,
    made_by_cryptography: Material,
    rsa_1024: rsa.RSAPrivateKey,
    case: str,
    make: BodyMaker,
    field: str,
) -> None:
    before = snapshot(client, admin, redis_client)
    body = make(made_by_cryptography, rsa_1024)
    response = client.post(KEYS_URL, json=body, headers=admin)
    assert_problem(response, 400, field)
    if isinstance(body.get("key"), str):
        assert body["key"] not in response.text  # a rejected secret is not echoed either
    assert snapshot(client, admin, redis_client) == before


def test_rsa_1024_detail_names_the_size(
    client: TestClient, admin: dict[str, str], rsa_1024: rsa.RSAPrivateKey
) -> None:
    pem = _public(rsa_1024, ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    response = client.post(KEYS_URL, json={"public_key": pem}, headers=admin)
    body = assert_problem(response, 400, "public_key")
    assert "1024-bit" in body["detail"] and "2048" in body["detail"]


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"public_key": ',
        b"\xff\xfe{}",
        b"[]",
        b'[{"algo": "es256"}]',
        b'"es256"',
        b"null",
    ],
    ids=["text", "truncated", "not-utf8", "empty-array", "array", "string", "null"],
)
def test_body_that_is_not_a_json_object_is_400(
    client: TestClient, admin: dict[str, str], redis_client: redis.Redis, content: bytes
) -> None:
    before = snapshot(client, admin, redis_client)
    response = client.post(
        KEYS_URL, content=content, headers={**admin, "Content-Type": "application/json"}
    )
    assert_problem(response, 400, None)  # the body as a whole is wrong: no field to name
    assert snapshot(client, admin, redis_client) == before


def test_body_over_64_kib_is_413(
    client: TestClient,
    admin: dict[str, str],
    redis_client: redis.Redis,
    made_by_cryptography: Material,
) -> None:
    before = snapshot(client, admin, redis_client)
    padded = _rsa_spki(made_by_cryptography) + "\n" * (64 * 1024)
    response = client.post(KEYS_URL, json={"public_key": padded}, headers=admin)
    assert_problem(response, 413, None)
    assert snapshot(client, admin, redis_client) == before


def test_kid_already_used_is_409(
    client: TestClient,
    admin: dict[str, str],
    redis_client: redis.Redis,
    made_by_cryptography: Material,
) -> None:
    uploads = made_by_cryptography.uploads
    first = client.post(
        KEYS_URL,
        json={"public_key": uploads["ed25519-pem"].public_key, "kid": "dup"},
        headers=admin,
    )
    assert first.status_code == 201, first.text
    active_kid = next(
        k["kid"]
        for k in client.get(KEYS_URL, headers=admin).json()["data"]
        if k["status"] == "active"
    )
    before = snapshot(client, admin, redis_client)
    clashes = [
        {"public_key": uploads["ec-p256-pem"].public_key, "kid": "dup"},
        {"public_key": {**_ec_jwk(made_by_cryptography), "kid": "dup"}},  # the JWK's own kid
        {"public_key": _rsa_spki(made_by_cryptography), "kid": active_kid},  # a generated key's kid
        {"algo": "hs256", "key": "s" * 40, "kid": "dup"},
    ]
    for body in clashes:
        response = client.post(KEYS_URL, json=body, headers=admin)
        problem = assert_problem(response, 409, None)
        assert "already used" in problem["detail"]
    assert snapshot(client, admin, redis_client) == before


def test_unknown_realm_is_404(
    client: TestClient,
    admin: dict[str, str],
    redis_client: redis.Redis,
    made_by_cryptography: Material,
) -> None:
    before = snapshot(client, admin, redis_client)
    for body in (
        {"public_key": _rsa_spki(made_by_cryptography)},
        {"algo": "hs256"},
        {"algo": "es256"},
    ):
        assert_problem(client.post("/v1/realms/nope/jwt_keys", json=body, headers=admin), 404, None)
    assert_problem(client.get("/v1/realms/nope/jwt_keys", headers=admin), 404, None)
    assert_problem(client.get("/realms/nope/.well-known/jwks.json"), 404, None)
    assert snapshot(client, admin, redis_client) == before
    assert not [k for k in redis_client.scan_iter() if "{nope}" in str(k)]


# HS256 --------------------------------------------------------------------------


def _assert_secret_hidden_after_creation(
    client: TestClient, admin: dict[str, str], key: Mapping[str, Any], secret: str
) -> None:
    fetched = client.get(f"{KEYS_URL}/{key['id']}", headers=admin)
    assert fetched.status_code == 200
    assert "key" not in fetched.json()
    assert fetched.json()["id"] == key["id"] and fetched.json()["public_jwk"] is None
    assert secret not in fetched.text
    assert secret not in client.get(KEYS_URL, headers=admin).text
    jwks = client.get(JWKS_URL)
    assert secret not in jwks.text
    assert key["kid"] not in {k["kid"] for k in jwks.json()["keys"]}
    assert all(k["kty"] != "oct" and k["alg"] != "HS256" for k in jwks.json()["keys"])


def test_generated_hs256_secret_is_shown_once(client: TestClient, admin: dict[str, str]) -> None:
    jwks_before = client.get(JWKS_URL).json()
    response = client.post(KEYS_URL, json={"algo": "hs256", "name": "shared"}, headers=admin)
    assert response.status_code == 201, response.text
    key = response.json()
    secret = key["key"]
    assert isinstance(secret, str) and len(secret.encode()) >= 32
    assert (key["algo"], key["status"], key["kid"], key["public_jwk"]) == (
        "hs256",
        "active",
        key["id"],
        None,
    )
    _assert_secret_hidden_after_creation(client, admin, key, secret)
    assert client.get(JWKS_URL).json() == jwks_before
    again = client.post(KEYS_URL, json={"algo": "hs256"}, headers=admin).json()
    assert again["key"] != secret  # random, not derived


@pytest.mark.parametrize(
    "secret",
    ["s" * 32, "a-long-shared-secret-of-32-bytes-or-more", "é" * 16],
    ids=["32-ascii", "readme-example", "32-utf8-bytes-16-chars"],
)
def test_supplied_hs256_secret_of_32_bytes_is_accepted_and_returned_once(
    client: TestClient, admin: dict[str, str], secret: str
) -> None:
    jwks_before = client.get(JWKS_URL).json()
    response = client.post(
        KEYS_URL, json={"algo": "hs256", "key": secret, "kid": "shared-1"}, headers=admin
    )
    assert response.status_code == 201, response.text
    key = response.json()
    assert key["key"] == secret
    assert (key["algo"], key["status"], key["kid"]) == ("hs256", "active", "shared-1")
    _assert_secret_hidden_after_creation(client, admin, key, secret)
    assert client.get(JWKS_URL).json() == jwks_before


@pytest.mark.parametrize(
    "secret", ["s" * 31, "é" * 15 + "s", ""], ids=["31-ascii", "31-utf8-bytes", "empty"]
)
def test_supplied_hs256_secret_under_32_bytes_is_400(
    client: TestClient, admin: dict[str, str], redis_client: redis.Redis, secret: str
) -> None:
    assert len(secret.encode()) < 32
    before = snapshot(client, admin, redis_client)
    response = client.post(KEYS_URL, json={"algo": "hs256", "key": secret}, headers=admin)
    assert_problem(response, 400, "key")
    if secret:
        assert secret not in response.text
    assert snapshot(client, admin, redis_client) == before
