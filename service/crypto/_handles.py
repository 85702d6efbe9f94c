"""Key handles: a key imported once, then used for every token it signs or verifies.

Importing is the expensive part of using a key: joserfc builds an RSA private key
from its JWK through ``RSAPrivateNumbers.private_key()``, whose key check costs
about 50 ms at 2048 bits and 300 ms at 4096 bits, holding the GIL throughout,
against about 0.3 ms for a signature. So callers import a key when it enters the
key-ring cache (:func:`load_signing_key`, :func:`load_verification_key`) and keep
the handle; :mod:`._tokens` signs and verifies with handles only. A handle is
opaque outside this package: it never shows its key material, not even in repr.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import Key, OctKey, RSAKey
from joserfc.util import base64_to_int

from service.crypto._errors import InvalidKey
from service.crypto._jwks import verification_algorithms
from service.crypto._keys import (
    MAX_RSA_BITS,
    MIN_HS256_BYTES,
    _classify,
    _import_jwk,
    _json_object,
    _supported,
)
from service.models import JWS_ALG, Algo

__all__ = [
    "SigningKey",
    "VerificationKey",
    "load_signing_key",
    "load_verification_key",
]

#: joserfc caps the signature segment at 1024 characters, too few for an RSA key
#: above 6144 bits; _keys accepts keys up to MAX_RSA_BITS.
_MAX_SIGNATURE_CHARS: Final = (MAX_RSA_BITS // 8 * 4 + 2) // 3
#: The RSA private members that let cryptography build a key without recovering primes.
_RSA_CRT: Final = ("n", "e", "d", "p", "q", "dp", "dq", "qi")


class _Registry(jws.JWSRegistry):
    """joserfc's JWS registry, without its per-use warning for "EdDSA".

    RFC 9864 deprecates "EdDSA" for "Ed25519", and joserfc warns each time the
    algorithm is looked up. Our JWKS and the verifiers we serve still speak
    "EdDSA", so we take it when it is explicitly allowed, without the warning
    (warnings.catch_warnings would do the same, but it is not thread-safe).
    """

    def get_alg(self, name: str) -> Any:
        if name == "EdDSA" and self.allowed and name in self.allowed:
            return self.algorithms[name]
        return super().get_alg(name)


def registry(algorithms: Collection[str]) -> jws.JWSRegistry:
    """A JWS registry allowing exactly ``algorithms``."""
    # RFC 7515 §4: header parameters that are not understood MUST be ignored (we refuse
    # "crit" outright), so joserfc's strict allow-list of header names is off.
    built = _Registry(algorithms=list(algorithms), strict_check_header=False)
    built.max_signature_length = _MAX_SIGNATURE_CHARS
    return built


class SigningKey:
    """A private key (or HMAC secret) imported once, ready to sign with its one algorithm."""

    __slots__ = ("_key", "_registry", "alg", "algo", "bits", "kid")

    def __init__(self, key: Key, algo: Algo, kid: str, bits: int | None) -> None:
        self._key = key
        self.algo: Algo = algo
        self.alg = JWS_ALG[algo]
        self.kid = kid
        #: RSA modulus size, else ``None``: what a signature costs grows with it.
        self.bits = bits
        self._registry = registry([self.alg])

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"


class VerificationKey:
    """A public key (or HMAC secret) imported once, with the algorithms it may verify."""

    __slots__ = ("_key", "_registry", "algorithms", "kid")

    def __init__(self, key: Key, algorithms: Collection[str], kid: str | None) -> None:
        self._key = key
        self.algorithms: tuple[str, ...] = tuple(a for a in algorithms if a != "none")
        self.kid = kid
        self._registry = registry(self.algorithms)

    def __repr__(self) -> str:
        return f"VerificationKey(kid={self.kid!r}, algorithms={self.algorithms!r})"


def load_signing_key(secret: str, algo: Algo, *, kid: str) -> SigningKey:
    """Import an opened sealed secret once: a private JWK as JSON text, or for hs256
    the shared secret (the HMAC key is its UTF-8 bytes).

    Only for secrets this service generated and sealed: an RSA key is built without
    OpenSSL's consistency check (``unsafe_skip_rsa_key_validation``). The check
    guards against malformed or malicious keys from outside; a sealed secret is
    neither, since AES-GCM under the KEK authenticates it and binds it to its
    record, and the key was made by ``cryptography`` itself. The check would cost
    50-300 ms of GIL-holding work per import. Keys from anywhere else (the CLI's
    PEM files, uploads) are fully checked where they are read.

    :raises InvalidKey: the secret is not a usable private ``algo`` key.
    """
    if algo == "hs256":
        return SigningKey(_hmac_key(secret), algo, kid, None)
    try:
        members = _json_object(secret)
    except InvalidKey as exc:
        raise InvalidKey(f"the signing key {exc.detail}") from exc
    key = _trusted_rsa(members) if members.get("kty") == "RSA" else _import_jwk(members)
    if isinstance(key, OctKey) or not key.is_private:
        raise InvalidKey(f"the signing key is not a private {algo} key")
    try:
        inferred, bits = _classify(_supported(key.public_key))
    except InvalidKey as exc:
        raise InvalidKey(f"the signing key {exc.detail}") from exc
    if inferred != algo:
        raise InvalidKey(f"the signing key is a {inferred} key, not {algo}")
    return SigningKey(key, algo, kid, bits)


def _trusted_rsa(members: Mapping[str, Any]) -> Key:
    if not all(isinstance(members.get(name), str) for name in _RSA_CRT):
        return _import_jwk(members)  # not all CRT members: joserfc recovers and checks
    try:
        n, e, d, p, q, dp, dq, qi = (base64_to_int(members[name]) for name in _RSA_CRT)
        private = rsa.RSAPrivateNumbers(
            p=p, q=q, d=d, dmp1=dp, dmq1=dq, iqmp=qi, public_numbers=rsa.RSAPublicNumbers(e, n)
        ).private_key(unsafe_skip_rsa_key_validation=True)
        with warnings.catch_warnings():
            # Under 2048 bits joserfc warns; _classify then refuses the key with a reason.
            warnings.simplefilter("ignore", SecurityWarning)
            return RSAKey.import_key(private)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidKey("the signing key is not a well-formed RSA JWK") from exc


def load_verification_key(
    material: Mapping[str, Any] | str,
    algorithms: Collection[str] | None = None,
    *,
    kid: str | None = None,
) -> VerificationKey:
    """Import a public JWK (an oct JWK for HMAC), or an HMAC secret string, once.

    :param algorithms: what the key may verify; by default what the key itself
        allows (:func:`verification_algorithms`), and HS256 for a secret string.
        "none" is dropped whatever is given.
    :raises InvalidKey: the key is malformed, weak or unsupported.
    """
    if isinstance(material, str):
        return VerificationKey(_hmac_key(material), _or(algorithms, ("HS256",)), kid)
    if not isinstance(material, Mapping):
        raise InvalidKey("the key must be a JWK object or an HMAC secret")
    with _weak_hmac_refused():
        imported = _import_jwk(material)
    if isinstance(imported, OctKey):
        if len(imported.raw_value) < MIN_HS256_BYTES:
            raise InvalidKey(f"an HMAC key must be at least {MIN_HS256_BYTES} bytes")
        return VerificationKey(imported, _or(algorithms, ("HS256",)), kid)
    try:
        _classify(_supported(imported.public_key))
    except InvalidKey as exc:
        raise InvalidKey(f"the verification key {exc.detail}") from exc
    if algorithms is None:
        algorithms = verification_algorithms(material)
    return VerificationKey(imported, algorithms, kid)


def _or(algorithms: Collection[str] | None, default: tuple[str, ...]) -> Collection[str]:
    # An empty collection allows nothing; only None means "what the key allows".
    return default if algorithms is None else algorithms


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
    # refuse such a key whether or not warnings are errors. Imports happen when a
    # key enters a cache, never per request.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        try:
            yield
        except SecurityWarning as exc:
            raise InvalidKey("the HMAC key is too short or looks like a public key") from exc
