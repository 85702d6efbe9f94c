"""service.crypto tokens: JWT signing and verification, claims checks, client jwks.

Tokens that must be malformed or forged are built by hand here (base64url, HMAC) or
by PyJWT, an independent implementation; the service itself only uses joserfc.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, cast

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from service import crypto
from service.crypto import (
    MAX_TOKEN_BYTES,
    CryptoError,
    GeneratedKey,
    InvalidKey,
    InvalidToken,
    check_claims,
    generate_key,
    jwk_to_pem,
    load_signing_key,
    load_verification_key,
    parse_client_jwks,
    unverified_claims,
    unverified_header,
    verification_algorithms,
)
from service.models import ALGOS, Algo

NOW = 1_800_000_000
JWS_ALG: dict[Algo, str] = {"rs256": "RS256", "hs256": "HS256", "es256": "ES256", "eddsa": "EdDSA"}
CLAIMS: dict[str, Any] = {
    "iss": "https://as.example",
    "sub": "client-1",
    "aud": "https://api.example",
    "exp": NOW + 300,
    "iat": NOW,
    "jti": "jti-1",
    "scope": "read write",
}
RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")

#: RFC 7520 §3.3/§3.4: the RSA key's public members (bilbo.baggins@hobbiton.example).
RFC7520_RSA = {
    "kty": "RSA",
    "kid": "bilbo.baggins@hobbiton.example",
    "use": "sig",
    "n": (
        "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_"
        "AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYp"
        "Pe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4f"
        "g_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"
    ),
    "e": "AQAB",
}
#: RFC 7520 §3.5: the symmetric signing key.
RFC7520_OCT = {
    "kty": "oct",
    "kid": "018c0ae5-4d9b-471b-bfd6-eef314bc7037",
    "use": "sig",
    "alg": "HS256",
    "k": "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg",
}
#: RFC 7520 §4: the payload ("It's a dangerous business, Frodo, ..."), base64url.
RFC7520_PAYLOAD = (
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb2"
    "50byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcg"
    "d2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
)
#: RFC 7520 §4.1.3: RS256 over that payload.
RFC7520_RS256 = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9."
    + RFC7520_PAYLOAD
    + ".MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp8"
    "3xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJ"
    "Dt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12p"
    "odGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg"
)
#: RFC 7520 §4.4.3: HS256 over that payload.
RFC7520_HS256 = (
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9."
    + RFC7520_PAYLOAD
    + ".s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0"
)


def sign_jwt(secret: str, algo: Algo, *, kid: str, typ: str, claims: Mapping[str, Any]) -> str:
    """Import the key, then sign: what the service does once per key, then per token."""
    return crypto.sign_jwt(load_signing_key(secret, algo, kid=kid), claims, typ=typ)


def verify_jwt(token: str, key: Mapping[str, Any] | str, algorithms: Any) -> dict[str, Any]:
    """Import the key with ``algorithms``, then verify (both can refuse)."""
    return crypto.verify_jwt(token, load_verification_key(key, algorithms))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: object) -> str:
    return b64(json.dumps(value).encode())


def hs256_by_hand(header: Mapping[str, Any], claims: object, secret: bytes) -> str:
    """An HS256 JWS computed with hmac directly, with whatever key the attacker likes."""
    signing_input = f"{segment(dict(header))}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def flip(text: str, index: int) -> str:
    """``text`` with one base64url character changed (never to the same character)."""
    swapped = "B" if text[index] == "A" else "A"
    return text[:index] + swapped + text[index + 1 :]


def pyjwt_signing_key(generated: GeneratedKey, algo: Algo) -> Any:
    if algo == "hs256":
        return generated.secret
    return jwt.PyJWK(json.loads(generated.secret), algorithm=JWS_ALG[algo]).key


def verifier(generated: GeneratedKey) -> Mapping[str, Any] | str:
    return generated.public_jwk if generated.public_jwk is not None else generated.secret


def algorithms_for(generated: GeneratedKey) -> tuple[str, ...]:
    if generated.public_jwk is None:
        return ("HS256",)
    return verification_algorithms(generated.public_jwk)


def small_rsa_jwk() -> dict[str, Any]:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (on purpose)
    return pyjwt_jwk(small.public_key())


def pyjwt_jwk(key: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPublicKey):
        text = RSAAlgorithm.to_jwk(key)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        text = ECAlgorithm.to_jwk(key)
    else:
        text = OKPAlgorithm.to_jwk(key)
    members: dict[str, Any] = json.loads(text)
    members.pop("key_ops", None)
    return members


@pytest.fixture(scope="module")
def keys() -> dict[Algo, GeneratedKey]:
    return {algo: generate_key(algo) for algo in ALGOS}


@pytest.fixture(scope="module")
def other_keys() -> dict[Algo, GeneratedKey]:
    return {algo: generate_key(algo) for algo in ALGOS}


@pytest.fixture(scope="module")
def rsa_jwk(keys: dict[Algo, GeneratedKey]) -> Mapping[str, Any]:
    assert keys["rs256"].public_jwk is not None
    return keys["rs256"].public_jwk


@pytest.fixture(scope="module")
def pss_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# Signing and verification -----------------------------------------------------------


@pytest.mark.parametrize("algo", ALGOS)
def test_sign_verify_round_trip(keys: dict[Algo, GeneratedKey], algo: Algo) -> None:
    token = sign_jwt(keys[algo].secret, algo, kid="kid-1", typ="at+jwt", claims=CLAIMS)
    assert unverified_header(token) == {"alg": JWS_ALG[algo], "kid": "kid-1", "typ": "at+jwt"}
    assert verify_jwt(token, verifier(keys[algo]), algorithms_for(keys[algo])) == CLAIMS


@pytest.mark.parametrize("algo", ALGOS)
def test_pyjwt_verifies_our_tokens(keys: dict[Algo, GeneratedKey], algo: Algo) -> None:
    token = sign_jwt(keys[algo].secret, algo, kid="kid-1", typ="JWT", claims=CLAIMS)
    public = keys[algo].public_jwk
    key: Any = keys[algo].secret
    if public is not None:
        key = jwt.PyJWK(dict(public), algorithm=JWS_ALG[algo]).key
    decoded = jwt.decode(
        token,
        key,
        algorithms=[JWS_ALG[algo]],
        audience="https://api.example",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded == CLAIMS


@pytest.mark.parametrize("algo", ALGOS)
def test_verifies_pyjwt_tokens(keys: dict[Algo, GeneratedKey], algo: Algo) -> None:
    token = jwt.encode(
        CLAIMS, pyjwt_signing_key(keys[algo], algo), algorithm=JWS_ALG[algo], headers={"kid": "a"}
    )
    assert verify_jwt(token, verifier(keys[algo]), algorithms_for(keys[algo])) == CLAIMS


@pytest.mark.parametrize("alg", RSA_ALGS)
def test_rsa_keys_verify_pkcs1_and_pss(pss_private: rsa.RSAPrivateKey, alg: str) -> None:
    # PSS signatures are randomized, so there is no fixed vector: PyJWT signs, we verify.
    token = jwt.encode(CLAIMS, pss_private, algorithm=alg)
    public = pyjwt_jwk(pss_private.public_key())
    assert verify_jwt(token, public, verification_algorithms(public)) == CLAIMS


def test_sign_does_not_change_the_callers_claims(keys: dict[Algo, GeneratedKey]) -> None:
    claims = dict(CLAIMS)
    sign_jwt(keys["es256"].secret, "es256", kid="k", typ="JWT", claims=claims)
    assert claims == CLAIMS


def test_rfc7520_rs256_vector_verifies() -> None:
    # The §4 payload is text, not claims: a good signature gets as far as the payload check.
    algorithms = verification_algorithms(RFC7520_RSA)
    with pytest.raises(InvalidToken) as good:
        verify_jwt(RFC7520_RS256, RFC7520_RSA, algorithms)
    assert good.value.detail == "payload: not a JSON object"
    with pytest.raises(InvalidToken) as bad:
        verify_jwt(flip(RFC7520_RS256, -40), RFC7520_RSA, algorithms)
    assert bad.value.detail == "signature: does not verify"


def test_rfc7520_hs256_vector_verifies() -> None:
    with pytest.raises(InvalidToken) as good:
        verify_jwt(RFC7520_HS256, RFC7520_OCT, ["HS256"])
    assert good.value.detail == "payload: not a JSON object"
    with pytest.raises(InvalidToken) as bad:
        verify_jwt(flip(RFC7520_HS256, -10), RFC7520_OCT, ["HS256"])
    assert bad.value.detail == "signature: does not verify"


def test_rfc7520_vector_alg_outside_the_allowed_set() -> None:
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(RFC7520_RS256, RFC7520_RSA, ["PS256"])
    assert exc.value.detail == "alg: not allowed for this key"


def test_largest_accepted_rsa_key_verifies() -> None:
    # An 8192-bit signature is 1366 base64url characters; joserfc's default cap is 1024.
    generated = generate_key("rs256", rsa_bits=8192)
    assert generated.public_jwk is not None
    token = sign_jwt(generated.secret, "rs256", kid="big", typ="JWT", claims=CLAIMS)
    assert len(token.rsplit(".", 1)[1]) == 1366
    assert verify_jwt(token, generated.public_jwk, ["RS256"]) == CLAIMS


# Forgeries and tampering ------------------------------------------------------------


@pytest.mark.parametrize("secret_form", ["pem", "jwk-json"])
def test_hs256_forged_with_the_rsa_public_key_is_rejected(
    rsa_jwk: Mapping[str, Any], secret_form: str
) -> None:
    # The classic key confusion: HMAC the token with the verifier's own public key.
    public = jwk_to_pem(rsa_jwk) if secret_form == "pem" else json.dumps(dict(rsa_jwk))
    forged = hs256_by_hand({"alg": "HS256", "typ": "JWT"}, CLAIMS, public.encode())
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(forged, rsa_jwk, verification_algorithms(rsa_jwk))
    assert exc.value.detail == "alg: not allowed for this key"
    # Even a caller that wrongly allows HS256 cannot make an RSA key an HMAC key.
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(forged, rsa_jwk, ["RS256", "HS256"])
    assert exc.value.detail == "alg: does not fit this key"


def test_forged_hmac_is_a_real_hmac(rsa_jwk: Mapping[str, Any]) -> None:
    # Control for the forgery test: the hand-made HMAC verifies under that secret,
    # so the rejection above comes from the algorithm policy, not a broken token.
    secret = json.dumps(dict(rsa_jwk))
    forged = hs256_by_hand({"alg": "HS256", "typ": "JWT"}, CLAIMS, secret.encode())
    assert verify_jwt(forged, secret, ["HS256"]) == CLAIMS


def test_a_public_key_pem_is_never_an_hmac_secret(rsa_jwk: Mapping[str, Any]) -> None:
    pem = jwk_to_pem(rsa_jwk)
    forged = hs256_by_hand({"alg": "HS256"}, CLAIMS, pem.encode())
    with pytest.raises(InvalidKey):
        verify_jwt(forged, pem, ["HS256"])


@pytest.mark.parametrize("allowed", [["RS256"], ["none"], ["RS256", "none"]])
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_rejected(rsa_jwk: Mapping[str, Any], allowed: list[str], alg: str) -> None:
    token = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(CLAIMS)}."
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(token, rsa_jwk, allowed)
    assert exc.value.detail == "alg: not allowed for this key"


@pytest.mark.parametrize("algo", ALGOS)
def test_tampered_payload_is_rejected(keys: dict[Algo, GeneratedKey], algo: Algo) -> None:
    header, _, signature = sign_jwt(
        keys[algo].secret, algo, kid="k", typ="JWT", claims=CLAIMS
    ).split(".")
    tampered = f"{header}.{segment({**CLAIMS, 'scope': 'admin'})}.{signature}"
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(tampered, verifier(keys[algo]), algorithms_for(keys[algo]))
    assert exc.value.detail == "signature: does not verify"


@pytest.mark.parametrize("algo", ALGOS)
def test_tampered_signature_is_rejected(keys: dict[Algo, GeneratedKey], algo: Algo) -> None:
    token = sign_jwt(keys[algo].secret, algo, kid="k", typ="JWT", claims=CLAIMS)
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(flip(token, -20), verifier(keys[algo]), algorithms_for(keys[algo]))
    assert exc.value.detail == "signature: does not verify"


@pytest.mark.parametrize("algo", ALGOS)
def test_wrong_key_is_rejected(
    keys: dict[Algo, GeneratedKey], other_keys: dict[Algo, GeneratedKey], algo: Algo
) -> None:
    token = sign_jwt(keys[algo].secret, algo, kid="k", typ="JWT", claims=CLAIMS)
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(token, verifier(other_keys[algo]), algorithms_for(other_keys[algo]))
    assert exc.value.detail == "signature: does not verify"


def test_token_of_another_key_type_is_rejected(keys: dict[Algo, GeneratedKey]) -> None:
    token = sign_jwt(keys["es256"].secret, "es256", kid="k", typ="JWT", claims=CLAIMS)
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(token, verifier(keys["eddsa"]), algorithms_for(keys["eddsa"]))
    assert exc.value.detail == "alg: not allowed for this key"


def test_empty_algorithm_list_allows_nothing(keys: dict[Algo, GeneratedKey]) -> None:
    token = sign_jwt(keys["rs256"].secret, "rs256", kid="k", typ="JWT", claims=CLAIMS)
    with pytest.raises(InvalidToken):
        verify_jwt(token, verifier(keys["rs256"]), [])


def test_jwk_alg_narrows_the_algorithms(pss_private: rsa.RSAPrivateKey) -> None:
    public = {**pyjwt_jwk(pss_private.public_key()), "alg": "RS256"}
    assert verification_algorithms(public) == ("RS256",)
    token = jwt.encode(CLAIMS, pss_private, algorithm="PS256")
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(token, public, verification_algorithms(public))
    assert exc.value.detail == "alg: not allowed for this key"
    # joserfc also holds the key to its "alg" when the caller allows more.
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(token, public, RSA_ALGS)
    assert exc.value.detail == "alg: does not fit this key"


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"], "exp": NOW},
        {"crit": ["b64"], "b64": True},
        {"crit": ["http://example.com/ext"], "http://example.com/ext": 1},
    ],
)
def test_crit_header_is_rejected(keys: dict[Algo, GeneratedKey], extra: dict[str, Any]) -> None:
    secret = keys["hs256"].secret
    token = jwt.encode(CLAIMS, secret, algorithm="HS256", headers=extra)
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(token, secret, ["HS256"])
    assert exc.value.detail == "crit: critical header parameters are not supported"


def test_unknown_header_parameters_are_ignored(keys: dict[Algo, GeneratedKey]) -> None:
    # RFC 7515 §4: parameters not understood MUST be ignored (unless listed in crit).
    secret = keys["hs256"].secret
    token = jwt.encode(CLAIMS, secret, algorithm="HS256", headers={"x-trace": "abc"})
    assert verify_jwt(token, secret, ["HS256"]) == CLAIMS


def test_embedded_jwk_and_jku_headers_are_not_used(
    keys: dict[Algo, GeneratedKey], other_keys: dict[Algo, GeneratedKey]
) -> None:
    attacker = other_keys["es256"]
    assert attacker.public_jwk is not None
    headers = {
        "jwk": dict(attacker.public_jwk),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
    }
    token = jwt.encode(
        CLAIMS, pyjwt_signing_key(attacker, "es256"), algorithm="ES256", headers=headers
    )
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(token, verifier(keys["es256"]), ["ES256"])
    assert exc.value.detail == "signature: does not verify"


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"text"', b"null", b"not json"])
def test_payload_must_be_a_json_object(keys: dict[Algo, GeneratedKey], payload: bytes) -> None:
    secret = keys["hs256"].secret
    token = jwt.api_jws.PyJWS().encode(payload, secret, algorithm="HS256")
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(token, secret, ["HS256"])
    assert exc.value.detail == "payload: not a JSON object"
    with pytest.raises(InvalidToken):
        unverified_claims(token)


# Keys that cannot verify or sign -------------------------------------------------------


def test_weak_or_unsupported_verification_keys() -> None:
    small = small_rsa_jwk()
    p384 = pyjwt_jwk(ec.generate_private_key(ec.SECP384R1()).public_key())
    for key in (small, p384):
        with pytest.raises(InvalidKey):
            verify_jwt(hs256_by_hand({"alg": "RS256"}, CLAIMS, b"x" * 32), key, ["RS256"])


@pytest.mark.parametrize(
    "key",
    [
        "short-secret",
        # Long enough, but shaped like a PEM key: joserfc only warns about these.
        "-----BEGIN PUBLIC KEY-----\nnot a key at all, just text\n-----END PUBLIC KEY-----\n",
        {"kty": "oct", "k": b64(b"0123456789abcdef")},
        {"kty": "oct", "k": b64(b"01234567")},  # joserfc warns below 14 bytes
        {"kty": "RSA", "n": "!"},
    ],
)
def test_unusable_hmac_or_malformed_keys(key: Mapping[str, Any] | str) -> None:
    token = hs256_by_hand({"alg": "HS256"}, CLAIMS, b"short-secret")
    with pytest.raises(InvalidKey):
        verify_jwt(token, key, ["HS256"])


@pytest.mark.parametrize(
    ("secret", "algo", "detail"),
    [
        ("not json", "rs256", "the signing key is not valid JWK JSON"),
        ("[1, 2]", "rs256", "the signing key must be a JWK object"),
        ("public:rs256", "rs256", "the signing key is not a private rs256 key"),
        ("private:es256", "rs256", "the signing key is a es256 key, not rs256"),
        ("private:rs256", "eddsa", "the signing key is a rs256 key, not eddsa"),
        ("too-short", "hs256", "an HMAC secret must be at least 32 bytes"),
    ],
)
def test_sign_rejects_unusable_secrets(
    keys: dict[Algo, GeneratedKey], secret: str, algo: Algo, detail: str
) -> None:
    half, _, name = secret.partition(":")
    if half == "public":
        secret = json.dumps(dict(keys[cast(Algo, name)].public_jwk or {}))
    elif half == "private":
        secret = keys[cast(Algo, name)].secret
    with pytest.raises(InvalidKey) as exc:
        sign_jwt(secret, algo, kid="k", typ="JWT", claims=CLAIMS)
    assert exc.value.detail == detail


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object()])
def test_sign_rejects_claims_that_are_not_json(
    keys: dict[Algo, GeneratedKey], value: object
) -> None:
    with pytest.raises(CryptoError) as exc:
        sign_jwt(keys["hs256"].secret, "hs256", kid="k", typ="JWT", claims={"x": value})
    assert exc.type is CryptoError


# verification_algorithms ----------------------------------------------------------------


def test_verification_algorithms_by_key_type(keys: dict[Algo, GeneratedKey]) -> None:
    public = {algo: keys[algo].public_jwk for algo in ("rs256", "es256", "eddsa")}
    assert public["rs256"] is not None and "alg" not in public["rs256"]
    assert verification_algorithms(public["rs256"]) == RSA_ALGS
    assert public["es256"] is not None and public["eddsa"] is not None
    assert verification_algorithms(public["es256"]) == ("ES256",)
    assert verification_algorithms(public["eddsa"]) == ("EdDSA",)


@pytest.mark.parametrize(
    "key",
    [
        {"kty": "EC", "crv": "P-384", "x": "a", "y": "b"},
        {"kty": "EC", "crv": "P-521", "x": "a", "y": "b"},
        {"kty": "OKP", "crv": "X25519", "x": "a"},
        {"kty": "OKP", "crv": "Ed448", "x": "a"},
        {"kty": "oct", "k": "a"},
        {"n": "a", "e": "AQAB"},
        {"kty": "RSA", "n": "a", "e": "AQAB", "alg": "HS256"},
        {"kty": "RSA", "n": "a", "e": "AQAB", "alg": "ES256"},
        {"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "alg": "RS256"},
        {"kty": "RSA", "n": "a", "e": "AQAB", "use": "enc"},
    ],
)
def test_verification_algorithms_rejects(key: dict[str, Any]) -> None:
    with pytest.raises(InvalidKey):
        verification_algorithms(key)


# unverified_header / unverified_claims --------------------------------------------------

GOOD_HEADER = segment({"alg": "RS256", "kid": "k"})
GOOD_PAYLOAD = segment({"sub": "x"})


def test_unverified_header_and_claims_of_a_good_token() -> None:
    token = f"{GOOD_HEADER}.{GOOD_PAYLOAD}.c2ln"
    assert unverified_header(token) == {"alg": "RS256", "kid": "k"}
    assert unverified_claims(token) == {"sub": "x"}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}.c2ln.extra",
        # JWE compact serialization: five parts.
        f"{segment({'alg': 'RSA-OAEP', 'enc': 'A256GCM'})}.a.b.c.d",
        f"!!!.{GOOD_PAYLOAD}.c2ln",
        f"{GOOD_HEADER}.***.c2ln",
        f"{b64(b'{not json')}.{GOOD_PAYLOAD}.c2ln",
        f"{segment(['alg', 'RS256'])}.{GOOD_PAYLOAD}.c2ln",
        f"{segment('alg')}.{GOOD_PAYLOAD}.c2ln",
        f"{segment(42)}.{GOOD_PAYLOAD}.c2ln",
        f"{segment({'kid': 'k'})}.{GOOD_PAYLOAD}.c2ln",  # no alg
        f"{segment({'alg': 'RS256', 'b64': False})}.{GOOD_PAYLOAD}.c2ln",  # b64 without crit
        f"{GOOD_HEADER}=.{GOOD_PAYLOAD}.c2ln",  # padding is not base64url
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}.{'A' * 200_000}",
        "ünïcödé.ünïcödé.ünïcödé",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}.\udcff",  # a lone surrogate cannot even be encoded
    ],
)
def test_unverified_header_rejects_malformed_tokens(token: str) -> None:
    with pytest.raises(InvalidToken) as exc:
        unverified_header(token)
    assert exc.value.detail.startswith("malformed token")


def test_unverified_header_rejects_non_strings() -> None:
    with pytest.raises(InvalidToken):
        unverified_header(f"{GOOD_HEADER}.{GOOD_PAYLOAD}.c2ln".encode())  # type: ignore[arg-type]


def test_verify_rejects_malformed_tokens(rsa_jwk: Mapping[str, Any]) -> None:
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(f"{GOOD_HEADER}.{GOOD_PAYLOAD}", rsa_jwk, ["RS256"])
    assert exc.value.detail.startswith("malformed token")


# Strict parsing: length and duplicate member names -----------------------------------

HS_HEADER = b'{"alg":"HS256","kid":"k"}'


def hs256_raw(header: bytes, payload: bytes, secret: str) -> str:
    """A valid HS256 JWS over exactly these bytes: JSON that no dict can produce."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def token_of_length(length: int, secret: str) -> str:
    """A valid HS256 token, signed by the service, of exactly ``length`` characters."""
    # base64url never ends a segment at 1 mod 4 characters: another kid shifts the rest.
    for kid in ("k", "kk", "kkk"):
        for pad in range(max(0, length * 3 // 4 - 120), length):
            claims = {"sub": "a", "pad": "x" * pad}
            token = sign_jwt(secret, "hs256", kid=kid, typ="JWT", claims=claims)
            if len(token) >= length:
                break
        if len(token) == length:
            return token
    pytest.fail(f"no token of {length} characters")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"sub":"a","exp":1800000300,"sub":"b"}',
        b'{"sub":"a","context":{"user":{"id":"a","id":"b"}}}',
        b'{"sub":"a","aud":[{"x":1,"x":2}]}',
    ],
    ids=["top-level", "nested", "in-an-array"],
)
def test_duplicate_claim_names_are_rejected(keys: dict[Algo, GeneratedKey], payload: bytes) -> None:
    # RFC 7519 §4: reject, or take the last value; json.loads takes the last one.
    secret = keys["hs256"].secret
    assert verify_jwt(hs256_raw(HS_HEADER, b'{"sub":"a"}', secret), secret, ["HS256"])
    token = hs256_raw(HS_HEADER, payload, secret)
    with pytest.raises(InvalidToken) as exc:
        verify_jwt(token, secret, ["HS256"])
    assert exc.value.detail == "payload: duplicate member name"
    with pytest.raises(InvalidToken):
        unverified_claims(token)


