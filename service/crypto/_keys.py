"""Key generation, public-key parsing, public JWKs, thumbprints and PEM output.

Uploads arrive in the formats our users' docs produce: SubjectPublicKeyInfo PEM
(``openssl rsa -pubout``, ``ssh-keygen -e -m PKCS8``), PKCS#1 ``RSA PUBLIC KEY``,
OpenSSH ``ssh-rsa``/``ssh-ed25519`` lines, X.509 certificates, and RFC 7517 JWKs.
All of them are reduced to a ``cryptography`` public key, checked once, and turned
into a JWK by joserfc.
"""

from __future__ import annotations

import json
import re
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwk
from joserfc.errors import JoseError, SecurityWarning

from service.crypto._errors import InvalidKey
from service.models import JWS_ALG, Algo

__all__ = [
    "GeneratedKey",
    "KeyPair",
    "PublicKeyInfo",
    "generate_key",
    "generate_key_pair",
    "jwk_to_pem",
    "parse_public_key",
    "public_jwk",
    "thumbprint",
]

MIN_RSA_BITS: Final = 2048
#: Larger keys only cost verifiers time; nobody needs more than this.
MAX_RSA_BITS: Final = 8192
#: The RSA public exponent e: every tool makes 65537. Verifying costs a modular
#: exponentiation by e, so a long e makes every forged signature expensive to reject
#: (measured on a 2048-bit key: 17 us with 65537, 36 us with 2^32 - 1, 1.2 ms with a
#: 1949-bit e). OpenSSL bounds e itself only above 3072-bit moduli.
MIN_RSA_EXPONENT: Final = 3
MAX_RSA_EXPONENT: Final = 2**32 - 1
#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_HS256_BYTES: Final = 32

#: joserfc's warning for RSA keys under 2048 bits, which _classify rejects with a detail.
_RSA_SIZE_WARNING: Final = r"Key size should be >= 2048 bits"
_PRIVATE_PEM: Final = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_SSH_PREFIXES: Final = ("ssh-rsa ", "ssh-ed25519 ", "ecdsa-sha2-")
#: RFC 7518 §6 and RFC 8037 §2: the members that make a JWK private.
_PRIVATE_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_KTY: Final[Mapping[Algo, Literal["RSA", "EC", "OKP"]]] = {
    "rs256": "RSA",
    "es256": "EC",
    "eddsa": "OKP",
}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class GeneratedKey:
    """A freshly generated key: the secret to seal, and the public JWK (if any).

    For hs256 ``secret`` is the shared secret itself (its UTF-8 bytes are the HMAC
    key); otherwise it is the private JWK as JSON.
    """

    secret: str
    public_jwk: Mapping[str, Any] | None


@dataclass(frozen=True)
class PublicKeyInfo:
    """An uploaded public key, checked: its algorithm, size and public JWK members."""

    algo: Algo
    jwk: Mapping[str, Any]
    bits: int | None


@dataclass(frozen=True)
class KeyPair:
    """A key pair for a client or tenant to keep: PEMs and the public JWK."""

    private_pem: str
    public_pem: str
    public_jwk: Mapping[str, Any]


def generate_key(algo: Algo, rsa_bits: int = 2048) -> GeneratedKey:
    """Generate a signing key for ``algo`` (RSA of ``rsa_bits``, P-256, Ed25519, HS256)."""
    if algo == "hs256":
        # A 256-bit secret, as a string: verifiers pass it to their JWT library as is.
        return GeneratedKey(secret="jsk_" + secrets.token_urlsafe(32), public_jwk=None)
    key = _generate(algo, rsa_bits)
    return GeneratedKey(
        secret=json.dumps(key.as_dict(private=True)),
        public_jwk=key.as_dict(private=False),
    )


def generate_key_pair(algo: Algo, rsa_bits: int = 4096) -> KeyPair:
    """Generate a key pair for the CLI: PKCS#8 private PEM, SPKI public PEM, public JWK.

    The JWK's kid is its RFC 7638 thumbprint.
    """
    if algo == "hs256":
        raise InvalidKey("hs256 is a shared secret, not a key pair")
    key = _generate(algo, rsa_bits)
    public = key.as_dict(private=False)
    return KeyPair(
        private_pem=key.as_pem(private=True).decode("ascii"),
        public_pem=key.as_pem(private=False).decode("ascii"),
        public_jwk=public_jwk(public, kid=key.thumbprint(), algo=algo),
    )


def _generate(algo: Algo, rsa_bits: int) -> jwk.RSAKey | jwk.ECKey | jwk.OKPKey:
    if algo == "rs256":
        return jwk.RSAKey.generate_key(rsa_bits)
    if algo == "es256":
        return jwk.ECKey.generate_key("P-256")
    return jwk.OKPKey.generate_key("Ed25519")


def public_jwk(members: Mapping[str, Any], *, kid: str, algo: Algo) -> dict[str, Any]:
    """The JWK a verifier needs: public members plus kid, alg and use "sig"."""
    public = {k: v for k, v in members.items() if k not in _PRIVATE_MEMBERS}
    public.update(kid=kid, alg=JWS_ALG[algo], use="sig")
    return public


