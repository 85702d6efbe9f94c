"""Public signing keys as verifiers hold them: client ``jwks`` and the algorithms a key allows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from service.crypto._errors import InvalidKey
from service.crypto._keys import parse_public_key, thumbprint
from service.models import Algo

__all__ = ["MAX_CLIENT_KEYS", "parse_client_jwks", "verification_algorithms"]

#: Keys in one client's set: room for a rollover (old, new, next) and then some,
#: while a set of thousands would cost a parse each at every registration.
MAX_CLIENT_KEYS: Final = 10

#: The JWS algorithms each key type may verify (RFC 7518 §3.1, RFC 8037 §3.1).
_ALGORITHMS: Final[Mapping[Algo, tuple[str, ...]]] = {
    "rs256": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "es256": ("ES256",),
    "eddsa": ("EdDSA",),
}


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
    if len(members) > MAX_CLIENT_KEYS:
        raise InvalidKey(f"jwks.keys holds {MAX_CLIENT_KEYS} keys at most")
    keys = [_client_key(member, f"jwks.keys[{i}]") for i, member in enumerate(members)]
    seen: dict[str, int] = {}
    for i, key in enumerate(keys):
        first = seen.setdefault(thumbprint(key), i)
        if first != i:
            raise InvalidKey(f"jwks.keys[{i}] is the same key as jwks.keys[{first}]")
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
