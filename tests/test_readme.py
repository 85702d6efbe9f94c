"""README.md's commands work as written, in the order given (issue 9).

Every ``sh`` and ``python`` block of the README runs, top to bottom, in one ``bash``
(``set -euo pipefail``, ``inherit_errexit``), as a reader pastes them into one terminal:
shell variables carry from block to block, and the README's own ``source
.venv/bin/activate`` is what puts ``jwks-service`` on PATH (the test's PATH holds no
directory that has it). A ``python`` block runs with that venv's ``python3`` (PyJWT
comes with the test extras), and sees what the blocks before it exported.
A block that must not run here follows a ``<!-- not run by tests/test_readme.py: why -->``
line (``make run``, which serves until stopped; the Kubernetes example).

What differs from a reader's terminal, and why:

- The service is ``jwks-service serve`` on a free port, not ``make run`` on 8000, so
  ``127.0.0.1:8000`` in a block becomes ``127.0.0.1:<port>``.
- The commands run in a temp directory that has ``.venv`` (a link to this venv) and the
  service's ``.jwks-data``, as the repository's directory has after ``make run``: the
  key files the README writes land there, and the CLI finds the store as it would.
- ``JWKS_JWKS_MAX_AGE=1`` makes the rotation lead (max-age + 5 s) 6 s instead of 305 s,
  since the README waits it out; ``JWKS_ROTATION_INTERVAL=0`` keeps scheduled rotation
  from publishing a next key at a moment the README cannot predict.

Besides the exit status, a ``# -> ...`` comment is checked against what the commands
since the previous one printed: a leading HTTP status (``# -> 409``) must appear as
``HTTP/1.1 409`` or ``"status": 409``; every JSON member name shown must appear as a
member; and a member shown as ``true``, ``false`` or ``null`` must have that value.
Other values (``"jcl_..."``, timestamps) are illustrations and are not compared.

The test fails on the first step that exits non-zero or prints something else, naming
its line in README.md, with the step and its output.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tests._service import REPO, free_port, stop, wait_ready

README: Final = REPO / "README.md"
#: The whole README must run in well under this (it takes about 15 s).
RUN_TIMEOUT: Final = 120.0
RUNNABLE: Final = frozenset({"sh", "python"})
#: Shell blocks under another name would silently not run: they must say ``sh``.
SHELL_ALIASES: Final = frozenset({"bash", "shell", "console", "zsh", "shell-session"})
SKIP: Final = re.compile(r"<!-- not run by tests/test_readme\.py: (?P<why>.+) -->")
FENCE: Final = re.compile(r"```(?P<lang>\S*)\s*")
README_ADDRESS: Final = "127.0.0.1:8000"

_EXPECTATION: Final = re.compile(r"(?:^|\s)# -> (?P<text>.*)$")
_CONTINUATION: Final = re.compile(r"\s*#\s{2,}(?P<text>.*)$")
_STATUS: Final = re.compile(r"(?:HTTP/[\d.]+ )?(?P<code>[1-5]\d\d)\b")
_JSON_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"')
_MEMBER: Final = re.compile(r"\s*:(?:\s*(?P<literal>true|false|null)\b)?")


@dataclass(frozen=True)
class Block:
    """One fenced block of README.md; ``line`` is that of its first content line."""

    lang: str
    line: int
    text: str
    skip: str | None


@dataclass(frozen=True)
class Step:
    """Lines of a runnable block up to and including a ``# ->`` expectation (or its end);
    ``expectation_line`` is where that comment starts."""

    lang: str
    line: int
    text: str
    expectation: str | None = None
    expectation_line: int = 0


def read_blocks(markdown: str) -> list[Block]:
    """The fenced blocks of ``markdown``, each with the skip reason before it, if any.

    :raises ValueError: for a shell block not marked ``sh``, or a skip marker that is
        not right before a block.
    """
    lines = markdown.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.fullmatch(lines[i])
        marker = SKIP.fullmatch(lines[i])
        if marker and not (i + 1 < len(lines) and FENCE.fullmatch(lines[i + 1])):
            raise ValueError(f"README.md line {i + 1}: a skip marker must be right before a block")
        if fence is None:
            i += 1
            continue
        lang = fence["lang"]
        if lang in SHELL_ALIASES:
            raise ValueError(f"README.md line {i + 1}: runnable shell blocks are ```sh, not {lang}")
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md line {i + 1}: the block is never closed")
        before = SKIP.fullmatch(lines[i - 1]) if i else None
        text = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(lang, i + 2, text, before["why"] if before else None))
        i = end + 1
    return blocks


def split_steps(block: Block, port: int) -> list[Step]:
    """``block`` cut after each ``# ->`` comment (and its indented continuation lines),
    with the README's address replaced by the test server's."""
    lines = block.text.replace(README_ADDRESS, f"127.0.0.1:{port}").splitlines()
    steps: list[Step] = []
    start = 0
    i = 0
    while i < len(lines):
        found = _EXPECTATION.search(lines[i])
        i += 1
        if found is None:
            continue
        at = block.line + i - 1
        expectation = [found["text"]]
        while i < len(lines) and (more := _CONTINUATION.match(lines[i])):
            if _EXPECTATION.search(lines[i]):
                break
            expectation.append(more["text"])
            i += 1
        text = "\n".join(lines[start:i]) + "\n"
        steps.append(Step(block.lang, block.line + start, text, " ".join(expectation), at))
        start = i
    if start < len(lines):
        text = "\n".join(lines[start:]) + "\n"
        steps.append(Step(block.lang, block.line + start, text))
    return steps


def unmet(expectation: str, output: str) -> list[str]:
    """What ``output`` lacks of what the ``# ->`` comment ``expectation`` shows."""
    missing = []
    status = _STATUS.match(expectation)
    if status:
        code = status["code"]
        if not re.search(rf'(?:HTTP/[\d.]+ |"status"\s*:\s*){code}\b', output):
            missing.append(f"status {code}")
    for string in _JSON_STRING.finditer(expectation):
        member = _MEMBER.match(expectation, string.end())
        if member is None:
            continue  # a value, not a member name
        name = re.escape(string.group())
        literal = member["literal"]
        wanted = rf"{name}\s*:\s*{literal}\b" if literal else rf"{name}\s*:"
        if not re.search(wanted, output):
            missing.append(f"{string.group()}: {literal}" if literal else string.group())
    return missing


