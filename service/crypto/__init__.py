"""Everything cryptographic, and the only package that imports joserfc.

It generates keys, parses the public keys tenants upload (PEM, OpenSSH or JWK),
builds public JWKs and thumbprints, converts JWKs to PEM, imports keys once into
opaque handles (``SigningKey``, ``VerificationKey``) that sign and verify JWTs,
checks claims, parses client key sets (RFC 7591 ``jwks``), and seals secrets with
AES-256-GCM before they reach the store (under one of several KEKs, by id). joserfc
and cryptography exceptions are translated into ``CryptoError`` subclasses here and
never leave the package.
"""

from service.crypto._errors import CryptoError, InvalidKey, InvalidToken, MissingKek, SealError
from service.crypto._handles import (
    SigningKey,
    VerificationKey,
    load_signing_key,
    load_verification_key,
)
from service.crypto._jwks import parse_client_jwks, verification_algorithms
from service.crypto._keys import (
    GeneratedKey,
    KeyPair,
    PublicKeyInfo,
    generate_key,
    generate_key_pair,
    jwk_to_pem,
    parse_public_key,
    public_jwk,
    thumbprint,
)
from service.crypto._sealing import Sealer, new_kek, sealed_kek_id
from service.crypto._tokens import (
    MAX_TOKEN_BYTES,
    UnverifiedJWT,
    check_claims,
    parse_jwt,
    sign_client_assertion,
    sign_jwt,
    unverified_claims,
    unverified_header,
    verify_jwt,
)

__all__ = [
    "MAX_TOKEN_BYTES",
    "CryptoError",
    "GeneratedKey",
    "InvalidKey",
    "InvalidToken",
    "KeyPair",
    "MissingKek",
    "PublicKeyInfo",
    "SealError",
    "Sealer",
    "SigningKey",
    "UnverifiedJWT",
    "VerificationKey",
    "check_claims",
    "generate_key",
    "generate_key_pair",
    "jwk_to_pem",
    "load_signing_key",
    "load_verification_key",
    "new_kek",
    "parse_client_jwks",
    "parse_jwt",
    "parse_public_key",
    "public_jwk",
    "sealed_kek_id",
    "sign_client_assertion",
    "sign_jwt",
    "thumbprint",
    "unverified_claims",
    "unverified_header",
    "verification_algorithms",
    "verify_jwt",
]
