"""service.crypto sealing: AES-256-GCM round trip, tampering, wrong aad, wrong KEK."""

from __future__ import annotations

import base64

import pytest

from service.crypto import Sealer, SealError, new_kek

AAD = b"acme/jky_0vRHaJyOFdkV3QVJpUJqJQ"
SECRET = b'{"kty":"EC","crv":"P-256","d":"private-scalar"}'
#: 12-byte nonce and 16-byte GCM tag around the ciphertext.
_NONCE, _TAG = 12, 16


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(new_kek())


def _raw(sealed: str) -> bytes:
    assert sealed.startswith("v1.")
    return base64.b64decode(sealed[3:], validate=True)


def _pack(raw: bytes) -> str:
    return "v1." + base64.b64encode(raw).decode()


def test_new_kek_is_32_random_bytes() -> None:
    first, second = new_kek(), new_kek()
    assert len(first) == len(second) == 32
    assert first != second


@pytest.mark.parametrize("plaintext", [SECRET, b"", b"\x00" * 1000], ids=["jwk", "empty", "long"])
def test_round_trip(sealer: Sealer, plaintext: bytes) -> None:
    sealed = sealer.seal(plaintext, AAD)
    assert sealer.open(sealed, AAD) == plaintext
    assert len(_raw(sealed)) == _NONCE + len(plaintext) + _TAG


def test_sealed_value_hides_the_plaintext(sealer: Sealer) -> None:
    sealed = sealer.seal(SECRET, AAD)
    assert SECRET not in _raw(sealed)
    assert b"private-scalar" not in _raw(sealed)
    assert "private-scalar" not in sealed
    assert base64.b64encode(SECRET).decode()[:16] not in sealed


def test_each_seal_uses_a_fresh_nonce(sealer: Sealer) -> None:
    a, b = sealer.seal(SECRET, AAD), sealer.seal(SECRET, AAD)
    assert a != b
    assert _raw(a)[:_NONCE] != _raw(b)[:_NONCE]
    assert sealer.open(a, AAD) == sealer.open(b, AAD) == SECRET


def test_another_sealer_with_the_same_kek_opens_it() -> None:
    kek = new_kek()
    assert Sealer(kek).open(Sealer(kek).seal(SECRET, AAD), AAD) == SECRET


def test_wrong_kek_does_not_open(sealer: Sealer) -> None:
    sealed = sealer.seal(SECRET, AAD)
    with pytest.raises(SealError):
        Sealer(new_kek()).open(sealed, AAD)


@pytest.mark.parametrize(
    "aad",
    [b"acme/jky_other", b"other/jky_0vRHaJyOFdkV3QVJpUJqJQ", b"", AAD + b"x", AAD.upper()],
    ids=["other-key", "other-realm", "empty", "longer", "case"],
)
def test_wrong_aad_does_not_open(sealer: Sealer, aad: bytes) -> None:
    """A ciphertext copied into another record (another realm or key id) does not open."""
    sealed = sealer.seal(SECRET, AAD)
    with pytest.raises(SealError):
        sealer.open(sealed, aad)


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_any_flipped_bit_is_detected(sealer: Sealer, where: str) -> None:
    raw = bytearray(_raw(sealer.seal(SECRET, AAD)))
    index = {"nonce": 0, "ciphertext": _NONCE + 3, "tag": len(raw) - 1}[where]
    raw[index] ^= 0x01
    with pytest.raises(SealError):
        sealer.open(_pack(bytes(raw)), AAD)


def test_truncated_or_extended_ciphertext_is_detected(sealer: Sealer) -> None:
    raw = _raw(sealer.seal(SECRET, AAD))
    for changed in (raw[:-1], raw + b"\x00", raw[:_NONCE] + raw[_NONCE + 1 :]):
        with pytest.raises(SealError):
            sealer.open(_pack(changed), AAD)


@pytest.mark.parametrize(
    "sealed",
    ["", "v2.AAAA", "AAAA", "v1.not base64!", "v1.AAA"],
    ids=["empty", "unknown-version", "no-prefix", "not-base64", "bad-padding"],
)
def test_malformed_values_raise_seal_error(sealer: Sealer, sealed: str) -> None:
    with pytest.raises(SealError):
        sealer.open(sealed, AAD)


@pytest.mark.parametrize("size", [0, 5, 11, 12, 27], ids=lambda n: f"{n}-bytes")
def test_values_too_short_to_hold_nonce_and_tag_raise_seal_error(sealer: Sealer, size: int) -> None:
    """Anything shorter than nonce + tag is not a sealed value; it must not escape as ValueError."""
    with pytest.raises(SealError):
        sealer.open(_pack(b"\x00" * size), AAD)


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33, 64])
def test_kek_must_be_32_bytes(size: int) -> None:
    with pytest.raises(SealError):
        Sealer(b"k" * size)