def runnable_steps(port: int) -> list[Step]:
    """Every step of the README that runs, in order."""
    blocks = read_blocks(README.read_text())
    return [
        step
        for block in blocks
        if block.lang in RUNNABLE and block.skip is None
        for step in split_steps(block, port)
    ]


def test_readme_blocks_are_marked() -> None:
    """Shell blocks say ``sh``, skip markers precede a block and give a reason, and the
    README has walkthrough steps and checks to run (no server needed)."""
    blocks = read_blocks(README.read_text())
    runnable = [b for b in blocks if b.lang in RUNNABLE and b.skip is None]
    assert len(runnable) >= 10, [b.line for b in runnable]
    assert any(b.lang == "python" for b in runnable)
    skipped = [b for b in blocks if b.skip is not None]
    assert all(b.lang in RUNNABLE for b in skipped), "a skip marker on a block that never runs"
    # The Quick start's `make run` / `make test` block is shown, not run.
    assert any("make run" in b.text for b in skipped)
    steps = runnable_steps(8000)
    assert sum(step.expectation is not None for step in steps) >= 10


def test_unmet_reads_status_names_and_literals() -> None:
    expectation = '409 Conflict: {"status": 409, "active": true, "detail": "a: b", "x": ...}'
    assert unmet(expectation, '{"status":409,"active":true,"detail":"c","x":1}') == []
    assert unmet(expectation, '{"status":409,"active":false,"detail":"c"}') == [
        '"active": true',
        '"x"',
    ]
    assert unmet("304 Not Modified", "HTTP/1.1 200 OK\r\n") == ["status 304"]
    assert unmet("HTTP/1.1 304 Not Modified", "HTTP/1.1 304 Not Modified\r\n") == []


def _without_jwks_service(path: str) -> str:
    """PATH minus every directory that has a ``jwks-service``: the README must put it there."""
    kept = [d for d in path.split(os.pathsep) if d and not (Path(d) / "jwks-service").exists()]
    return os.pathsep.join(kept)