@pytest.mark.parametrize(
    "header",
    [b'{"alg":"HS256","kid":"k","kid":"other"}', b'{"alg":"none","alg":"HS256"}'],
    ids=["kid", "alg"],
)
def test_duplicate_header_names_are_rejected(keys: dict[Algo, GeneratedKey], header: bytes) -> None:
    # RFC 7515 §4: the same choice for the JOSE header, which joserfc decodes itself.
    secret = keys["hs256"].secret
    token = hs256_raw(header, b'{"sub":"a"}', secret)
    for parse in (unverified_header, lambda t: verify_jwt(t, secret, ["HS256"])):
        with pytest.raises(InvalidToken) as exc:
            parse(token)
        assert exc.value.detail == "header: duplicate member name"


def test_deeply_nested_claims_are_malformed_not_a_crash(keys: dict[Algo, GeneratedKey]) -> None:
    secret = keys["hs256"].secret
    token = hs256_raw(HS_HEADER, b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}", secret)
    assert len(token) <= MAX_TOKEN_BYTES
    with pytest.raises(InvalidToken) as exc:  # not RecursionError, which would be a 500
        verify_jwt(token, secret, ["HS256"])
    assert exc.value.detail == "payload: not a JSON object"


def test_a_token_of_8_KiB_is_parsed(keys: dict[Algo, GeneratedKey]) -> None:
    secret = keys["hs256"].secret
    token = token_of_length(MAX_TOKEN_BYTES, secret)
    assert MAX_TOKEN_BYTES == 8192
    assert verify_jwt(token, secret, ["HS256"])["sub"] == "a"


