"""JWTs as compact JWS: signing and verifying with key handles, and claims checks.

Every operation takes a handle from :mod:`._handles`, imported once: nothing here
parses or imports a key. Verification takes its algorithms from the handle (the
stored key), never from the token, so an HS256 token cannot be checked against an
RSA key's bytes. A token is parsed once (:func:`parse_jwt`), so that its kid can
pick the key, and verified on that same parse. Claims are checked by joserfc's
``JWTClaimsRegistry`` with an injected ``now``.

Parsing is strict where joserfc is lenient: a token longer than
:data:`MAX_TOKEN_BYTES` is refused before anything is decoded, and a header or
payload with a duplicate member name is refused rather than read with its last
value.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Collection, Mapping
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from joserfc import jwk, jws, jwt
from joserfc.errors import (
    ClaimError,
    ExceededSizeError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyCurveError,
    JoseError,
    KeyParameterError,
    MissingClaimError,
)
from joserfc.util import urlsafe_b64decode

from service.crypto._errors import CryptoError, InvalidKey, InvalidToken
from service.crypto._handles import SigningKey, VerificationKey, load_signing_key, registry
from service.crypto._keys import _KTY, _classify, _supported

__all__ = [
    "MAX_TOKEN_BYTES",
    "UnverifiedJWT",
    "check_claims",
    "parse_jwt",
    "sign_client_assertion",
    "sign_jwt",
    "unverified_claims",
    "unverified_header",
    "verify_jwt",
]

#: The longest token we parse. Tokens this service signs are under 1 KiB (2 KiB
#: with an 8192-bit RSA key), and client assertions and tenants' meeting tokens are
#: of that order. joserfc's own limit (~130 KB) would let any caller make us decode
#: and verify a 40 KB token.
MAX_TOKEN_BYTES: Final = 8192

#: For splitting tokens only (it enforces joserfc's size limits); it never verifies.
_PARSER: Final = registry(())


class _DuplicateMember(ValueError):
    """A JSON object names a member twice."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §4 and RFC 7519 §4: names MUST be unique, and parsers "MUST either
    # reject [...] duplicate [...] names or use a JSON parser that returns only the
    # lexically last duplicate member name". We reject: another parser of the same
    # token (a proxy, the resource server) may take the first "sub".
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _DuplicateMember
    return members


#: json.loads(..., object_pairs_hook=...) would build a decoder per call; this is
#: built once. The hook runs for every object, nested ones too.
_STRICT_JSON: Final = json.JSONDecoder(object_pairs_hook=_unique_members)


#: RFC 8259 JSON, compact: NaN and Infinity are not numbers, so a claim cannot be one.
#: One encoder for every token (``jwt.encode`` would build one per call).
_CLAIMS_JSON: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def sign_jwt(key: SigningKey, claims: Mapping[str, Any], *, typ: str) -> str:
    """Sign ``claims`` as a compact JWS with header ``{"alg", "kid", "typ"}``.

    :raises CryptoError: the claims are not JSON.
    :raises InvalidKey: the key cannot sign (not expected of a loaded handle).
    """
    header = {"alg": key.alg, "kid": key.kid, "typ": typ}
    try:
        payload = _CLAIMS_JSON.encode(claims).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise CryptoError("the claims are not JSON (strings, finite numbers, ...)") from exc
    try:
        return jws.serialize_compact(header, payload, key._key, registry=key._registry)
    except JoseError as exc:
        raise InvalidKey(f"cannot sign {key.alg} with this key") from exc


class UnverifiedJWT:
    """A compact JWS split and decoded once, NOT verified.

    Its header picks the key (by kid) and its claims say who claims to sign it
    (RFC 7523 §3: the client is the ``sub``); :func:`verify_jwt` then checks the
    signature on this same parse.
    """

    __slots__ = ("_claims", "_obj")

    def __init__(self, obj: jws.CompactSignature) -> None:
        self._obj = obj
        self._claims: dict[str, Any] | None = None

    @property
    def header(self) -> dict[str, Any]:
        """The protected header (a JSON object)."""
        header: dict[str, Any] = self._obj.protected
        return header

    @property
    def claims(self) -> dict[str, Any]:
        """The payload as a JSON object, decoded on first use.

        :raises InvalidToken: the payload is not a JSON object.
        """
        if self._claims is None:
            self._claims = _json_object(self._obj.payload, "payload")
        return self._claims