@dataclass(frozen=True)
class Service:
    """The service the README runs against, and the directory its commands run in."""

    port: int
    workdir: Path
    log: Path


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """``jwks-service serve`` on a free port and its own embedded store in ``workdir``."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.fail(f"the tests must run in a venv (the README activates one): {venv}")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(venv, target_is_directory=True)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKS_")}
    env.update(
        JWKS_DATA_DIR=str(workdir / ".jwks-data"),
        JWKS_ISSUER=f"http://127.0.0.1:{port}",
        JWKS_JWKS_MAX_AGE="1",
        JWKS_ROTATION_INTERVAL="0",
        JWKS_SHUTDOWN_DELAY="0",  # no drain before the stop: nothing is in flight then
    )
    argv = [str(venv / "bin" / "jwks-service"), "serve", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "--port", str(port)], cwd=workdir, env=env, stdout=out, stderr=out
        )
    try:
        wait_ready(process, f"http://127.0.0.1:{port}", log, "jwks-service serve")
        yield Service(port, workdir, log)
    finally:
        stop(process)


def _driver(steps: list[Step], directory: Path, token: str) -> Path:
    """One bash script that runs ``steps`` in order and marks where each one starts."""
    lines = [
        "set -euo pipefail",
        "shopt -s inherit_errexit",  # a failure inside $(...) fails the step too
        # $LINENO is the line in the sourced step, where the failing command is.
        f'trap \'s=$?; printf "\\n@@failed {token} %s %s@@\\n" "$s" "$LINENO"\' ERR',
    ]
    for n, step in enumerate(steps):
        path = directory / f"{n:03}.{'py' if step.lang == 'python' else 'sh'}"
        path.write_text(step.text)
        lines.append(f"printf '\\n@@step {token} {n}@@\\n'")
        lines.append(f"python3 {path}" if step.lang == "python" else f"source {path}")
    lines.append(f"printf '\\n@@done {token}@@\\n'")
    script = directory / "readme.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def _run(script: Path, workdir: Path) -> tuple[int | None, str]:
    """Run ``script`` in ``workdir``; its exit status (None: timed out) and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKS_")}
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = _without_jwks_service(env.get("PATH", os.defpath))
    output = script.with_suffix(".out")
    with output.open("wb") as out:
        bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc", str(script)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,  # a step reading stdin gets EOF, not a hang
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a timeout kills what a step started, too
        )
        try:
            status: int | None = bash.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(bash.pid, signal.SIGKILL)
            bash.wait()
            status = None
    return status, output.read_text(errors="replace")


def _first_failure(
    steps: list[Step], status: int | None, output: str, token: str
) -> tuple[Step, int, str, str] | None:
    """The first step that failed or printed something else: the step, the README
    line to blame, why, and what the step printed."""
    pieces = re.split(rf"\n?@@step {token} (\d+)@@\n", output)
    printed = dict(zip(map(int, pieces[1::2]), pieces[2::2], strict=True))
    for n, step in enumerate(steps):
        if n not in printed:
            return step, step.line, "never started", output
        text, done, _ = printed[n].partition(f"\n@@done {token}@@\n")
        failed = re.search(rf"\n?@@failed {token} (\d+) (\d+)@@\n", text)
        if failed:
            text = text[: failed.start()]
            line = step.line
            if step.lang == "sh":
                line += int(failed[2]) - 1
            else:  # the trap saw the driver's line: the traceback has the step's
                frames = re.findall(rf'File "[^"]*/{n:03}\.py", line (\d+)', text)
                line += int(frames[-1]) - 1 if frames else 0
            return step, line, f"exited with {failed[1]}", text
        if n + 1 not in printed and not done:
            why = f"did not finish in {RUN_TIMEOUT:.0f} s" if status is None else "ended bash"
            return step, step.line, why, text
        if step.expectation is not None and (missing := unmet(step.expectation, text)):
            why = f"is not what the commands before it printed: no {', '.join(missing)}"
            return step, step.expectation_line, why, text
    return None


def _describe(step: Step, line: int, why: str, output: str, log: Path) -> str:
    time.sleep(0.6)  # the access log is written in batches, at most 0.5 s late
    server = log.read_text(errors="replace").splitlines()[-15:]
    quoted = step.text.splitlines()[line - step.line].strip()
    return (
        f"README.md line {line}, `{quoted}`, {why}\n"
        f"--- the step (from line {step.line}) ---\n{step.text}"
        f"--- its output ---\n{output.strip()}\n"
        f"--- the server's last log lines ---\n" + "\n".join(server)
    )


def test_readme_commands_run_in_order(service: Service, tmp_path: Path) -> None:
    steps = runnable_steps(service.port)
    token = os.urandom(6).hex()
    steps_dir = tmp_path / "steps"
    steps_dir.mkdir()
    status, output = _run(_driver(steps, steps_dir, token), service.workdir)
    failure = _first_failure(steps, status, output, token)
    if failure is not None:
        step, line, why, printed = failure
        pytest.fail(_describe(step, line, why, printed, service.log))
    assert status == 0, output
