"""What a caller may ask for, validated before anything is generated or stored."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from service.errors import InvalidInput
from service.models import ALGOS, REALM_NAME, Algo

__all__ = [
    "GenerateKey",
    "ImportSecret",
    "KeySpec",
    "UploadPublicKey",
    "parse_algo",
    "parse_key_request",
    "parse_realm_name",
]

#: A kid is opaque (RFC 7515 §4.1.4) but ends up in URLs and logs: printable ASCII.
_KID: Final = re.compile(r"[\x21-\x7e]{1,128}")
_MAX_NAME: Final = 50
#: RFC 7518 §3.2: a key of the same size as the hash output (256 bits) or larger.
MIN_HS256_SECRET_BYTES: Final = 32
_FIELDS: Final = frozenset(
    {"algo", "key", "public_key", "name", "kid", "use", "expected_issuer", "expected_audience"}
)


@dataclass(frozen=True)
class GenerateKey:
    """The server generates a signing key, which becomes active for its algo."""

    algo: Algo
    name: str | None = None


@dataclass(frozen=True)
class ImportSecret:
    """A caller-supplied HS256 secret, which becomes active for hs256."""

    secret: str
    name: str | None = None
    kid: str | None = None


@dataclass(frozen=True)
class UploadPublicKey:
    """A tenant's public key, verification only; ``algo`` is checked against the key."""

    public_key: str | Mapping[str, Any]
    algo: Algo | None = None
    name: str | None = None
    kid: str | None = None
    expected_issuer: str | None = None
    expected_audience: str | None = None


KeySpec = GenerateKey | ImportSecret | UploadPublicKey


def parse_realm_name(value: object) -> str:
    """A realm name: 1-64 of a-z, 0-9, '-'."""
    if not isinstance(value, str) or not REALM_NAME.fullmatch(value):
        raise InvalidInput("name must be 1-64 characters of a-z, 0-9 and '-'", field="name")
    return value


def parse_key_request(body: Mapping[str, Any]) -> KeySpec:
    """Turn a ``POST .../jwt_keys`` body into a :data:`KeySpec`.

    :raises InvalidInput: naming the first bad field.
    """
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    if body.get("use", "sign") != "sign":
        raise InvalidInput('use must be "sign"', field="use")
    algo = _algo(body.get("algo"))
    name = _name(body.get("name"))
    kid = _kid(body.get("kid"))
    if "public_key" in body:
        if "key" in body:
            raise InvalidInput("send either public_key or key, not both", field="key")
        if not isinstance(body["public_key"], str | dict):
            raise InvalidInput(
                "public_key must be a PEM string or a JWK object", field="public_key"
            )
        if algo == "hs256":
            raise InvalidInput("hs256 keys are secrets: send them as key", field="algo")
        if kid is None:
            kid = _jwk_kid(body["public_key"])  # a JWK's own kid is kept
        return UploadPublicKey(
            body["public_key"],
            algo,
            name,
            kid,
            _expected(body, "expected_issuer"),
            _expected(body, "expected_audience"),
        )
    for name_ in ("expected_issuer", "expected_audience"):
        if name_ in body:
            raise InvalidInput(f"{name_} applies to uploaded public keys only", field=name_)
    if algo is None:
        raise InvalidInput("algo is required (rs256, hs256, es256 or eddsa)", field="algo")
    if "key" in body:
        if algo != "hs256":
            raise InvalidInput(
                "only hs256 secrets can be supplied as key; send public keys as public_key",
                field="key",
            )
        secret = body["key"]
        if not isinstance(secret, str) or len(secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise InvalidInput(
                f"key must be a string of at least {MIN_HS256_SECRET_BYTES} bytes", field="key"
            )
        return ImportSecret(secret, name, kid)
    if kid is not None:
        raise InvalidInput("kid can only be chosen for uploaded keys", field="kid")
    return GenerateKey(algo, name)


def _jwk_kid(public_key: str | dict[str, Any]) -> str | None:
    """The kid of a JWK sent as an object or as JSON text (RFC 7517 §4.5), if it has one."""
    members: object = public_key
    if isinstance(public_key, str):
        text = public_key.strip()
        if not text.startswith("{"):
            return None  # PEM or OpenSSH: no kid of its own
        try:
            members = json.loads(text)
        except ValueError:
            return None  # not JSON: the key parser names the problem
    if not isinstance(members, dict) or "kid" not in members:
        return None
    return _kid(members["kid"])


def parse_algo(value: object) -> Algo:
    """A key algorithm name (rs256, hs256, es256, eddsa)."""
    algo = _algo(value)
    if algo is None:
        raise InvalidInput("algo is required (rs256, hs256, es256 or eddsa)", field="algo")
    return algo


def _algo(value: object) -> Algo | None:
    if value is None:
        return None
    for algo in ALGOS:
        if value == algo:
            return algo
    raise InvalidInput(f"algo must be one of {', '.join(ALGOS)}", field="algo")


def _name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_NAME:
        raise InvalidInput(f"name must be 1-{_MAX_NAME} characters", field="name")
    return value


def _kid(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _KID.fullmatch(value):
        raise InvalidInput("kid must be 1-128 printable ASCII characters", field="kid")
    return value


def _expected(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise InvalidInput(f"{field} must be a string of 1-256 characters", field=field)
    return value
