"""The results table, printed and written into ``bench/RESULTS.md`` between markers.

Everything outside the markers in RESULTS.md (what the profiles showed, what was
changed, what bounds each row) is written by people and kept as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Row", "render", "write"]

BEGIN = "<!-- bench:begin (written by make bench; edit outside these markers) -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Row:
    """One line of the table. Numbers that do not apply are ``None``."""

    name: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    limit: str = ""
    ratio: float | None = None
    target: str = ""
    #: ``None``: informational (no target).
    met: bool | None = None
    note: str = ""


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}"


def render(rows: Sequence[Row]) -> str:
    """A Markdown table."""
    lines = [
        "| row | req/s | p50 ms | p99 ms | errors | limit (same run) | ratio | target | met |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        name = f"{r.name} ({r.note})" if r.note else r.name
        lines.append(
            f"| {name} | {_num(r.rps)} | {_num(r.p50_ms, 2)} | {_num(r.p99_ms, 2)} | "
            f"{'' if r.errors is None else r.errors} | {r.limit} | {_num(r.ratio, 2)} | "
            f"{r.target} | {met} |"
        )
    return "\n".join(lines)


def write(path: Path, rows: Sequence[Row], facts: Mapping[str, str], notes: Sequence[str]) -> None:
    """Replace the generated part of ``path`` (creating the file if needed)."""
    machine = "\n".join(f"| {k} | {v} |" for k, v in facts.items())
    generated = "\n\n".join(
        [
            BEGIN,
            "## Last run\n\n| machine | |\n| --- | --- |\n" + machine,
            render(rows),
            "\n".join(f"- {n}" for n in notes),
            END,
        ]
    )
    text = path.read_text() if path.exists() else "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + generated + tail
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    path.write_text(text)
