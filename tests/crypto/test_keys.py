"""service.crypto keys: generation, key pairs and RFC 7638 kids, upload parsing, JWK to PEM."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypeAlias

import jwt
import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from service.crypto import (
    InvalidKey,
    generate_key,
    generate_key_pair,
    jwk_to_pem,
    parse_public_key,
    public_jwk,
    thumbprint,
)
from service.models import Algo
from tests._certs import self_signed

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

#: RFC 7638 §3.1: the example JWK and its SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qvzq"
        "Y368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu"
        "0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
#: RFC 8037 §A.2 and §A.3: the Ed25519 public JWK and its thumbprint.
RFC8037_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
ASYMMETRIC: tuple[Algo, ...] = ("rs256", "es256", "eddsa")
JWS_ALG = {"rs256": "RS256", "es256": "ES256", "eddsa": "EdDSA"}


def rfc7638(jwk: Mapping[str, Any]) -> str:
    """An independent RFC 7638 §3 thumbprint: the required members, sorted, no spaces."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    canonical = json.dumps({m: jwk[m] for m in required[jwk["kty"]]}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pyjwt_key(jwk: Mapping[str, Any], algo: str) -> Any:
    """The key PyJWT makes of a JWK: an independent reading of it."""
    return jwt.PyJWK(dict(jwk), algorithm=JWS_ALG[algo]).key


