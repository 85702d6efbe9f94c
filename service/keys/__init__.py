"""Realms and their key rings: what exists, what signs, what verifies, what is published.

``policy`` holds the pure decisions (which key becomes active, which retires and
until when); ``manager`` loads a ring, applies a decision and saves it with
compare-and-swap, retrying when another writer got there first; ``material``
makes sealed key records and opens them into key handles; ``cache`` keeps each
realm's ring prepared in process (JWKS body, ETag, key handles), and ``watch``
keeps it and every other cache current from the store's change feed;
``signing`` signs and verifies from memory; ``states`` reports the keys of the
cached rings to the metrics; ``admin`` issues and checks admin API keys;
``requests`` validates what callers ask for; ``audit`` turns ring changes into
audit events and reads the event streams; ``kek`` checks the store's KEK ids
at start and seals every secret again under the newest KEK (a rekey).
"""

from service.keys._supervise import Supervised
from service.keys._threads import usable_cores
from service.keys.admin import AdminKeys
from service.keys.audit import AuditLog
from service.keys.cache import JwksDocument, PreparedRing
from service.keys.errors import (
    Busy,
    DefaultRealmProtected,
    DuplicateKey,
    KeyNotFound,
    KidInUse,
    NoSigningKey,
    RealmNameTaken,
    RealmNotFound,
    RotationTooSoon,
    UndeliveredSecret,
)
from service.keys.kek import RekeyReport, check_keks
from service.keys.manager import KeyManager
from service.keys.material import CreatedKey, KeyMaterial, sealed_aad
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
from service.keys.states import key_states
from service.keys.watch import REVALIDATE_INTERVAL, ChangeListener, ChangeWatcher

__all__ = [
    "REVALIDATE_INTERVAL",
    "AdminKeys",
    "AuditLog",
    "Busy",
    "ChangeListener",
    "ChangeWatcher",
    "CreatedKey",
    "DefaultRealmProtected",
    "DuplicateKey",
    "GenerateKey",
    "ImportSecret",
    "JwksDocument",
    "KeyManager",
    "KeyMaterial",
    "KeyNotFound",
    "KeySpec",
    "KidInUse",
    "NoSigningKey",
    "PreparedRing",
    "RealmNameTaken",
    "RealmNotFound",
    "RekeyReport",
    "RotationScheduler",
    "RotationTooSoon",
    "Supervised",
    "TokenSigner",
    "UndeliveredSecret",
    "UploadPublicKey",
    "check_keks",
    "key_states",
    "parse_algo",
    "parse_key_request",
    "parse_realm_name",
    "sealed_aad",
    "usable_cores",
]
