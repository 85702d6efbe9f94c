"""JWTs as compact JWS: signing, verification and claims checks.

Verification takes its algorithms from the key (``verification_algorithms``), never
from the token, so an HS256 token cannot be checked against an RSA key's bytes.
Claims are checked by joserfc's ``JWTClaimsRegistry`` with an injected ``now``.
"""

from __future__ import annotations

import json
import math
import secrets
import warnings
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from joserfc import jwk, jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExceededSizeError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyCurveError,
    InvalidPayloadError,
    JoseError,
    KeyParameterError,
    MissingClaimError,
    SecurityWarning,
)
from joserfc.jwk import Key, OctKey

from service.crypto._errors import CryptoError, InvalidKey, InvalidToken
from service.crypto._keys import (
    _KTY,
    MAX_RSA_BITS,
    MIN_HS256_BYTES,
    _classify,
    _import_jwk,
    _supported,
)
from service.models import JWS_ALG, Algo

__all__ = [
    "check_claims",
    "sign_client_assertion",
    "sign_jwt",
    "unverified_claims",
    "unverified_header",
    "verify_jwt",
]

#: joserfc warns on every use of "EdDSA", which RFC 9864 deprecates for "Ed25519";
#: our JWKS and the verifiers we serve still speak "EdDSA".
_EDDSA_DEPRECATED: Final = r"EdDSA is deprecated"
#: joserfc caps the signature segment at 1024 characters, too few for an RSA key
#: above 6144 bits; _keys accepts keys up to MAX_RSA_BITS.
_MAX_SIGNATURE_CHARS: Final = (MAX_RSA_BITS // 8 * 4 + 2) // 3


def _registry(algorithms: Collection[str]) -> jws.JWSRegistry:
    # RFC 7515 §4: header parameters that are not understood MUST be ignored (we refuse
    # "crit" outright), so joserfc's strict allow-list of header names is off.
    registry = jws.JWSRegistry(algorithms=algorithms, strict_check_header=False)
    registry.max_signature_length = _MAX_SIGNATURE_CHARS
    return registry


#: For splitting tokens only (it enforces the size limits); it never verifies.
_PARSER: Final = _registry(())


@contextmanager
def _eddsa_quietly() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _EDDSA_DEPRECATED, SecurityWarning)
        yield