@pytest.mark.parametrize("length", [MAX_TOKEN_BYTES + 1, 40_000])
def test_a_longer_token_is_refused_before_it_is_decoded(
    keys: dict[Algo, GeneratedKey], length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = keys["hs256"].secret
    token = token_of_length(length, secret)

    def extract_compact(*args: object, **kwargs: object) -> None:
        raise AssertionError("a token over the limit reached joserfc")

    monkeypatch.setattr("joserfc.jws.extract_compact", extract_compact)
    for parse in (unverified_header, lambda t: verify_jwt(t, secret, ["HS256"])):
        with pytest.raises(InvalidToken) as exc:
            parse(token)
        assert exc.value.detail == "malformed token: longer than 8192 bytes"


# check_claims -----------------------------------------------------------------------


def test_valid_claims_pass() -> None:
    check_claims(
        CLAIMS,
        now=NOW,
        required=("iss", "sub", "aud", "exp", "jti"),
        iss="https://as.example",
        sub="client-1",
        audience=["https://api.example"],
    )


@pytest.mark.parametrize(
    ("exp", "leeway", "ok"),
    [
        (NOW + 1, 0, True),
        (NOW, 0, False),  # RFC 7519 §4.1.4: "on or after which" it MUST NOT be accepted
        (NOW - 1, 0, False),
        (NOW - 29, 30, True),
        (NOW - 30, 30, False),
    ],
)
def test_exp(exp: int, leeway: int, ok: bool) -> None:
    claims = {"exp": exp}
    if ok:
        check_claims(claims, now=NOW, leeway=leeway)
    else:
        with pytest.raises(InvalidToken) as exc:
            check_claims(claims, now=NOW, leeway=leeway)
        assert exc.value.detail == "exp: the token has expired"


def test_exp_at_a_fractional_now() -> None:
    with pytest.raises(InvalidToken):
        check_claims({"exp": NOW}, now=NOW + 0.5)
    check_claims({"exp": NOW + 1}, now=NOW + 0.5)


@pytest.mark.parametrize(
    ("claim", "value", "leeway", "detail"),
    [
        ("nbf", NOW, 0, None),
        ("nbf", NOW + 1, 0, "nbf: the token is not yet valid"),
        ("nbf", NOW + 30, 30, None),
        ("nbf", NOW + 31, 30, "nbf: the token is not yet valid"),
        ("iat", NOW - 3600, 0, None),
        ("iat", NOW, 0, None),
        ("iat", NOW + 1, 0, "iat: the token was issued in the future"),
        ("iat", NOW + 5, 5, None),
        ("iat", NOW + 6, 5, "iat: the token was issued in the future"),
    ],
)
def test_nbf_and_iat(claim: str, value: int, leeway: int, detail: str | None) -> None:
    if detail is None:
        check_claims({claim: value}, now=NOW, leeway=leeway)
    else:
        with pytest.raises(InvalidToken) as exc:
            check_claims({claim: value}, now=NOW, leeway=leeway)
        assert exc.value.detail == detail


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"exp": "soon"}, "exp: must be a NumericDate value"),
        ({"exp": True}, "exp: must be a NumericDate value"),
        ({"exp": float("nan")}, "exp: must be a NumericDate value"),
        ({"nbf": None}, "nbf: must be a NumericDate value"),
        ({"iat": [NOW]}, "iat: must be a NumericDate value"),
        ({"iss": 7}, "iss: must be a StringOrURI value"),
        ({"aud": 7}, "aud: must be an array of StringOrURI value or a single StringOrURI value"),
    ],
)
def test_claims_of_the_wrong_type(claims: dict[str, Any], detail: str) -> None:
    with pytest.raises(InvalidToken) as exc:
        check_claims(claims, now=NOW)
    assert exc.value.detail == detail


