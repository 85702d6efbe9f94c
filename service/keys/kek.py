"""The store's key-encryption keys: the check at start, and rekeying.

The store records the id of every KEK its secrets may be sealed under: the one its
KEK check value names, and a set (``Store.kek_ids``) to which each process adds its
first KEK's id before it seals anything. A start checks its ``JWKS_KEK`` against
that record, in two round trips whatever the number of realms, instead of reading
every ring (10,000 realms would take seconds, on every start of every replica).
A key that still cannot be opened (the record was pruned while a misconfigured
replica wrote) is found lazily too: the ring cache logs it, naming its KEK id.

A rekey goes realm by realm, each through the key manager's compare-and-swap, so
that a rotation made meanwhile by a running replica is never overwritten: a lost
race reloads the ring and seals again. It leaves secrets already under the first
KEK as they are, so running it again, after an interruption or to check, resumes
where it stopped and finally changes nothing. Only a run that went through every
realm replaces the check value and forgets the other KEK ids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from service import crypto
from service.keys.errors import RealmNotFound
from service.storage import Store

__all__ = ["RekeyReport", "check_keks", "missing_keks", "rekey_store"]

_CHECK_PLAINTEXT: Final = b"jwks-service key-encryption key check"
_CHECK_AAD: Final = b"kek-check"
#: Realms listed per store round trip.
_PAGE: Final = 100


@dataclass(frozen=True)
class RekeyReport:
    """How far a rekey got: realms gone through, secrets sealed again under the first
    KEK, secrets that already were; and, once every realm is done, the KEK ids the
    store no longer needs."""

    realms: int = 0
    resealed: int = 0
    current: int = 0
    retired: tuple[str, ...] = ()


def missing_keks(kek_ids: Sequence[str]) -> crypto.MissingKek:
    """The error of a store holding secrets sealed under KEKs that JWKS_KEK lacks.

    It names the KEK ids (which are not secret) and nothing else.
    """
    names = ", ".join(repr(i) for i in sorted(kek_ids))
    plural = "s" if len(kek_ids) > 1 else ""
    return crypto.MissingKek(
        min(kek_ids),
        f"the store holds secrets sealed under KEK{plural} {names}, "
        "which JWKS_KEK does not contain",
    )


async def check_keks(store: Store, sealer: crypto.Sealer) -> None:
    """Refuse to run unless ``sealer`` has every KEK the store's secrets may be sealed
    under, and its KEK of the check value's id opens that value; then record the
    first KEK's id, before this process seals anything under it.

    On a new store, the check value is sealed under the first KEK (the first
    process to reach the store decides).

    :raises crypto.MissingKek: naming the KEK ids that JWKS_KEK lacks.
    :raises crypto.SealError: JWKS_KEK has a key of that id, but another key.
    """
    stored = await store.kek_check(sealer.seal(_CHECK_PLAINTEXT, _CHECK_AAD))
    try:
        check_id = crypto.sealed_kek_id(stored)
    except crypto.SealError as exc:
        raise crypto.SealError(
            "the store's KEK check value has an unknown format (written by a newer version?)"
        ) from exc
    missing = (await store.kek_ids() | {check_id}) - sealer.kek_ids
    if missing:
        raise missing_keks(tuple(missing))
    try:
        sealer.open(stored, _CHECK_AAD)
    except crypto.SealError as exc:
        raise crypto.SealError(
            f"JWKS_KEK does not match the key this store's secrets were sealed with "
            f"(KEK {check_id!r})"
        ) from exc
    await store.add_kek_id(sealer.kek_id)


async def rekey_store(
    store: Store,
    sealer: crypto.Sealer,
    reseal: Callable[[str], Awaitable[tuple[int, int]]],
    progress: Callable[[RekeyReport], None] | None = None,
) -> RekeyReport:
    """Seal every secret of every realm again under the first KEK; then the check
    value; then forget every other KEK id.

    :param reseal: seals one realm's secrets again (one compare-and-swap) and returns
        how many it sealed and how many already were under the first KEK.
    :param progress: called after each realm with the counts so far.
    :raises crypto.MissingKek: a secret is sealed under a KEK that JWKS_KEK lacks.
    :raises crypto.SealError: a secret does not open (another key under a KEK's id).
    """
    report = RekeyReport()
    cursor: str | None = None
    while True:
        page = await store.list_realms(_PAGE, cursor)
        for realm in page.items:
            try:
                resealed, current = await reseal(realm.name)
            except RealmNotFound:
                continue  # deleted meanwhile: nothing of it is left to seal
            except crypto.MissingKek as exc:
                raise missing_keks((exc.kek_id,)) from exc
            report = replace(
                report,
                realms=report.realms + 1,
                resealed=report.resealed + resealed,
                current=report.current + current,
            )
            if progress is not None:
                progress(report)
        cursor = page.next_cursor
        if cursor is None:
            break
    # Every realm is done: nothing names another KEK now but the check value.
    stored = await store.kek_check(sealer.seal(_CHECK_PLAINTEXT, _CHECK_AAD))
    if not sealer.is_current(stored):
        sealer.open(stored, _CHECK_AAD)  # it is this store's (the start checked it)
        await store.replace_kek_check(sealer.seal(_CHECK_PLAINTEXT, _CHECK_AAD))
    recorded = await store.kek_ids()
    await store.remove_kek_ids(tuple(recorded - {sealer.kek_id}))
    retired = (recorded | {crypto.sealed_kek_id(stored)}) - {sealer.kek_id}
    return replace(report, retired=tuple(sorted(retired)))