def _json_object(data: bytes, part: str) -> dict[str, Any]:
    """``data`` (UTF-8 JSON, RFC 7519 §7.2) as an object whose member names are unique.

    :raises InvalidToken: not UTF-8 JSON, not an object, or a name is repeated.
    """
    try:
        value = _STRICT_JSON.decode(data.decode("utf-8"))
    except _DuplicateMember as exc:
        # The name is not echoed: it is the sender's text, bound for logs and replies.
        raise InvalidToken(f"{part}: duplicate member name") from exc
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise InvalidToken(f"{part}: not a JSON object") from exc
    if not isinstance(value, dict):
        raise InvalidToken(f"{part}: not a JSON object")
    return value


def parse_jwt(token: str) -> UnverifiedJWT:
    """Split a compact JWS of at most :data:`MAX_TOKEN_BYTES`, without verifying it.

    :raises InvalidToken: too long, or not a well-formed compact JWS with a JSON
        object header whose member names are unique.
    """
    if not isinstance(token, str):
        raise InvalidToken("malformed token: not a string")
    # A compact JWS is ASCII (base64url and dots), so its length in characters is
    # its length in bytes; both checks are O(1), before anything is decoded.
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken(f"malformed token: longer than {MAX_TOKEN_BYTES} bytes")
    if not token.isascii():
        raise InvalidToken("malformed token: not a compact JWS")
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=_PARSER)
    except ExceededSizeError as exc:
        raise InvalidToken("malformed token: too large") from exc
    except (JoseError, ValueError, TypeError) as exc:
        # Five parts (JWE), bad base64url or JSON, no "alg", b64 without crit.
        raise InvalidToken("malformed token: not a compact JWS") from exc
    if not isinstance(obj.protected, dict):
        raise InvalidToken("malformed token: the header is not a JSON object")
    # joserfc decoded the header with json.loads, where a repeated name keeps its
    # last value; decode it again (a few hundred bytes at most) with our decoder.
    obj.protected = _json_object(urlsafe_b64decode(obj.segments["header"]), "header")
    return UnverifiedJWT(obj)


def unverified_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, NOT verified: only to pick a key by kid.

    :raises InvalidToken: not a well-formed compact JWS with a JSON object header.
    """
    return parse_jwt(token).header


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, NOT verified.

    :raises InvalidToken: malformed, or the payload is not a JSON object.
    """
    return parse_jwt(token).claims


def verify_jwt(token: UnverifiedJWT | str, key: VerificationKey) -> dict[str, Any]:
    """Verify a compact JWS with ``key`` and return its claims.

    Only the given key is used: jku, x5u, jwk and x5c headers are never followed.
    Only the key's algorithms are accepted; "none" never is.

    :raises InvalidToken: malformed, "crit" present, alg not allowed or not fitting
        the key, bad signature, or a payload that is not a JSON object.
    """
    parsed = parse_jwt(token) if isinstance(token, str) else token
    header = parsed.header
    if "crit" in header:
        # RFC 7515 §4.1.11: a recipient that does not understand a listed extension
        # MUST reject the JWS; we understand none (this also refuses RFC 7797 b64).
        raise InvalidToken("crit: critical header parameters are not supported")
    # joserfc checks this too; an empty list would make it fall back to its defaults.
    if not key.algorithms or header.get("alg") not in key.algorithms:
        raise InvalidToken("alg: not allowed for this key")
    try:
        valid = jws.validate_compact(parsed._obj, key._key, registry=key._registry)
    except (KeyParameterError, InvalidKeyCurveError) as exc:
        raise InvalidToken("alg: does not fit this key") from exc
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidToken("malformed token") from exc
    if not valid:
        raise InvalidToken("signature: does not verify")
    return parsed.claims


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
    signing_key = load_signing_key(
        json.dumps(key.as_dict(private=True)), algo, kid=kid or key.thumbprint()
    )
    return sign_jwt(signing_key, claims, typ="client-authentication+jwt")