def test_required_claims() -> None:
    with pytest.raises(InvalidToken) as exc:
        check_claims({"sub": "x"}, now=NOW, required=("sub", "jti"))
    assert exc.value.detail == "jti: missing"
    with pytest.raises(InvalidToken) as exc:
        check_claims({}, now=NOW, required=("sub", "jti"))
    assert exc.value.detail == "jti, sub: missing"
    with pytest.raises(InvalidToken) as exc:
        check_claims({"jti": ""}, now=NOW, required=("jti",))
    assert exc.value.detail == "jti: not accepted"
    check_claims({"sub": "x", "jti": "y"}, now=NOW, required=("sub", "jti"))


@pytest.mark.parametrize("name", ["iss", "sub"])
def test_iss_and_sub_must_equal(name: str) -> None:
    def check(claims: dict[str, Any]) -> None:
        if name == "iss":
            check_claims(claims, now=NOW, iss="client-1")
        else:
            check_claims(claims, now=NOW, sub="client-1")

    check({name: "client-1"})
    with pytest.raises(InvalidToken) as exc:
        check({name: "client-2"})
    assert exc.value.detail == f"{name}: not accepted"
    with pytest.raises(InvalidToken) as exc:
        check({name: ["client-1"]})
    assert exc.value.detail == f"{name}: must be a StringOrURI value"
    with pytest.raises(InvalidToken) as exc:
        check({})
    assert exc.value.detail == f"{name}: missing"


