"""Limits measured in the same run: the raw signing rate of one core."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["rsa_sign_rate"]

_SCRIPT = """
import sys, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=int(sys.argv[1]))
message = b"x" * 300  # about a JWS signing input
sign = lambda: key.sign(message, padding.PKCS1v15(), hashes.SHA256())
for _ in range(50):
    sign()
count, begin = 0, time.perf_counter()
while time.perf_counter() - begin < float(sys.argv[2]):
    sign()
    count += 1
print(count / (time.perf_counter() - begin))
"""


def rsa_sign_rate(bits: int, cores: Sequence[int], seconds: float = 3.0) -> float:
    """RS256 signatures per second with ``cryptography`` alone, on ``cores`` (one core)."""
    pinned = set(cores)

    def preexec() -> None:
        if pinned:
            os.sched_setaffinity(0, pinned)

    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _SCRIPT, str(bits), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=preexec,
    )
    return float(out.stdout.strip())