class _StrictJSON(json.JSONEncoder):
    """RFC 8259 JSON: NaN and Infinity are not numbers, so a claim cannot be one."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["allow_nan"] = False
        super().__init__(**kwargs)


def sign_jwt(secret: str, algo: Algo, *, kid: str, typ: str, claims: Mapping[str, Any]) -> str:
    """Sign ``claims`` as a compact JWS with header ``{"alg", "kid", "typ"}``.

    :param secret: the opened sealed secret: the private JWK as JSON text, or for
        hs256 the shared secret (the HMAC key is its UTF-8 bytes).
    :raises InvalidKey: the secret is not a usable private ``algo`` key.
    :raises CryptoError: the claims are not JSON.
    """
    key = _signing_key(secret, algo)
    alg = JWS_ALG[algo]
    header = {"alg": alg, "kid": kid, "typ": typ}
    try:
        with _eddsa_quietly():
            return jwt.encode(
                header,
                dict(claims),
                key,
                registry=_registry([alg]),
                encoder_cls=_StrictJSON,
                default_type=None,
            )
    except (TypeError, ValueError) as exc:
        raise CryptoError("the claims are not JSON (strings, finite numbers, ...)") from exc
    except JoseError as exc:
        raise InvalidKey(f"cannot sign {alg} with this key") from exc


def _signing_key(secret: str, algo: Algo) -> Key:
    if algo == "hs256":
        return _hmac_key(secret)
    try:
        members = json.loads(secret)
    except ValueError as exc:
        raise InvalidKey("the signing key is not JWK JSON") from exc
    if not isinstance(members, dict):
        raise InvalidKey("the signing key is not a JWK object")
    key = _import_jwk(members)
    if isinstance(key, OctKey) or not key.is_private:
        raise InvalidKey(f"the signing key is not a private {algo} key")
    try:
        inferred, _ = _classify(_supported(key.public_key))
    except InvalidKey as exc:
        raise InvalidKey(f"the signing key {exc.detail}") from exc
    if inferred != algo:
        raise InvalidKey(f"the signing key is a {inferred} key, not {algo}")
    return key


def unverified_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, NOT verified: only to pick a key by kid.

    :raises InvalidToken: not a well-formed compact JWS with a JSON object header.
    """
    return _split(token).protected


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, NOT verified: only to find who claims to sign it
    (RFC 7523 §3: the client is the ``sub``) before its key is known.

    :raises InvalidToken: malformed, or the payload is not a JSON object.
    """
    try:
        claims = json.loads(_split(token).payload)
    except ValueError as exc:
        raise InvalidToken("payload: not a JSON object") from exc
    if not isinstance(claims, dict):
        raise InvalidToken("payload: not a JSON object")
    return claims


def _split(token: str) -> jws.CompactSignature:
    if not isinstance(token, str):
        raise InvalidToken("malformed token: not a string")
    try:
        obj = jws.extract_compact(token.encode("utf-8"), registry=_PARSER)
    except ExceededSizeError as exc:
        raise InvalidToken("malformed token: too large") from exc
    except (JoseError, ValueError, TypeError) as exc:
        # Five parts (JWE), bad base64url or JSON, no "alg", b64 without crit.
        raise InvalidToken("malformed token: not a compact JWS") from exc
    if not isinstance(obj.protected, dict):
        raise InvalidToken("malformed token: the header is not a JSON object")
    return obj


def verify_jwt(
    token: str, key: Mapping[str, Any] | str, algorithms: Collection[str]
) -> dict[str, Any]:
    """Verify a compact JWS signed with one of ``algorithms`` and return its claims.

    Only the given key is used: jku, x5u, jwk and x5c headers are never followed.
    "none" is never accepted, even if listed.

    :param key: a public JWK (an oct JWK for HMAC), or an HMAC secret string whose
        UTF-8 bytes are the key.
    :param algorithms: usually ``verification_algorithms(key)``.
    :raises InvalidToken: malformed, "crit" present, alg not allowed or not fitting
        the key, bad signature, or a payload that is not a JSON object.
    :raises InvalidKey: ``key`` itself is unusable (malformed, weak, unsupported).
    """
    allowed = [alg for alg in algorithms if alg != "none"]
    header = unverified_header(token)
    if "crit" in header:
        # RFC 7515 §4.1.11: a recipient that does not understand a listed extension
        # MUST reject the JWS; we understand none (this also refuses RFC 7797 b64).
        raise InvalidToken("crit: critical header parameters are not supported")
    # joserfc checks this too; an empty list would make it fall back to its defaults.
    if not allowed or header.get("alg") not in allowed:
        raise InvalidToken("alg: not allowed for this key")
    verifier = _verification_key(key)
    try:
        with _eddsa_quietly():
            decoded = jwt.decode(token, verifier, registry=_registry(allowed))
    except BadSignatureError as exc:
        raise InvalidToken("signature: does not verify") from exc
    except InvalidPayloadError as exc:
        raise InvalidToken("payload: not a JSON object") from exc
    except (KeyParameterError, InvalidKeyCurveError) as exc:
        raise InvalidToken("alg: does not fit this key") from exc
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidToken("malformed token") from exc
    return decoded.claims


def _verification_key(key: Mapping[str, Any] | str) -> Key:
    if isinstance(key, str):
        return _hmac_key(key)
    if not isinstance(key, Mapping):
        raise InvalidKey("the key must be a JWK object or an HMAC secret")
    with _weak_hmac_refused():
        imported = _import_jwk(key)
    if isinstance(imported, OctKey):
        if len(imported.raw_value) < MIN_HS256_BYTES:
            raise InvalidKey(f"an HMAC key must be at least {MIN_HS256_BYTES} bytes")
        return imported
    try:
        _classify(_supported(imported.public_key))
    except InvalidKey as exc:
        raise InvalidKey(f"the verification key {exc.detail}") from exc
    return imported


def _hmac_key(secret: str) -> OctKey:
    raw = secret.encode("utf-8")
    # RFC 7518 §3.2: "A key of the same size as the hash output ... or larger MUST be used".
    if len(raw) < MIN_HS256_BYTES:
        raise InvalidKey(f"an HMAC secret must be at least {MIN_HS256_BYTES} bytes")
    try:
        with _weak_hmac_refused():
            return OctKey.import_key(raw)
    except (JoseError, ValueError) as exc:
        # joserfc refuses PEM/DER/OpenSSH public keys as HMAC secrets (key confusion).
        raise InvalidKey("an HMAC secret must not be a public key") from exc


@contextmanager
def _weak_hmac_refused() -> Iterator[None]:
    # joserfc only warns when an HMAC key is short or looks like a public key; we
    # refuse such a key whether or not warnings are errors.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        try:
            yield
        except SecurityWarning as exc:
            raise InvalidKey("the HMAC key is too short or looks like a public key") from exc


def check_claims(
    claims: Mapping[str, Any],
    *,
    now: float,
    leeway: int = 0,
    required: Collection[str] = (),
    iss: str | None = None,
    sub: str | None = None,
    audience: Collection[str] | None = None,
) -> None:
    """Check registered claims (RFC 7519 §4.1) at ``now``, allowing ``leeway`` seconds.

    exp, nbf and iat are checked whenever present (iat must not be in the future).
    ``required`` names must be present and non-empty; ``iss`` and ``sub``, when
    given, must equal; ``aud`` must hold one of ``audience``, when given.

    :raises InvalidToken: naming the failing claim, e.g. "exp: the token has expired".
    """
    options: dict[str, jwt.ClaimsOption] = {name: {"essential": True} for name in required}
    if iss is not None:
        options["iss"] = {"essential": True, "value": iss}
    if sub is not None:
        options["sub"] = {"essential": True, "value": sub}
    if audience is not None:
        accepted = [audience] if isinstance(audience, str) else list(audience)
        if not accepted:
            # joserfc treats an empty list of values as "anything goes".
            raise InvalidToken("aud: not accepted")
        options["aud"] = {"essential": True, "values": accepted}
    # NumericDate at whole seconds: joserfc's registry takes an int ``now``.
    registry = jwt.JWTClaimsRegistry(now=math.floor(now), leeway=leeway, **options)
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError as exc:
        raise InvalidToken("exp: the token has expired") from exc
    except MissingClaimError as exc:
        raise InvalidToken(f"{exc.claim.replace(',', ', ')}: missing") from exc
    except ClaimError as exc:
        raise InvalidToken(f"{exc.claim}: {_claim_failure(exc)}") from exc


def _claim_failure(exc: ClaimError) -> str:
    if exc.description == InvalidClaimError.description.format(exc.claim):
        return "not accepted"
    text = exc.description.replace(f"Claim '{exc.claim}' ", "")
    return text[:1].lower() + text[1:]


def sign_client_assertion(
    private_pem: str,
    *,
    client_id: str,
    audience: str,
    now: float,
    lifetime: int = 60,
    kid: str | None = None,
) -> str:
    """A private_key_jwt client assertion (RFC 7523 §3) signed with a private key PEM.

    iss = sub = ``client_id``; a random jti; typ ``client-authentication+jwt``
    (RFC 7523bis). ``kid`` defaults to the key's RFC 7638 thumbprint, which is what
    ``jwks-service keygen`` and ``pem2jwk`` print.

    :raises InvalidKey: not an unencrypted RSA, EC P-256 or Ed25519 private key.
    """
    try:
        loaded = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKey("is not an unencrypted PEM private key") from exc
    algo, _bits = _classify(_supported(loaded.public_key()))
    key = jwk.import_key(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        _KTY[algo],
    )
    issued = int(now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": secrets.token_urlsafe(16),
    }
    return sign_jwt(
        json.dumps(key.as_dict(private=True)),
        algo,
        kid=kid or key.thumbprint(),
        typ="client-authentication+jwt",
        claims=claims,
    )
