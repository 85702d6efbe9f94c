"""SECURITY.md links each promise to a test: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: `tests/x.py`, `tests/x.py::name`, `x.py::name` (a file named before), `::name`.
_REFERENCE = re.compile(r"`((?:tests/)?[\w/]*\.py)?(?:::(\w+))?`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_test_named_in_security_md_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    files = {p.name: p for p in (ROOT / "tests").rglob("test_*.py")}
    named: list[tuple[Path, str | None]] = []
    for line in text.splitlines():
        current: Path | None = None
        for match in _REFERENCE.finditer(line):
            file, test = match.groups()
            if file:
                current = ROOT / file if file.startswith("tests/") else files.get(file)
                assert current is not None and current.is_file(), (file, line)
            if test:
                assert current is not None, (test, line)
            if file or test:
                assert current is not None
                named.append((current, test))
    assert len(named) > 40
    missing = [(str(p.relative_to(ROOT)), t) for p, t in named if t and t not in _tests_in(p)]
    assert not missing, missing