@pytest.mark.parametrize(
    ("aud", "audience", "ok"),
    [
        ("https://api.example", ["https://api.example"], True),
        ("https://api.example", "https://api.example", True),
        (["https://other.example", "https://api.example"], ["https://api.example"], True),
        ("https://api.example", ["https://a.example", "https://api.example"], True),
        ("https://other.example", ["https://api.example"], False),
        (["https://other.example"], ["https://api.example"], False),
        ([], ["https://api.example"], False),
        # A string audience is one audience, not a collection of characters.
        ("h", "https://api.example", False),
        ("https://api.example", [], False),
    ],
)
def test_aud(aud: Any, audience: Any, ok: bool) -> None:
    if ok:
        check_claims({"aud": aud}, now=NOW, audience=audience)
    else:
        with pytest.raises(InvalidToken) as exc:
            check_claims({"aud": aud}, now=NOW, audience=audience)
        assert exc.value.detail == "aud: not accepted"


def test_aud_missing_when_an_audience_is_expected() -> None:
    with pytest.raises(InvalidToken) as exc:
        check_claims({"sub": "x"}, now=NOW, audience=["https://api.example"])
    assert exc.value.detail == "aud: missing"


def test_claims_are_not_checked_against_the_wall_clock() -> None:
    # Valid at the injected "now" even though it is long past: the clock is not read.
    check_claims({"exp": 1_000_000_100, "iat": 1_000_000_000}, now=1_000_000_050)
    with pytest.raises(InvalidToken):
        check_claims({"iat": 1_000_000_000}, now=999_999_000)


