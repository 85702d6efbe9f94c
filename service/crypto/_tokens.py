"""JWTs as compact JWS: signing, verification, claims checks, and client key sets.

Verification takes its algorithms from the key (``verification_algorithms``), never
from the token, so an HS256 token cannot be checked against an RSA key's bytes.
Claims are checked by joserfc's ``JWTClaimsRegistry`` with an injected ``now``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from joserfc import jws, jwt
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
    MAX_RSA_BITS,
    MIN_HS256_BYTES,
    _classify,
    _import_jwk,
    _supported,
    parse_public_key,
)
from service.models import JWS_ALG, Algo

__all__ = [
    "check_claims",
    "parse_client_jwks",
    "sign_jwt",
    "unverified_claims",
    "unverified_header",
    "verification_algorithms",
    "verify_jwt",
]

#: The JWS algorithms each key type may verify (RFC 7518 §3.1, RFC 8037 §3.1).
_ALGORITHMS: Final[Mapping[Algo, tuple[str, ...]]] = {
    "rs256": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "es256": ("ES256",),
    "eddsa": ("EdDSA",),
}
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


def verification_algorithms(key: Mapping[str, Any]) -> tuple[str, ...]:
    """The JWS algorithms a stored public JWK may verify, decided by the key alone.

    A JWK "alg" member narrows the set to itself (RFC 7517 §4.4).

    :raises InvalidKey: not an RSA, EC P-256 or Ed25519 signing key, or an "alg"
        that does not fit it.
    """
    algo = _algo_of(key)
    if algo is None:
        raise InvalidKey("is not an RSA, EC P-256 or Ed25519 public key")
    if key.get("use", "sig") != "sig":
        raise InvalidKey('use must be "sig"')
    alg = key.get("alg")
    if alg is None:
        return _ALGORITHMS[algo]
    if alg not in _ALGORITHMS[algo]:
        raise InvalidKey(f"alg must be one of {', '.join(_ALGORITHMS[algo])} for this key")
    return (alg,)


def _algo_of(key: Mapping[str, Any]) -> Algo | None:
    kty, crv = key.get("kty"), key.get("crv")
    if kty == "RSA":
        return "rs256"
    if kty == "EC" and crv == "P-256":
        return "es256"
    if kty == "OKP" and crv == "Ed25519":
        return "eddsa"
    return None


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


def parse_client_jwks(value: object) -> tuple[dict[str, Any], ...]:
    """Check RFC 7591 ``jwks`` client metadata: ``{"keys": [...]}`` of public signing keys.

    Each key gets ``parse_public_key``'s checks; kids must be unique, and present on
    every key of a set of several; "alg" must fit the key type; "use" must be "sig".

    :return: each key's public members, plus kid, alg and use when given.
    :raises InvalidKey: naming the offending key, e.g. "jwks.keys[1] has private members (d)".
    """
    if not isinstance(value, Mapping) or not isinstance(value.get("keys"), list):
        raise InvalidKey('jwks must be an object with a "keys" array')
    members: list[Any] = value["keys"]
    if not members:
        raise InvalidKey("jwks.keys must hold at least one key")
    keys = [_client_key(member, f"jwks.keys[{i}]") for i, member in enumerate(members)]
    first_with_kid: dict[str, int] = {}
    for i, key in enumerate(keys):
        kid = key.get("kid")
        if kid is None:
            if len(keys) > 1:
                raise InvalidKey(f"jwks.keys[{i}] has no kid; each key of several needs one")
            continue
        if kid in first_with_kid:
            raise InvalidKey(f"jwks.keys[{i}] has the same kid as jwks.keys[{first_with_kid[kid]}]")
        first_with_kid[kid] = i
    return tuple(keys)


def _client_key(member: object, where: str) -> dict[str, Any]:
    if not isinstance(member, Mapping):
        raise InvalidKey(f"{where} must be a JWK object")
    if member.get("kty") == "oct":
        raise InvalidKey(f"{where} is a symmetric key; jwks holds public keys only")
    try:
        # "alg" is checked below: parse_public_key only knows one alg per key type.
        info = parse_public_key({k: v for k, v in member.items() if k != "alg"})
    except InvalidKey as exc:
        raise InvalidKey(f"{where} {exc.detail.removeprefix('JWK ')}") from exc
    alg = member.get("alg")
    if alg is not None and alg not in _ALGORITHMS[info.algo]:
        raise InvalidKey(f"{where} alg must be one of {', '.join(_ALGORITHMS[info.algo])}")
    kid = member.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise InvalidKey(f"{where} kid must be a non-empty string")
    key = dict(info.jwk)
    key.update({name: member[name] for name in ("kid", "alg", "use") if name in member})
    return key