def thumbprint(members: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK."""
    return _import_jwk(members).thumbprint()


def jwk_to_pem(members: Mapping[str, Any]) -> str:
    """A public JWK as a SubjectPublicKeyInfo PEM (what Jitsi's asap_key_server serves)."""
    key = _import_jwk(members)
    if not isinstance(key, jwk.RSAKey | jwk.ECKey | jwk.OKPKey):
        raise InvalidKey("a symmetric key has no PEM form")
    return key.as_pem(private=False).decode("ascii")


def parse_public_key(value: object, algo: Algo | None = None) -> PublicKeyInfo:
    """Check an uploaded public key and infer its algorithm.

    :param value: a PEM / OpenSSH / certificate string, or a JWK object.
    :param algo: the algorithm the caller declared; it must agree with the key.
    :raises InvalidKey: malformed, private, too small, of an unsupported type, or
        disagreeing with ``algo``. The detail never contains key material.
    """
    if isinstance(value, str) and value.strip().startswith("{"):
        # A JWK sent as JSON text gets exactly the checks of a JWK object (its alg too).
        value = _json_object(value.strip())
    if isinstance(value, Mapping):
        declared_alg = value.get("alg")
        raw = _public_key_from_jwk(value)
    elif isinstance(value, str):
        declared_alg = None
        raw = _from_text(value.strip())
    else:
        raise InvalidKey("must be a PEM string or a JWK object")
    inferred, bits = _classify(raw)
    if algo is not None and algo != inferred:
        raise InvalidKey(f"is a {inferred} key, but algo is {algo}")
    if declared_alg is not None and declared_alg != JWS_ALG[inferred]:
        raise InvalidKey(f"JWK alg {declared_alg!r} does not match its key type ({inferred})")
    der = raw.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    members = jwk.import_key(der, _KTY[inferred]).as_dict(private=False)
    return PublicKeyInfo(algo=inferred, jwk=members, bits=bits)


def _from_text(text: str) -> PublicKey:
    if _PRIVATE_PEM.search(text):
        raise InvalidKey(
            "is a private key; upload only the public half (openssl rsa -in private.key -pubout)"
        )
    data = text.encode("utf-8")
    try:
        if text.startswith(_SSH_PREFIXES):
            loaded: object = serialization.load_ssh_public_key(data)
        elif "-----BEGIN CERTIFICATE-----" in text:
            loaded = x509.load_pem_x509_certificate(data).public_key()
        elif "-----BEGIN" in text:
            loaded = serialization.load_pem_public_key(data)
        else:
            raise InvalidKey("is neither a PEM public key nor a JWK")
    except (ValueError, TypeError) as exc:
        raise InvalidKey("is not a well-formed PEM public key") from exc
    return _supported(loaded)


def _json_object(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidKey("is not valid JWK JSON") from exc
    if not isinstance(value, dict):
        raise InvalidKey("must be a JWK object")
    return value


def _public_key_from_jwk(members: Mapping[str, Any]) -> PublicKey:
    kty = members.get("kty")
    if kty == "oct":
        raise InvalidKey('is a symmetric JWK; upload HS256 secrets as {"algo": "hs256", "key"}')
    if kty not in ("RSA", "EC", "OKP"):
        raise InvalidKey("JWK kty must be RSA, EC or OKP")
    private = sorted(m for m in _PRIVATE_MEMBERS if m in members)
    if private:
        raise InvalidKey(
            f"JWK has private members ({', '.join(private)}); upload only the public key"
        )
    if members.get("use", "sig") != "sig":
        raise InvalidKey('JWK use must be "sig"')
    key_ops = members.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise InvalidKey('JWK key_ops must include "verify"')
    return _supported(_import_jwk(members).public_key)


def _import_jwk(members: Mapping[str, Any]) -> jwk.Key:
    # Only the members a key type defines: joserfc validates them, and optional
    # metadata (kid, x5c, ...) is ours to decide about, not the importer's.
    try:
        with warnings.catch_warnings():
            # joserfc warns about RSA keys under 2048 bits; _classify rejects them with a
            # 400 that says so. Left alone, the warning is noise in the log, and an
            # exception (a 500) wherever warnings are errors.
            warnings.filterwarnings("ignore", _RSA_SIZE_WARNING, SecurityWarning)
            return jwk.import_key(dict(members))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidKey("is not a well-formed JWK") from exc


def _supported(key: object) -> PublicKey:
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return key
    raise InvalidKey("has an unsupported key type; use RSA, EC P-256 or Ed25519")


def _classify(key: PublicKey) -> tuple[Algo, int | None]:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidKey(
                f"is a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
            )
        if key.key_size > MAX_RSA_BITS:
            raise InvalidKey(
                f"is a {key.key_size}-bit RSA key; at most {MAX_RSA_BITS} bits are accepted"
            )
        e = key.public_numbers().e
        if not MIN_RSA_EXPONENT <= e <= MAX_RSA_EXPONENT or e % 2 == 0:
            # Its bit length, not its value: the detail never holds key material.
            raise InvalidKey(
                f"has a {e.bit_length()}-bit RSA public exponent; e must be odd, "
                f"from {MIN_RSA_EXPONENT} to 2^32 - 1 (65537 is usual)"
            )
        return "rs256", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise InvalidKey(f"uses curve {key.curve.name}; only P-256 (ES256) is supported")
        return "es256", None
    return "eddsa", None
