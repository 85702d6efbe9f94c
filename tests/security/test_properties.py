"""Properties over generated inputs (hypothesis), through HTTP, in process.

- No mutation of a valid access token introspects as active, and no mutation of a
  valid private_key_jwt assertion gets a token: characters replaced, inserted or
  deleted, segments dropped, swapped or repeated, decoded bytes flipped. The
  originals still work afterwards, so a refusal is the mutation's doing, and no
  mutation burned the assertion's jti.
- Any bytes uploaded as a public key, in every form the admin API takes (PEM,
  OpenSSH, certificate, JWK object or text, a mutated real key), and any bytes
  as registration metadata, get a 4xx or a stored object (201): never a 5xx.

Examples are bounded and derandomized, so that a run is repeatable and short.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.testclient import TestClient

from service.oauth.registration import UNDERSTOOD_METADATA
from tests._certs import self_signed
from tests.oauth.test_token import assertion as make_assertion

ISSUER = "http://testserver"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    # The app is built once per test; each example reuses it (the state it keeps is
    # the point: nothing a mutation does may change what the original gets).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Characters a mutation may put in: base64url, the separator, and some that are not.
_CHARS = st.sampled_from(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" + ".=+/ %\x00\n\u00e9"
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@st.composite
def _edit(draw: st.DrawFn, text: str) -> str:
    """One edit of a compact JWS: of its characters, its segments, or a segment's bytes."""
    segments = text.split(".")
    kind = draw(st.sampled_from(["replace", "insert", "delete", "segments", "bytes", "append"]))
    if not text:
        return draw(st.text(_CHARS, min_size=1, max_size=4))
    i = draw(st.integers(0, len(text) - 1))
    if kind == "replace":
        return text[:i] + draw(_CHARS.filter(lambda c: c != text[i])) + text[i + 1 :]
    if kind == "insert":
        return text[:i] + draw(_CHARS) + text[i:]
    if kind == "delete":
        return text[:i] + text[i + draw(st.integers(1, max(1, len(text) - i))) :]
    if kind == "append":
        return text + draw(st.text(_CHARS, min_size=1, max_size=8))
    k = draw(st.integers(0, len(segments) - 1))
    if kind == "bytes":
        try:
            raw = bytearray(unb64url(segments[k]))
        except ValueError:
            raw = bytearray()
        if raw:
            bit = draw(st.integers(0, 8 * len(raw) - 1))
            raw[bit // 8] ^= 1 << (bit % 8)
            segments[k] = b64url(bytes(raw))
        else:
            segments[k] = b64url(draw(st.binary(min_size=1, max_size=8)))
        return ".".join(segments)
    operation = draw(st.sampled_from(["drop", "swap", "repeat", "empty", "reverse"]))
    if operation == "drop":
        del segments[k]
    elif operation == "swap":
        j = draw(st.integers(0, len(segments) - 1))
        segments[k], segments[j] = segments[j], segments[k]
    elif operation == "repeat":
        segments.insert(k, segments[k])
    elif operation == "empty":
        segments[k] = ""
    else:
        segments.reverse()
    return ".".join(segments)


@st.composite
def mutations(draw: st.DrawFn, original: str) -> str:
    """One to three edits of ``original`` that leave something else."""
    text = original
    for _ in range(draw(st.integers(1, 3))):
        text = draw(_edit(text))
    if text == original:
        text += "A"
    return text


def _last_char_twin(token: str) -> str:
    # The signature's last base64url character carries unused low bits: a twin that
    # decodes to the same bytes is a different string, and must not pass either.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    return token[:-1] + alphabet[last ^ 1]


# ---- fixtures ----


@pytest.fixture
def client(make_client: Any) -> TestClient:
    """The app, with the failed-authentication lockouts off: a property run fails to
    authenticate hundreds of times from one address, and each must be judged on its own
    (the lockouts have their own tests)."""
    app: TestClient = make_client(auth_failures=0, auth_failures_per_address=0)
    return app


def _register(client: TestClient, admin: dict[str, str], **metadata: Any) -> dict[str, Any]:
    response = client.post("/oauth/register", json=metadata, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _assertion_form(assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


# ---- tokens and assertions --------------------------------------------------------


def test_no_mutated_access_token_introspects_as_active(
    client: TestClient, admin: dict[str, str]
) -> None:
    registered = _register(client, admin, scope="read")
    credentials = (registered["client_id"], registered["client_secret"])
    issued = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=credentials
    )
    token: str = issued.json()["access_token"]

    def introspect(candidate: str) -> Any:
        response = client.post("/oauth/introspect", data={"token": candidate}, headers=admin)
        assert response.status_code == 200, (candidate, response.status_code, response.text)
        return response.json()

    @PROPERTY
    @given(mutations(token))
    @example(_last_char_twin(token))
    def check(mutated: str) -> None:
        assert introspect(mutated) == {"active": False}, mutated

    check()
    assert introspect(token)["active"] is True


def test_no_mutated_client_assertion_gets_a_token(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)  # type: ignore[attr-defined]
    registered = _register(
        client,
        admin,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [{**jwk, "kid": "k1"}]},
    )
    # Five minutes: the original must still pass after every mutation has been tried.
    assertion = make_assertion(rsa_key, registered["client_id"], exp=int(time.time()) + 300)

    @PROPERTY
    @given(mutations(assertion))
    @example(_last_char_twin(assertion))
    def check(mutated: str) -> None:
        response = client.post("/oauth/token", data=_assertion_form(mutated))
        assert response.status_code in (400, 401), (mutated, response.status_code, response.text)
        assert "access_token" not in response.json()

    check()
    # The original, never sent before, still gets its token: no mutation burned its jti.
    response = client.post("/oauth/token", data=_assertion_form(assertion))
    assert response.status_code == 200, response.text


# ---- key uploads and registration -------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """Real public keys in every upload form, for mutation: DER by PEM label, OpenSSH
    blobs by key type, JWKs."""

    der: dict[str, list[bytes]]
    ssh: dict[str, list[bytes]]
    jwks: list[dict[str, Any]]


@pytest.fixture(scope="module")
def samples(rsa_key: rsa.RSAPrivateKey) -> Samples:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der, openssh = serialization.Encoding.DER, serialization.Encoding.OpenSSH
    cert = self_signed(ec_key)
    ssh: dict[str, list[bytes]] = {}
    for key in (rsa_key, ec_key, ed_key):
        kind, blob = (
            key.public_key().public_bytes(openssh, serialization.PublicFormat.OpenSSH).split()
        )
        ssh.setdefault(kind.decode(), []).append(base64.b64decode(blob))
    return Samples(
        der={
            "PUBLIC KEY": [
                k.public_key().public_bytes(der, spki) for k in (rsa_key, ec_key, ed_key)
            ],
            "RSA PUBLIC KEY": [
                rsa_key.public_key().public_bytes(der, serialization.PublicFormat.PKCS1)
            ],
            "CERTIFICATE": [cert.public_bytes(der)],
        },
        ssh=ssh,
        jwks=[
            RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True),  # type: ignore[attr-defined]
            ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True),  # type: ignore[attr-defined]
            OKPAlgorithm.to_jwk(ed_key.public_key(), as_dict=True),  # type: ignore[attr-defined]
        ],
    )


@st.composite
def _mutated_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few bits flipped, bytes set, cut or inserted (or unchanged)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "set", "cut", "grow"]))
        if not data or action == "grow":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif action == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[i] = draw(st.integers(0, 255))
        else:
            del data[i : i + draw(st.integers(1, len(data) - i))]
    return bytes(data)


def _bytes_like(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    """A mutated sample (usually), or any bytes."""
    mutated = st.sampled_from(samples).flatmap(_mutated_bytes)
    return st.one_of(mutated, mutated, mutated, st.binary(max_size=600))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_B64URL = st.binary(max_size=300).map(b64url)


@st.composite
def _jwk(draw: st.DrawFn, samples: Samples) -> dict[str, Any]:
    """A real JWK with members replaced, re-encoded with flipped bits, added or dropped."""
    jwk = dict(draw(st.sampled_from(samples.jwks)))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from([*jwk, "kty", "crv", "d", "kid", "alg", "use", "k"]))
        action = draw(st.sampled_from(["bits", "replace", "drop", "json"]))
        if action == "drop":
            jwk.pop(name, None)
        elif action == "bits" and isinstance(jwk.get(name), str):
            try:
                jwk[name] = b64url(draw(_mutated_bytes(unb64url(jwk[name]))))
            except ValueError:
                jwk[name] = draw(_B64URL)
        elif action == "replace":
            jwk[name] = draw(
                st.one_of(
                    _B64URL,
                    st.sampled_from(["RSA", "EC", "OKP", "oct", "P-256", "P-384", "Ed25519"]),
                    st.sampled_from(["X25519", "AQAB", "AQ", "Aw", "", "RS256", "sig", "enc"]),
                )
            )
        else:
            jwk[name] = draw(_JSON)
    return jwk


def _pem(label: str, data: bytes) -> str:
    body = base64.encodebytes(data).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


_KID = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)


@st.composite
def public_key_bodies(draw: st.DrawFn, samples: Samples) -> bytes:
    """A ``POST .../jwt_keys`` body: a key in one of the accepted forms, mutated, or bytes."""
    form = draw(st.sampled_from(["pem", "ssh", "text", "jwk", "jwk-text", "raw"]))
    value: Any
    if form == "pem":
        label = draw(st.sampled_from(sorted(samples.der)))
        value = _pem(label, draw(_bytes_like(samples.der[label])))
    elif form == "ssh":
        kind = draw(st.sampled_from(sorted(samples.ssh)))
        value = f"{kind} {base64.b64encode(draw(_bytes_like(samples.ssh[kind]))).decode()} c"
    elif form == "text":
        value = draw(st.binary(max_size=600)).decode("latin-1")
    elif form == "jwk":
        value = draw(_jwk(samples))
    elif form == "jwk-text":
        value = json.dumps(draw(_jwk(samples)))
    else:
        return draw(st.binary(max_size=600))
    body: dict[str, Any] = {"public_key": value}
    # The other members are mostly valid, so that most bodies reach the key parser.
    if draw(st.integers(0, 3)) == 0:
        body.update(
            draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "algo": st.sampled_from(["rs256", "es256", "eddsa", "hs256", "RS256"]),
                        "kid": _KID,
                        "name": st.text(min_size=1, max_size=10),
                        "expected_issuer": st.text(min_size=1, max_size=10),
                    },
                )
            )
        )
    return json.dumps(body).encode()


def test_any_public_key_upload_is_refused_or_stored(
    client: TestClient, admin: dict[str, str], samples: Samples
) -> None:
    headers = {**admin, "content-type": "application/json"}

    @PROPERTY
    @given(public_key_bodies(samples))
    def check(body: bytes) -> None:
        response = client.post("/v1/realms/default/jwt_keys", content=body, headers=headers)
        assert response.status_code in (201, 400, 409), (body, response.status_code, response.text)
        if response.status_code == 201:
            assert response.json()["status"] == "verify_only", response.text
        else:
            assert response.headers["content-type"] == "application/problem+json"

    check()


#: What registration understands, and one member it must ignore (RFC 7591 §2).
_FIELDS = (*sorted(UNDERSTOOD_METADATA), "contacts")


@st.composite
def metadata_bodies(draw: st.DrawFn, samples: Samples) -> bytes:
    """A registration body: any bytes, any JSON, or the known fields with any values."""
    form = draw(st.sampled_from(["bytes", "json", "fields"]))
    if form == "bytes":
        return draw(st.binary(max_size=300))
    if form == "json":
        return json.dumps(draw(_JSON)).encode()
    values = st.one_of(
        _JSON,
        st.sampled_from(
            ["client_secret_post", "private_key_jwt", "jitsi", "ES256", "client_credentials"]
        ),
        st.lists(st.sampled_from(["client_credentials", "*", "a-*", "team"]), max_size=3),
        st.builds(lambda keys: {"keys": keys}, st.lists(_jwk(samples), max_size=2)),
    )
    return json.dumps(draw(st.dictionaries(st.sampled_from(_FIELDS), values))).encode()


def test_any_registration_body_is_refused_or_stored(
    client: TestClient, admin: dict[str, str], samples: Samples
) -> None:
    headers = {**admin, "content-type": "application/json"}

    @PROPERTY
    @given(metadata_bodies(samples))
    def check(body: bytes) -> None:
        response = client.post("/oauth/register", content=body, headers=headers)
        assert response.status_code in (201, 400), (body, response.status_code, response.text)
        if response.status_code == 201:
            registered = response.json()
            assert registered["client_id"].startswith("jcl_"), response.text
        else:
            assert response.json()["error"] in ("invalid_request", "invalid_client_metadata")

    check()
