"""The Dockerfile and .dockerignore, read as ``docker build`` reads them; and the image's
environment, applied to a real ``jwks-service serve``: without JWKS_REDIS_URL it stops.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tests._service import free_port
from tests.deploy._files import REPO, SECRET_SETTINGS, assert_pinned

DOCKERFILE: Final = REPO / "Dockerfile"
DOCKERIGNORE: Final = REPO / ".dockerignore"
#: A failed start ends within this (it takes well under a second).
EXIT_TIMEOUT: Final = 10.0
_VARIABLE: Final = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and its arguments."""

    keyword: str
    arguments: str


def parse(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, continued lines joined."""
    instructions = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The build stages, each starting with its FROM."""
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        assert result, "an instruction before the first FROM"
        result[-1].append(instruction)
    return result


def env_pairs(stage: list[Instruction]) -> list[tuple[str, str]]:
    """``(name, value)`` of every ENV of ``stage``, in order, values unexpanded."""
    pairs = []
    for instruction in stage:
        if instruction.keyword == "ENV":
            for token in shlex.split(instruction.arguments):
                name, sep, value = token.partition("=")
                assert sep, f"ENV {instruction.arguments}: use the NAME=value form"
                pairs.append((name, value))
    return pairs


def exec_form(stage: list[Instruction], keyword: str) -> list[str]:
    """The JSON (exec form) arguments of the stage's last ``keyword``."""
    (*_, instruction) = [i for i in stage if i.keyword == keyword]
    value = json.loads(instruction.arguments)
    assert isinstance(value, list), f"{keyword} is not in exec form"
    return [str(v) for v in value]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore ``patterns`` keep ``path`` out of the build context.

    As docker does: the last pattern that matches the path or one of its parent
    directories decides, and ``!`` re-includes.
    """
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.removeprefix("!").strip().strip("/")
        regex = re.compile(_glob_regex(pattern))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _glob_regex(pattern: str) -> str:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


@pytest.fixture(scope="module")
def built() -> list[list[Instruction]]:
    return stages(parse(DOCKERFILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def final(built: list[list[Instruction]]) -> list[Instruction]:
    return built[-1]


def _dockerignore() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_multi_stage_on_pinned_slim_bases(built: list[list[Instruction]]) -> None:
    assert len(built) >= 2
    names = set()
    for stage in built:
        image, *alias = stage[0].arguments.split()
        if alias:
            names.add(alias[-1])
        if image in names:
            continue  # FROM an earlier stage
        assert_pinned(image)
        assert "slim" in image, image
        assert re.search(r":\d+\.\d+\.\d+", image), f"{image}: not an exact Python release"


def test_the_final_stage_copies_only_the_venv(final: list[Instruction]) -> None:
    copies = [i.arguments for i in final if i.keyword in ("COPY", "ADD")]
    assert copies
    for arguments in copies:
        assert arguments.startswith("--from="), (
            f"COPY {arguments}: the final stage copies only from the builder"
        )
    text = " ".join(i.arguments for i in final if i.keyword == "RUN")
    for tool in ("gcc", "build-essential", "apt-get install"):
        assert tool not in text, tool


def test_the_builder_installs_with_pip(built: list[list[Instruction]]) -> None:
    runs = " ".join(i.arguments for stage in built[:-1] for i in stage if i.keyword == "RUN")
    assert "pip install" in runs
    assert " -e " not in runs, "an editable install leaves the package in the builder"


def test_a_non_root_numeric_user(final: list[Instruction]) -> None:
    users = [i.arguments for i in final if i.keyword == "USER"]
    assert users, "the final stage runs as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) > 0, f"USER {users[-1]}: runAsNonRoot needs a uid"
    assert not group or (group.isdigit() and int(group) > 0)


def test_entrypoint_cmd_port_and_healthcheck(final: list[Instruction]) -> None:
    assert exec_form(final, "ENTRYPOINT") == ["jwks-service"]
    command = exec_form(final, "CMD")
    assert command[0] == "serve"
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104 (in the container)
    port = command[command.index("--port") + 1]
    assert [i.arguments for i in final if i.keyword == "EXPOSE"] == [port]
    (healthcheck,) = [i.arguments for i in final if i.keyword == "HEALTHCHECK"]
    assert f"127.0.0.1:{port}/readyz" in healthcheck
    probe = json.loads(healthcheck[healthcheck.index(" CMD ") + len(" CMD ") :])
    assert probe[0] == "python", "the slim base has no curl or wget"


def test_environment(final: list[Instruction]) -> None:
    env = dict(env_pairs(final))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["JWKS_EMBEDDED_STORE"] == "refuse"


def test_no_secret_is_baked_in(built: list[list[Instruction]]) -> None:
    secret_names = {*SECRET_SETTINGS, *(f"{name}_FILE" for name in SECRET_SETTINGS)}
    for stage in built:
        for instruction in stage:
            if instruction.keyword in ("ENV", "ARG", "LABEL"):
                for name in secret_names:
                    assert name not in instruction.arguments, instruction
            if instruction.keyword in ("COPY", "ADD"):
                for source in (".jwks-data", "kek", "compose.env", "secret", ".env"):
                    assert source not in instruction.arguments, instruction


def test_dockerignore_keeps_the_context_to_what_the_build_copies(
    built: list[list[Instruction]],
) -> None:
    patterns = _dockerignore()
    for path in (".venv/bin/python", ".git/config", ".jwks-data/kek", "deploy/compose.env"):
        assert ignored(path, patterns), path
    for path in ("tests/test_config.py", "service/__pycache__/app.cpython-312.pyc"):
        assert ignored(path, patterns), path
    # Everything the builder copies from the context is in it.
    for stage in built:
        for instruction in stage:
            if instruction.keyword == "COPY" and not instruction.arguments.startswith("--"):
                *sources, _destination = instruction.arguments.split()
                for source in sources:
                    assert (REPO / source).exists(), source
                    assert not ignored(source, patterns), source
    assert not ignored("service/app.py", patterns)


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        (".venv/bin/python", [".venv"], True),
        ("service/app.py", ["*", "!service/"], False),
        ("tests/x.py", ["*", "!service/"], True),
        ("service/__pycache__/a.pyc", ["*", "!service/", "**/__pycache__"], True),
        ("a/b/c.pyc", ["**/*.py[cod]"], True),
        ("README.md", ["*.md", "!README.md"], False),
    ],
)
def test_the_dockerignore_matcher(path: str, patterns: list[str], expected: bool) -> None:
    assert ignored(path, patterns) is expected


def test_the_image_without_a_redis_url_stops_with_one_line(
    final: list[Instruction], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKS_")}
    for name, value in env_pairs(final):
        # As docker does: $NAME and ${NAME} expand to what the environment has so far.
        env[name] = _VARIABLE.sub(lambda m: env.get(m[1] or m[2], ""), value)
    assert "JWKS_REDIS_URL" not in env
    # Not the image's /data: were the start not refused, the embedded store would make it.
    env["JWKS_DATA_DIR"] = str(tmp_path / "data")
    script = Path(sys.executable).with_name("jwks-service")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "service"]
    command = exec_form(final, "CMD")
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(free_port())
    try:
        done = subprocess.run(
            [*program, *command],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=EXIT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"serve still ran after {EXIT_TIMEOUT} s: {exc.stderr!r}")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("jwks-service: JWKS_REDIS_URL: ")
    assert "JWKS_EMBEDDED_STORE=allow" in lines[0]
    assert not (tmp_path / "data").exists()
