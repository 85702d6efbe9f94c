"""Paths, YAML loading and the names of the real settings, for the deploy checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import yaml

REPO: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = REPO / "deploy"
KUBERNETES: Final = DEPLOY / "kubernetes"
#: Settings whose value is a secret: never a literal in a manifest, an image or Compose.
#: JWKS_REDIS_URL is one because a managed store's URL carries its password.
SECRET_SETTINGS: Final = frozenset({"JWKS_KEK", "JWKS_BOOTSTRAP_ADMIN_KEY", "JWKS_REDIS_URL"})
#: An image reference: [registry[:port]/]path[:tag][@digest].
_IMAGE: Final = re.compile(
    r"(?P<name>(?:[^/@]+/)*[^/:@]+)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)


def load_all(path: Path) -> list[Any]:
    """Every document of a YAML file (empty documents left out)."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def load(path: Path) -> Any:
    """The one document of a YAML file."""
    (document,) = load_all(path)
    return document


def yaml_files() -> list[Path]:
    """Every YAML file under deploy/."""
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def setting_names() -> frozenset[str]:
    """The ``JWKS_*`` variables service/config.py reads, from its source.

    Every quoted ``"JWKS_..."`` name, plus ``<name>_FILE`` for those read as secrets
    (``secret("JWKS_KEK", ...)`` also reads ``JWKS_KEK_FILE``).
    """
    source = (REPO / "service" / "config.py").read_text(encoding="utf-8")
    names = set(re.findall(r"\"(JWKS_[A-Z0-9_]+)\"", source))
    names |= {f"{name}_FILE" for name in re.findall(r"secret\(\s*\"(JWKS_[A-Z0-9_]+)\"", source)}
    return frozenset(names)


def image_parts(reference: str) -> tuple[str, str | None, str | None]:
    """``(name, tag, digest)`` of an image reference."""
    match = _IMAGE.fullmatch(reference)
    assert match, f"not an image reference: {reference!r}"
    return match["name"], match["tag"], match["digest"]


def assert_pinned(reference: str) -> None:
    """An image with an explicit tag other than ``latest``, or a digest."""
    _name, tag, digest = image_parts(reference)
    assert digest or tag, f"{reference}: untagged (that is :latest)"
    assert tag != "latest", f"{reference}: :latest is not a pinned version"


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every ``(key, value)`` pair of mappings nested anywhere in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)
