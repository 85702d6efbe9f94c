"""Quota counters as calls of the ``COUNT`` script, and their replies in request order.

A request's counters (and a private_key_jwt request's jti) go to one call of the
script: one round trip. On a Cluster a script may only touch one hash slot, and
the counters lie in a few (the client's realm, the address, the admin key), so
there they go to one call per slot, all in one pipeline: one round trip per
node, in parallel. In a pipeline the script is sent as EVAL, not EVALSHA: there, a
registered script makes redis-py ask the server whether it has it first (another
round trip, every time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.storage import _keyspace as ks
from service.storage import _scripts
from service.storage.base import Quota, QuotaExceeded

__all__ = ["Call", "Jti", "decode", "plan", "tallies"]


@dataclass(frozen=True)
class Jti:
    """A jti to record with the counters: ``SET key "" NX PX ms``."""

    key: str
    ms: int


@dataclass(frozen=True)
class Call:
    """One call of the script: the entries it counts (indices into the quotas; the jti
    is entry ``len(quotas)``), their keys, and its one argument, ``"op ms limit ..."``."""

    entries: tuple[int, ...]
    keys: tuple[str, ...]
    spec: str

    def command(self) -> tuple[Any, ...]:
        """The arguments of ``EVAL``."""
        return (_scripts.COUNT, len(self.keys), *self.keys, self.spec)


def plan(quotas: Sequence[Quota], *, per_slot: bool, jti: Jti | None = None) -> list[Call]:
    """The calls counting ``quotas`` (and recording ``jti``): one, or one per slot.

    This runs on every limited request: plain loops, no more than it needs.
    """
    keys = [ks.quota(q.scope, q.subject, q.realm) for q in quotas]
    specs = [f"{q.op} {_ms(q.window)} {q.limit} {q.amount}" for q in quotas]
    if jti is not None:
        keys.append(jti.key)
        specs.append(f"once {jti.ms} 0 1")
    if not per_slot:
        return [Call(tuple(range(len(keys))), tuple(keys), " ".join(specs))]
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(ks.slot_tag(key), []).append(i)
    return [
        Call(tuple(group), tuple(keys[i] for i in group), " ".join(specs[i] for i in group))
        for group in groups.values()
    ]


def decode(
    quotas: Sequence[Quota], calls: Sequence[Call], replies: Sequence[Any]
) -> tuple[list[int], bool]:
    """Each quota's count, and whether the jti (if any) was used for the first time.

    :raises QuotaExceeded: for the first quota (in ``quotas`` order) that is exceeded.
    """
    counts, left = _parse(len(quotas) + 1, calls, replies)
    for i, q in enumerate(quotas):
        if _exceeded(q, counts[i]):
            raise QuotaExceeded(q, max(1, math.ceil(left[i] / 1000)))
    return counts[:-1], counts[-1] == 1


def tallies(
    quotas: Sequence[Quota], calls: Sequence[Call], replies: Sequence[Any]
) -> list[tuple[int, float]]:
    """Each quota's count and the seconds left in its window, whatever its limit."""
    counts, left = _parse(len(quotas), calls, replies)
    return [(count, ms / 1000) for count, ms in zip(counts, left, strict=True)]


def _parse(size: int, calls: Sequence[Call], replies: Sequence[Any]) -> tuple[list[int], list[int]]:
    counts, left = [0] * size, [0] * size
    for call, reply in zip(calls, replies, strict=True):
        numbers = str(reply).split()
        for n, i in enumerate(call.entries):
            counts[i], left[i] = int(numbers[2 * n]), int(numbers[2 * n + 1])
    return counts, left


def _exceeded(quota: Quota, count: int) -> bool:
    if quota.limit <= 0 or quota.op == "reset":
        return False
    # A check reads a lockout: in force once the failures reached the limit. A hit
    # is the request itself: the limit-th is still let through.
    return count >= quota.limit if quota.op == "check" else count > quota.limit


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
