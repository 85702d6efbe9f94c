"""Realms and their key rings: what exists, what signs, what verifies, what is published.

``policy`` holds the pure decisions (which key becomes active, which retires and
until when); ``manager`` loads a ring, applies a decision and saves it with
compare-and-swap, retrying when another writer got there first; ``cache`` keeps
each realm's ring and pre-serialised JWKS in process, invalidated by the store's
change feed; ``admin`` issues and checks admin API keys; ``requests`` validates
what callers ask for.
"""

from service.keys.admin import AdminKeys
from service.keys.cache import JwksDocument
from service.keys.errors import (
    Busy,
    KeyNotFound,
    KidInUse,
    NoSigningKey,
    RealmNameTaken,
    RealmNotFound,
    RotationTooSoon,
)
from service.keys.manager import CreatedKey, KeyManager
from service.keys.requests import (
    GenerateKey,
    ImportSecret,
    KeySpec,
    UploadPublicKey,
    parse_algo,
    parse_key_request,
    parse_realm_name,
)
from service.keys.scheduler import RotationScheduler
from service.keys.signing import TokenSigner

__all__ = [
    "AdminKeys",
    "Busy",
    "CreatedKey",
    "GenerateKey",
    "ImportSecret",
    "JwksDocument",
    "KeyManager",
    "KeyNotFound",
    "KeySpec",
    "KidInUse",
    "NoSigningKey",
    "RealmNameTaken",
    "RealmNotFound",
    "RotationScheduler",
    "RotationTooSoon",
    "TokenSigner",
    "UploadPublicKey",
    "parse_algo",
    "parse_key_request",
    "parse_realm_name",
]
