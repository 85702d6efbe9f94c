"""Everything cryptographic, and the only package that imports joserfc.

It generates keys, parses the public keys tenants upload (PEM, OpenSSH or JWK),
builds public JWKs and thumbprints, converts JWKs to PEM, signs and verifies JWTs
and checks their claims, parses client key sets (RFC 7591 ``jwks``), and seals
secrets with AES-256-GCM before they reach the store. joserfc and cryptography
exceptions are translated into ``CryptoError`` subclasses here and never leave
the package.
"""

from service.crypto._errors import CryptoError, InvalidKey, InvalidToken, SealError
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
from service.crypto._sealing import Sealer, new_kek
from service.crypto._tokens import (
    check_claims,
    sign_client_assertion,
    sign_jwt,
    unverified_claims,
    unverified_header,
    verify_jwt,
)

__all__ = [
    "CryptoError",
    "GeneratedKey",
    "InvalidKey",
    "InvalidToken",
    "KeyPair",
    "PublicKeyInfo",
    "SealError",
    "Sealer",
    "check_claims",
    "generate_key",
    "generate_key_pair",
    "jwk_to_pem",
    "new_kek",
    "parse_client_jwks",
    "parse_public_key",
    "public_jwk",
    "sign_client_assertion",
    "sign_jwt",
    "thumbprint",
    "unverified_claims",
    "unverified_header",
    "verification_algorithms",
    "verify_jwt",
]