def jwk_by_pyjwt(key: Any) -> dict[str, Any]:
    """A JWK made by PyJWT, not by joserfc."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        text = RSAAlgorithm.to_jwk(key)
    elif isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        text = ECAlgorithm.to_jwk(key)
    else:
        text = OKPAlgorithm.to_jwk(key)
    members: dict[str, Any] = json.loads(text)
    members.pop("key_ops", None)  # PyJWT adds it; uploads rarely have it
    return members


def _x25519_jwk() -> dict[str, Any]:
    # PyJWT cannot export X25519 (it is not a signing key), so write the RFC 8037 §2 JWK out.
    raw = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    return {"kty": "OKP", "crv": "X25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


def spki(key: Any) -> str:
    return str(
        key.public_key()
        .public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: PrivateKey, fmt: ser.PrivateFormat) -> str:
    return key.private_bytes(ser.Encoding.PEM, fmt, ser.NoEncryption()).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def keys(
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> dict[str, PrivateKey]:
    return {"rs256": rsa_key, "es256": ec_key, "eddsa": ed_key}


# Thumbprints -----------------------------------------------------------------------


def test_thumbprint_of_the_rfc_7638_example() -> None:
    assert rfc7638(RFC7638_JWK) == RFC7638_THUMBPRINT  # the test's own oracle is right
    assert thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT


def test_thumbprint_ignores_optional_members() -> None:
    assert thumbprint({k: v for k, v in RFC7638_JWK.items() if k in ("kty", "n", "e")}) == (
        RFC7638_THUMBPRINT
    )
    assert thumbprint({**RFC7638_JWK, "use": "sig", "kid": "other"}) == RFC7638_THUMBPRINT


def test_thumbprint_of_the_rfc_8037_ed25519_example() -> None:
    assert rfc7638(RFC8037_JWK) == RFC8037_THUMBPRINT
    assert thumbprint(RFC8037_JWK) == RFC8037_THUMBPRINT


# generate_key ------------------------------------------------------------------


def test_generate_hs256_is_a_fresh_256_bit_secret() -> None:
    first, second = generate_key("hs256"), generate_key("hs256")
    assert first.public_jwk is None
    assert len(first.secret.encode()) >= 32
    assert first.secret.startswith("jsk_")
    # token_urlsafe(32): 43 characters of base64url after the prefix, 256 bits.
    assert len(first.secret) == len("jsk_") + 43
    assert first.secret != second.secret


@pytest.mark.parametrize(
    ("algo", "kty", "curve"),
    [("rs256", "RSA", None), ("es256", "EC", "P-256"), ("eddsa", "OKP", "Ed25519")],
)
def test_generate_key_private_and_public_halves(algo: Algo, kty: str, curve: str | None) -> None:
    """The sealed secret is the private JWK; the public JWK is its public half, and it verifies."""
    generated = generate_key(algo, rsa_bits=2048)
    private = json.loads(generated.secret)
    public = generated.public_jwk
    assert public is not None
    assert private["kty"] == public["kty"] == kty
    assert public.get("crv") == curve
    assert "d" in private
    assert not PRIVATE_MEMBERS & set(public)
    assert {m: private[m] for m in public} == dict(public)
    if algo == "rs256":
        assert pyjwt_key(public, algo).key_size == 2048
    token = jwt.encode({"sub": "s"}, pyjwt_key(private, algo), algorithm=JWS_ALG[algo])
    assert jwt.decode(token, pyjwt_key(public, algo), algorithms=[JWS_ALG[algo]]) == {"sub": "s"}
    other = generate_key(algo, rsa_bits=2048)
    assert other.public_jwk != public


def test_generate_rsa_honours_bits() -> None:
    generated = generate_key("rs256", rsa_bits=3072)
    assert generated.public_jwk is not None
    assert pyjwt_key(generated.public_jwk, "rs256").key_size == 3072


# generate_key_pair -------------------------------------------------------------


@pytest.mark.parametrize("algo", ASYMMETRIC)
def test_generate_key_pair(algo: Algo) -> None:
    pair = generate_key_pair(algo, rsa_bits=2048)
    assert pair.private_pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert pair.public_pem.startswith("-----BEGIN PUBLIC KEY-----")  # SubjectPublicKeyInfo
    assert "PRIVATE" not in pair.public_pem
    private = ser.load_pem_private_key(pair.private_pem.encode(), None)
    assert spki(private) == pair.public_pem
    jwk = pair.public_jwk
    assert jwk["kid"] == rfc7638(jwk) == thumbprint(jwk)
    assert jwk["alg"] == JWS_ALG[algo] and jwk["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(jwk)
    assert {m: v for m, v in jwk_by_pyjwt(private.public_key()).items() if m in jwk} == {
        m: v for m, v in jwk.items() if m not in ("kid", "alg", "use")
    }
    token = jwt.encode({"sub": "s"}, pair.private_pem, algorithm=JWS_ALG[algo])
    assert jwt.decode(token, pyjwt_key(jwk, algo), algorithms=[JWS_ALG[algo]]) == {"sub": "s"}


def test_generate_key_pair_rsa_default_is_4096_bits() -> None:
    pair = generate_key_pair("rs256")
    assert pyjwt_key(pair.public_jwk, "rs256").key_size == 4096


def test_generate_key_pair_refuses_hs256() -> None:
    with pytest.raises(InvalidKey):
        generate_key_pair("hs256")


# public_jwk ------------------------------------------------------------------------


def test_public_jwk_drops_private_members_and_sets_kid_alg_use(rsa_key: rsa.RSAPrivateKey) -> None:
    private = jwk_by_pyjwt(rsa_key)
    assert "d" in private
    public = public_jwk({**private, "use": "enc", "alg": "RS512"}, kid="k1", algo="rs256")
    assert set(public) == {"kty", "n", "e", "kid", "alg", "use"}
    assert (public["kid"], public["alg"], public["use"]) == ("k1", "RS256", "sig")


# parse_public_key: accepted ----------------------------------------------------


def _certificate(key: ec.EllipticCurvePrivateKey) -> str:
    return self_signed(key).public_bytes(ser.Encoding.PEM).decode()


def _public_text(key: PrivateKey, encoding: ser.Encoding, fmt: ser.PublicFormat) -> str:
    return key.public_key().public_bytes(encoding, fmt).decode()


ACCEPTED: list[tuple[Algo, str]] = [
    ("rs256", "spki"),
    ("rs256", "pkcs1"),
    ("rs256", "openssh"),
    ("rs256", "jwk"),
    ("rs256", "jwk-string"),
    ("rs256", "spki-crlf-and-spaces"),
    ("es256", "spki"),
    ("es256", "openssh"),
    ("es256", "jwk"),
    ("es256", "certificate"),
    ("eddsa", "spki"),
    ("eddsa", "openssh"),
    ("eddsa", "jwk"),
]


def _accepted(algo: Algo, form: str, key: PrivateKey) -> object:
    pem, ssh = ser.Encoding.PEM, ser.Encoding.OpenSSH
    if form == "spki":
        return spki(key)
    if form == "pkcs1":
        return _public_text(key, pem, ser.PublicFormat.PKCS1)
    if form == "openssh":
        return _public_text(key, ssh, ser.PublicFormat.OpenSSH) + " tenant@example\n"
    if form == "jwk":
        return {**jwk_by_pyjwt(key.public_key()), "kid": "theirs", "alg": JWS_ALG[algo]}
    if form == "jwk-string":
        return json.dumps(jwk_by_pyjwt(key.public_key()))
    if form == "spki-crlf-and-spaces":
        return "\n  " + spki(key).replace("\n", "\r\n") + "  \n"
    assert form == "certificate" and isinstance(key, ec.EllipticCurvePrivateKey)
    return _certificate(key)


@pytest.mark.parametrize(("algo", "form"), ACCEPTED, ids=[f"{a}-{f}" for a, f in ACCEPTED])
def test_parse_public_key_accepts(algo: Algo, form: str, keys: dict[str, PrivateKey]) -> None:
    value = _accepted(algo, form, keys[algo])
    for declared in (None, algo):
        info = parse_public_key(value, declared)
        assert info.algo == algo
        assert info.bits == (2048 if algo == "rs256" else None)
        assert not PRIVATE_MEMBERS & set(info.jwk)
        assert "kid" not in info.jwk  # the kid is the caller's choice, not the parser's
        assert dict(info.jwk) == jwk_by_pyjwt(keys[algo].public_key())


# parse_public_key: rejected ----------------------------------------------------


def _rsa_with_bits(bits: int, e: int = 65537) -> str:
    # No need to generate a key this big: a public key is just (n, e), and n only has to be odd.
    n = (1 << (bits - 1)) | 1
    key = rsa.RSAPublicNumbers(e, n).public_key()
    return key.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def rejected(keys: dict[str, PrivateKey]) -> dict[str, object]:
    rsa_key, ec_key, ed_key = keys["rs256"], keys["es256"], keys["eddsa"]
    ec_jwk = jwk_by_pyjwt(ec_key.public_key())
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (weak on purpose)
    return {
        "rsa-1024": spki(small),
        "rsa-1024-jwk": jwk_by_pyjwt(small.public_key()),
        "rsa-8200": _rsa_with_bits(8200),
        "ec-p384": spki(ec.generate_private_key(ec.SECP384R1())),
        "ec-secp256k1": spki(ec.generate_private_key(ec.SECP256K1())),
        "ec-p384-jwk": jwk_by_pyjwt(ec.generate_private_key(ec.SECP384R1()).public_key()),
        "ed448": spki(ed448.Ed448PrivateKey.generate()),
        "x25519": spki(x25519.X25519PrivateKey.generate()),
        "dsa": spki(dsa.generate_private_key(1024)),  # noqa: S505 (any size is refused)
        "ssh-ecdsa-p384": _public_text(
            ec.generate_private_key(ec.SECP384R1()), ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH
        ),
        "empty": "",
        "whitespace": "  \n ",
        "garbage": "this is my key",
        "malformed-pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "truncated-pem": spki(rsa_key)[:200],
        "pem-of-a-certificate-that-is-not": (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ),
        "ssh-garbage": "ssh-rsa AAAA tenant@example",
        "ssh-type-mismatch": "ssh-ed25519 "
        + _public_text(rsa_key, ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).split()[1],
        "jwk-bad-json": '{"kty": "RSA",',
        "jwk-json-array": "[1, 2]",
        "number": 42,
        "list": [spki(rsa_key)],
        "none": None,
        "oct-jwk": {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"},
        "oct-jwk-string": json.dumps({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}),
        "jwk-no-kty": {k: v for k, v in ec_jwk.items() if k != "kty"},
        "jwk-unknown-kty": {**ec_jwk, "kty": "XYZ"},
        "jwk-missing-y": {k: v for k, v in ec_jwk.items() if k != "y"},
        "jwk-bad-point": {**ec_jwk, "y": ec_jwk["x"]},
        "jwk-bad-base64": {**ec_jwk, "x": "!!!"},
        "jwk-n-not-a-string": {**jwk_by_pyjwt(rsa_key.public_key()), "n": 12345},
        "jwk-use-enc": {**ec_jwk, "use": "enc"},
        "jwk-key-ops-without-verify": {**ec_jwk, "key_ops": ["sign"]},
        "jwk-key-ops-not-a-list": {**ec_jwk, "key_ops": "verify"},
        "jwk-alg-disagrees": {**ec_jwk, "alg": "RS256"},
        "jwk-string-alg-disagrees": json.dumps({**ec_jwk, "alg": "RS256"}),
        "jwk-okp-x25519": _x25519_jwk(),
        "jwk-rsa-private": jwk_by_pyjwt(rsa_key),
        "jwk-ec-private": jwk_by_pyjwt(ec_key),
        "jwk-okp-private": jwk_by_pyjwt(ed_key),
        "jwk-private-string": json.dumps(jwk_by_pyjwt(ec_key)),
    }


REJECTED = [
    "rsa-1024",
    "rsa-1024-jwk",
    "rsa-8200",
    "ec-p384",
    "ec-secp256k1",
    "ec-p384-jwk",
    "ed448",
    "x25519",
    "dsa",
    "ssh-ecdsa-p384",
    "empty",
    "whitespace",
    "garbage",
    "malformed-pem",
    "truncated-pem",
    "pem-of-a-certificate-that-is-not",
    "ssh-garbage",
    "ssh-type-mismatch",
    "jwk-bad-json",
    "jwk-json-array",
    "number",
    "list",
    "none",
    "oct-jwk",
    "oct-jwk-string",
    "jwk-no-kty",
    "jwk-unknown-kty",
    "jwk-missing-y",
    "jwk-bad-point",
    "jwk-bad-base64",
    "jwk-n-not-a-string",
    "jwk-use-enc",
    "jwk-key-ops-without-verify",
    "jwk-key-ops-not-a-list",
    "jwk-alg-disagrees",
    "jwk-string-alg-disagrees",
    "jwk-okp-x25519",
    "jwk-rsa-private",
    "jwk-ec-private",
    "jwk-okp-private",
    "jwk-private-string",
]


@pytest.mark.parametrize("case", REJECTED)
def test_parse_public_key_rejects(case: str, rejected: dict[str, object]) -> None:
    assert set(rejected) == set(REJECTED)
    with pytest.raises(InvalidKey) as info:
        parse_public_key(rejected[case])
    assert info.value.detail


def test_rsa_size_limits_are_named(rejected: dict[str, object]) -> None:
    with pytest.raises(InvalidKey, match="1024-bit RSA key; at least 2048"):
        parse_public_key(rejected["rsa-1024"])
    with pytest.raises(InvalidKey, match="8200-bit RSA key; at most 8192"):
        parse_public_key(rejected["rsa-8200"])
    assert parse_public_key(_rsa_with_bits(8192)).bits == 8192
    with pytest.raises(InvalidKey, match="2047-bit RSA key; at least 2048"):
        parse_public_key(_rsa_with_bits(2047))
    assert parse_public_key(_rsa_with_bits(2048)).bits == 2048


def _rsa_jwk(bits: int, e: int) -> dict[str, Any]:
    return jwk_by_pyjwt(rsa.RSAPublicNumbers(e, (1 << (bits - 1)) | 1).public_key())


#: (modulus bits, e): a 3000-bit e (a 2048-bit n cannot hold it: cryptography wants
#: e < n); an e almost as long as a 2048-bit n, which costs ~70 times 65537 to verify
#: with; and 2^32 + 1, the first odd e too long.
LONG_EXPONENTS = [(4096, (1 << 2999) | 1), (2048, (1 << 2046) | 1), (2048, 2**32 + 1)]


@pytest.mark.parametrize(("bits", "e"), LONG_EXPONENTS, ids=["e3000", "e2047", "e2^32+1"])
@pytest.mark.parametrize("form", ["pem", "jwk", "jwk-text"])
def test_rsa_public_exponent_is_bounded(bits: int, e: int, form: str) -> None:
    value: object = _rsa_with_bits(bits, e) if form == "pem" else _rsa_jwk(bits, e)
    if form == "jwk-text":
        value = json.dumps(value)
    with pytest.raises(InvalidKey) as info:
        parse_public_key(value)
    detail = info.value.detail
    assert f"has a {e.bit_length()}-bit RSA public exponent; e must be odd" in detail
    assert str(e) not in detail and str(e)[:12] not in detail


@pytest.mark.parametrize("e", [3, 17, 65537, 2**32 - 1])
def test_rsa_public_exponents_up_to_2_to_the_32_are_accepted(e: int) -> None:
    assert parse_public_key(_rsa_with_bits(2048, e)).bits == 2048
    assert parse_public_key(_rsa_jwk(2048, e)).jwk["e"] == _rsa_jwk(2048, e)["e"]


@pytest.mark.parametrize("e", [1, 2, 65538])
def test_rsa_public_exponent_that_is_even_or_one_is_refused(e: int) -> None:
    # cryptography itself refuses these (e >= 3 and odd); the JWK path must say no too.
    jwk = {**_rsa_jwk(2048, 65537), "e": base64.urlsafe_b64encode(e.to_bytes(3)).decode()}
    with pytest.raises(InvalidKey):
        parse_public_key(jwk)


@pytest.mark.parametrize("member", sorted(PRIVATE_MEMBERS))
@pytest.mark.parametrize("kty", ["RSA", "EC", "OKP"])
def test_jwk_with_any_private_member_is_refused_by_name(
    member: str, kty: str, keys: dict[str, PrivateKey]
) -> None:
    algo = {"RSA": "rs256", "EC": "es256", "OKP": "eddsa"}[kty]
    public = jwk_by_pyjwt(keys[algo].public_key())
    with pytest.raises(InvalidKey) as info:
        parse_public_key({**public, member: "AQAB"})
    assert info.value.detail == f"JWK has private members ({member}); upload only the public key"


def test_symmetric_jwk_is_refused_with_a_reason() -> None:
    with pytest.raises(InvalidKey, match="is a symmetric JWK"):
        parse_public_key({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"})


@pytest.mark.parametrize(
    ("algo", "declared"),
    [
        ("rs256", "es256"),
        ("rs256", "eddsa"),
        ("rs256", "hs256"),
        ("es256", "rs256"),
        ("eddsa", "es256"),
    ],
)
def test_declared_algo_must_match_the_key(
    algo: Algo, declared: Algo, keys: dict[str, PrivateKey]
) -> None:
    with pytest.raises(InvalidKey, match=f"is a {algo} key, but algo is {declared}"):
        parse_public_key(spki(keys[algo]), declared)


PRIVATE_FORMATS: list[tuple[Algo, ser.PrivateFormat, str]] = [
    ("rs256", ser.PrivateFormat.TraditionalOpenSSL, "RSA PRIVATE KEY"),
    ("es256", ser.PrivateFormat.TraditionalOpenSSL, "EC PRIVATE KEY"),
    *((algo, ser.PrivateFormat.PKCS8, "PRIVATE KEY") for algo in ASYMMETRIC),
    *((algo, ser.PrivateFormat.OpenSSH, "OPENSSH PRIVATE KEY") for algo in ASYMMETRIC),
]


@pytest.mark.parametrize(
    ("algo", "fmt", "label"), PRIVATE_FORMATS, ids=[f"{a}-{lbl}" for a, _, lbl in PRIVATE_FORMATS]
)
def test_private_key_pems_are_rejected_without_echo(
    algo: Algo, fmt: ser.PrivateFormat, label: str, keys: dict[str, PrivateKey]
) -> None:
    text = private_pem(keys[algo], fmt)
    assert text.startswith(f"-----BEGIN {label}-----")
    for value in (text, spki(keys[algo]) + text, "\n" + text + "\n"):
        with pytest.raises(InvalidKey) as info:
            parse_public_key(value)
        assert "private key" in info.value.detail
        body = "".join(line for line in text.splitlines() if "-----" not in line)
        assert not any(body[i : i + 12] in info.value.detail for i in range(len(body) - 11))
        assert "PRIVATE KEY-----" not in info.value.detail


def test_encrypted_private_key_is_rejected(keys: dict[str, PrivateKey]) -> None:
    text = (
        keys["es256"]
        .private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.BestAvailableEncryption(b"pass")
        )
        .decode()
    )
    assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(InvalidKey, match="private key"):
        parse_public_key(text)


def test_private_jwk_detail_names_members_not_values(keys: dict[str, PrivateKey]) -> None:
    private = jwk_by_pyjwt(keys["rs256"])
    with pytest.raises(InvalidKey) as info:
        parse_public_key(private)
    assert "private members (d, dp, dq, p, q, qi)" in info.value.detail
    for member in ("d", "p", "q", "dp", "dq", "qi"):
        assert private[member] not in str(info.value)


# jwk_to_pem ------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ASYMMETRIC)
def test_jwk_to_pem_round_trip(algo: Algo, keys: dict[str, PrivateKey]) -> None:
    jwk = {**jwk_by_pyjwt(keys[algo].public_key()), "kid": "k", "alg": JWS_ALG[algo], "use": "sig"}
    pem = jwk_to_pem(jwk)
    assert pem == spki(keys[algo])
    info = parse_public_key(pem)
    assert info.algo == algo
    assert dict(info.jwk) == {k: v for k, v in jwk.items() if k not in ("kid", "alg", "use")}
    assert jwk_to_pem(dict(info.jwk)) == pem


def test_jwk_to_pem_of_the_rfc_7638_example() -> None:
    pem = jwk_to_pem(RFC7638_JWK)
    loaded = ser.load_pem_public_key(pem.encode())
    assert isinstance(loaded, rsa.RSAPublicKey) and loaded.key_size == 2048
    assert thumbprint(dict(parse_public_key(pem).jwk)) == RFC7638_THUMBPRINT


@pytest.mark.parametrize("algo", ASYMMETRIC)
def test_jwk_to_pem_of_a_private_jwk_gives_only_the_public_half(
    algo: Algo, keys: dict[str, PrivateKey]
) -> None:
    pem = jwk_to_pem(jwk_by_pyjwt(keys[algo]))
    assert "PRIVATE" not in pem
    assert pem == spki(keys[algo])


@pytest.mark.parametrize(
    "jwk",
    [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}, {"kty": "RSA", "n": "AQAB"}, {}],
    ids=["oct", "rsa-without-e", "empty"],
)
def test_jwk_to_pem_rejects(jwk: dict[str, Any]) -> None:
    with pytest.raises(InvalidKey):
        jwk_to_pem(jwk)