# parse_client_jwks ------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_publics() -> dict[str, dict[str, Any]]:
    return {
        "rsa": pyjwt_jwk(
            rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        ),
        "ec": pyjwt_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()),
        "okp": pyjwt_jwk(ed25519.Ed25519PrivateKey.generate().public_key()),
    }


@pytest.mark.parametrize("kind", ["rsa", "ec", "okp"])
def test_parse_client_jwks_single_key(client_publics: dict[str, dict[str, Any]], kind: str) -> None:
    assert parse_client_jwks({"keys": [client_publics[kind]]}) == (client_publics[kind],)


def test_parse_client_jwks_several_keys_keep_kid_alg_use(
    client_publics: dict[str, dict[str, Any]],
) -> None:
    rsa_key = {**client_publics["rsa"], "kid": "r", "alg": "PS256", "use": "sig"}
    ec_key = {**client_publics["ec"], "kid": "e", "alg": "ES256", "key_ops": ["verify"]}
    okp_key = {**client_publics["okp"], "kid": "o", "alg": "EdDSA"}
    parsed = parse_client_jwks({"keys": [rsa_key, ec_key, okp_key]})
    ec_expected = {k: v for k, v in ec_key.items() if k != "key_ops"}
    assert parsed == (rsa_key, ec_expected, okp_key)
    # What parse_client_jwks keeps is what the OAuth layer verifies with.
    assert [verification_algorithms(k) for k in parsed] == [("PS256",), ("ES256",), ("EdDSA",)]


