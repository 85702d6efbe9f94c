"""Profiles of the service under load: py-spy's collapsed stacks, summarised.

``python -m bench --profile ROW`` runs the service under ``py-spy record`` while
that one row's load runs, then prints where the samples fell: by own time
(the function on top of the stack) and by total time (anywhere on the stack).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from pathlib import Path

__all__ = ["py_spy", "summarise"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    """The py-spy executable, if installed (``make bench`` installs it into the venv)."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _label(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "/service/", "/bench/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker != "site-packages/":
                file = marker.strip("/") + "/" + file
            break
    return f"{match['func']} ({file})"


def summarise(raw: Path, top: int = 40) -> str:
    """Own and total time per function from a py-spy ``--format raw`` file."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_label(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    if not samples:
        return "no samples"
    lines = [f"{samples} samples", "", "own time:"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "total time:"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)
