"""deploy/compose.yaml: two replicas on a password-protected, persistent Valkey.

Docker is not needed: the file is read as ``docker compose`` reads it (YAML with merge
keys), and ``${VAR}`` interpolation is checked against deploy/compose.env.example.
"""

from __future__ import annotations

import re
from typing import Any, Final

import pytest

from tests.deploy._files import DEPLOY, REPO, SECRET_SETTINGS, assert_pinned, load, setting_names

COMPOSE: Final = DEPLOY / "compose.yaml"
ENV_EXAMPLE: Final = DEPLOY / "compose.env.example"
#: ${NAME}, ${NAME:-default}, ${NAME:?message}, ${NAME-default}, ...
_INTERPOLATION: Final = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load(COMPOSE)
    return document


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def _replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run jwks-service (built from the top-level Dockerfile)."""
    return {name: s for name, s in _services(compose).items() if "build" in s}


def _valkey(compose: dict[str, Any]) -> dict[str, Any]:
    (valkey,) = [s for s in _services(compose).values() if s["image"].startswith("valkey/")]
    return valkey


def _example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not NAME=value: {line!r}"
            pairs[name.strip()] = value.strip()
    return pairs


def test_two_replicas_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    replicas = _replicas(compose)
    assert len(replicas) >= 2
    for replica in replicas.values():
        assert (DEPLOY / replica["build"]["context"]).resolve() == REPO
        assert replica["image"] == next(iter(replicas.values()))["image"]
    assert (REPO / "Dockerfile").is_file()
    host_ports = [p.rsplit(":", 1)[0] for r in replicas.values() for p in r["ports"]]
    assert len(set(host_ports)) == len(host_ports) == len(replicas), host_ports
    for replica in replicas.values():
        for port in replica["ports"]:
            assert port.startswith("127.0.0.1:"), f"{port}: published beyond loopback"
            assert port.endswith(":8000"), port


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        assert "image" in service, name
        assert_pinned(service["image"])


def test_valkey_persists_with_aof_on_a_named_volume(compose: dict[str, Any]) -> None:
    valkey = _valkey(compose)
    command = [str(arg) for arg in valkey["command"]]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    volumes = dict(v.split(":", 1) for v in valkey["volumes"])
    assert volumes, "no volume"
    data = [name for name, target in volumes.items() if target == "/data"]
    assert data and data[0] in compose["volumes"], "/data is not a named volume"
    assert "ports" not in valkey, "the store is published on the host"


def test_valkey_requires_the_password_from_the_env_file(compose: dict[str, Any]) -> None:
    command = [str(arg) for arg in _valkey(compose)["command"]]
    password = _INTERPOLATION.fullmatch(command[command.index("--requirepass") + 1])
    assert password, "a literal password"
    assert password["name"] == "VALKEY_PASSWORD"
    for replica in _replicas(compose).values():
        assert "${VALKEY_PASSWORD" in replica["environment"]["JWKS_REDIS_URL"]


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
    for replica in _replicas(compose).values():
        assert "/readyz" in " ".join(replica["healthcheck"]["test"])
        assert "curl" not in " ".join(replica["healthcheck"]["test"])


def test_replicas_wait_for_a_healthy_valkey(compose: dict[str, Any]) -> None:
    (valkey_name,) = [n for n, s in _services(compose).items() if s is _valkey(compose)]
    for name, replica in _replicas(compose).items():
        assert replica["depends_on"][valkey_name]["condition"] == "service_healthy", name


def test_every_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    for name, replica in _replicas(compose).items():
        variables = set(replica["environment"])
        assert variables <= setting_names(), f"{name}: {sorted(variables - setting_names())}"
        assert "JWKS_REDIS_URL" in variables, name


def test_secrets_are_interpolated_never_literal(compose: dict[str, Any]) -> None:
    for replica in _replicas(compose).values():
        for variable in SECRET_SETTINGS:
            value = replica["environment"][variable]
            assert _INTERPOLATION.search(value), f"{variable} has a literal value"
        assert "env_file" not in replica  # only the named variables reach the container


def test_every_interpolated_variable_is_in_the_example_env_file() -> None:
    used = {m["name"] for m in _INTERPOLATION.finditer(COMPOSE.read_text(encoding="utf-8"))}
    assert used <= _example().keys(), sorted(used - _example().keys())
    # The required ones stop `docker compose` with a message when missing (`:?`).
    text = COMPOSE.read_text(encoding="utf-8")
    for name in ("VALKEY_PASSWORD", "JWKS_KEK"):
        assert re.search(rf"\$\{{{name}:\?[^}}]+\}}", text), name


def test_the_example_env_file_holds_no_secret() -> None:
    example = _example()
    for name in ("VALKEY_PASSWORD", "JWKS_KEK", "JWKS_BOOTSTRAP_ADMIN_KEY"):
        assert example[name] == "", f"{name} has a value in the committed example"


def test_the_filled_in_env_file_is_ignored_by_git() -> None:
    lines = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "deploy/compose.env" in [line.strip() for line in lines]
