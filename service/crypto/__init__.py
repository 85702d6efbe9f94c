"""Everything cryptographic, and the only package that imports joserfc.

It generates keys, parses the public keys tenants upload (PEM, OpenSSH or JWK),
builds public JWKs and thumbprints, converts JWKs to PEM, and seals secrets with
AES-256-GCM before they reach the store. joserfc and cryptography exceptions are
translated into ``CryptoError`` subclasses here and never leave the package.
"""

from service.crypto._errors import CryptoError, InvalidKey, SealError
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

__all__ = [
    "CryptoError",
    "GeneratedKey",
    "InvalidKey",
    "KeyPair",
    "PublicKeyInfo",
    "SealError",
    "Sealer",
    "generate_key",
    "generate_key_pair",
    "jwk_to_pem",
    "new_kek",
    "parse_public_key",
    "public_jwk",
    "thumbprint",
]