def test_parse_client_jwks_drops_unknown_members(
    client_publics: dict[str, dict[str, Any]],
) -> None:
    key = {**client_publics["ec"], "x5t": "abc", "ext": True}
    assert parse_client_jwks({"keys": [key]}) == (client_publics["ec"],)


def _private_rsa_jwk() -> dict[str, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    members: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private))
    members.pop("key_ops", None)
    return members


def _raw_okp(crv: str, raw: bytes) -> dict[str, Any]:
    return {"kty": "OKP", "crv": crv, "x": b64(raw)}


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda pub: [pub["ec"]], 'jwks must be an object with a "keys" array'),
        (lambda pub: {"key": [pub["ec"]]}, 'jwks must be an object with a "keys" array'),
        (lambda pub: {"keys": pub["ec"]}, 'jwks must be an object with a "keys" array'),
        (lambda pub: {"keys": []}, "jwks.keys must hold at least one key"),
        (lambda pub: {"keys": ["-----BEGIN PUBLIC KEY-----"]}, "jwks.keys[0] must be a JWK"),
        (lambda pub: {"keys": [json.dumps(pub["ec"])]}, "jwks.keys[0] must be a JWK"),
        (
            lambda pub: {"keys": [{**pub["ec"], "kid": "a"}, {**_private_rsa_jwk(), "kid": "b"}]},
            "jwks.keys[1] has private members (d, dp, dq, p, q, qi)",
        ),
        (
            lambda pub: {"keys": [small_rsa_jwk()]},
            "jwks.keys[0] is a 1024-bit RSA key",
        ),
        (
            lambda pub: {"keys": [pyjwt_jwk(ec.generate_private_key(ec.SECP384R1()).public_key())]},
            "jwks.keys[0] uses curve secp384r1",
        ),
        (
            lambda pub: {
                "keys": [
                    _raw_okp(
                        "Ed448", ed448.Ed448PrivateKey.generate().public_key().public_bytes_raw()
                    )
                ]
            },
            "jwks.keys[0] has an unsupported key type",
        ),
        (
            lambda pub: {
                "keys": [
                    _raw_okp(
                        "X25519", x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
                    )
                ]
            },
            "jwks.keys[0] has an unsupported key type",
        ),
        (
            lambda pub: {"keys": [{"kty": "oct", "k": b64(b"k" * 32)}]},
            "jwks.keys[0] is a symmetric key; jwks holds public keys only",
        ),
        (lambda pub: {"keys": [{"kty": "DSA", "y": "a"}]}, "jwks.keys[0] kty must be"),
        (lambda pub: {"keys": [{"kty": "RSA", "e": "AQAB"}]}, "jwks.keys[0] is not a well-formed"),
        (lambda pub: {"keys": [{**pub["ec"], "x": "!!"}]}, "jwks.keys[0] is not a well-formed"),
        (lambda pub: {"keys": [{**pub["ec"], "kid": 5}]}, "jwks.keys[0] is not a well-formed"),
        (lambda pub: {"keys": [{**pub["ec"], "kid": ""}]}, "jwks.keys[0] kid must be a non-empty"),
        (
            lambda pub: {"keys": [{**pub["ec"], "kid": "a"}, pub["okp"]]},
            "jwks.keys[1] has no kid",
        ),
        (
            lambda pub: {"keys": [pub["rsa"], {**pub["okp"], "kid": "a"}]},
            "jwks.keys[0] has no kid",
        ),
        (
            lambda pub: {
                "keys": [
                    {**pub["rsa"], "kid": "a"},
                    {**pub["ec"], "kid": "b"},
                    {**pub["okp"], "kid": "a"},
                ]
            },
            "jwks.keys[2] has the same kid as jwks.keys[0]",
        ),
        (lambda pub: {"keys": [{**pub["rsa"], "alg": "ES256"}]}, "jwks.keys[0] alg must be one of"),
        (lambda pub: {"keys": [{**pub["rsa"], "alg": "HS256"}]}, "jwks.keys[0] alg must be one of"),
        (lambda pub: {"keys": [{**pub["ec"], "alg": "HS256"}]}, "jwks.keys[0] alg must be one of"),
        (lambda pub: {"keys": [{**pub["ec"], "alg": "RS256"}]}, "jwks.keys[0] alg must be one of"),
        (lambda pub: {"keys": [{**pub["ec"], "alg": "ES384"}]}, "jwks.keys[0] alg must be one of"),
        (lambda pub: {"keys": [{**pub["okp"], "alg": "ES256"}]}, "jwks.keys[0] alg must be one of"),
        (lambda pub: {"keys": [{**pub["okp"], "alg": "none"}]}, "jwks.keys[0] alg must be one of"),
        (lambda pub: {"keys": [{**pub["ec"], "use": "enc"}]}, 'jwks.keys[0] use must be "sig"'),
        (
            lambda pub: {"keys": [{**pub["ec"], "key_ops": ["encrypt"]}]},
            'jwks.keys[0] key_ops must include "verify"',
        ),
    ],
)
def test_parse_client_jwks_rejects(
    client_publics: dict[str, dict[str, Any]], make: Any, detail: str
) -> None:
    with pytest.raises(InvalidKey) as exc:
        parse_client_jwks(make(client_publics))
    assert exc.value.detail.startswith(detail)


def test_parse_client_jwks_never_echoes_private_material() -> None:
    private = _private_rsa_jwk()
    with pytest.raises(InvalidKey) as exc:
        parse_client_jwks({"keys": [private]})
    for member in ("d", "p", "q"):
        assert private[member] not in exc.value.detail
        assert private[member][:16] not in str(exc.value)
