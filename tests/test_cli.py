"""The command line, run as users run it: ``python -m service ...`` in a subprocess."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from starlette.testclient import TestClient

from service import __version__
from service.app import create_app
from service.config import Settings
from service.storage.embedded import EmbeddedServer, find_server_binary
from tests.conftest import KEK

REPO = Path(__file__).resolve().parents[1]
PROG = "jwks-service"
ADMIN_KEY = re.compile(r"jwa_[A-Za-z0-9_-]{43}")
OPENSSL = shutil.which("openssl")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The CLI's JWKS_DATA_DIR; not created in advance."""
    return tmp_path / "data"


def cli_env(data_dir: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any JWKS_*, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["JWKS_DATA_DIR"] = str(data_dir)
    env.update(variables)
    return env


def run_cli(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """A failure: non-zero exit, nothing on stdout, exactly one line on stderr."""
    assert result.returncode != 0, result.stdout
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{PROG}: ")
    return lines[0]


def b64url_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 of the required members, sorted, without whitespace."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def assert_jwk_is_public_half_of(jwk: dict[str, Any], private_pem: bytes) -> None:
    """The JWK's members are exactly the public numbers of the private key."""
    private = serialization.load_pem_private_key(private_pem, password=None)
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()
    if isinstance(private, rsa.RSAPrivateKey):
        numbers = private.public_key().public_numbers()
        assert (jwk["kty"], jwk["alg"]) == ("RSA", "RS256")
        assert (b64url_int(jwk["n"]), b64url_int(jwk["e"])) == (numbers.n, numbers.e)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        point = private.public_key().public_numbers()
        assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")
        assert (b64url_int(jwk["x"]), b64url_int(jwk["y"])) == (point.x, point.y)
    else:
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")
        assert base64.urlsafe_b64decode(jwk["x"] + "=") == raw


def keygen(tmp_path: Path, data_dir: Path, alg: str = "RS256") -> tuple[Path, dict[str, Any]]:
    """A key pair made by the CLI: the private key's path and the printed JWK."""
    out = tmp_path / f"{alg.lower()}.pem"
    result = run_cli(
        "keygen", "--alg", alg, "--bits", "2048", "--out", str(out), env=cli_env(data_dir)
    )
    assert_ok(result)
    jwk: dict[str, Any] = json.loads(result.stdout)
    return out, jwk


@pytest.fixture(scope="module")
def rsa_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One RS256 key pair from ``keygen``, shared by the tests that only read it."""
    directory = tmp_path_factory.mktemp("keygen")
    return keygen(directory, directory / "data")


# --help and --version ------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["keygen"],
        ["pem2jwk"],
        ["admin-key"],
        ["admin-key", "create"],
        ["assertion"],
        ["rotate"],
        ["kek"],
    ],
    ids=lambda c: " ".join(c) or "jwks-service",
)
def test_every_command_has_help(command: list[str], data_dir: Path) -> None:
    result = run_cli(*command, "--help", env=cli_env(data_dir))
    assert_ok(result)
    assert result.stdout.startswith(f"usage: {' '.join([PROG, *command])}")
    assert result.stderr == ""
    assert not data_dir.exists()


def test_version(data_dir: Path) -> None:
    result = run_cli("--version", env=cli_env(data_dir))
    assert_ok(result)
    assert result.stdout.strip() == f"{PROG} {__version__}"


def test_kek_prints_a_value_settings_accept(data_dir: Path) -> None:
    result = run_cli("kek", env=cli_env(data_dir))
    assert_ok(result)
    value = result.stdout.strip()
    assert len(base64.b64decode(value, validate=True)) == 32
    assert Settings.from_env({"JWKS_KEK": value}).kek == base64.b64decode(value)
    assert run_cli("kek", env=cli_env(data_dir)).stdout.strip() != value


# keygen --------------------------------------------------------------------


def test_keygen_rs256_writes_private_0600_and_spki_public(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "signing.pem"
    result = run_cli("keygen", "--bits", "2048", "--out", str(out), env=cli_env(data_dir))
    assert_ok(result)

    assert out.stat().st_mode & 0o777 == 0o600
    private = serialization.load_pem_private_key(out.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048

    public_pem = Path(f"{out}.pub").read_text()
    # SubjectPublicKeyInfo, not PKCS#1's "BEGIN RSA PUBLIC KEY".
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    public = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == private.public_key().public_numbers()

    jwk = json.loads(result.stdout)
    assert_jwk_is_public_half_of(jwk, out.read_bytes())
    assert jwk["use"] == "sig"
    assert jwk["kid"] == rfc7638_thumbprint(jwk)
    assert not data_dir.exists()  # keygen needs no store


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_keygen_and_pem2jwk_ec_and_okp(alg: str, tmp_path: Path, data_dir: Path) -> None:
    out, jwk = keygen(tmp_path, data_dir, alg)
    assert out.stat().st_mode & 0o777 == 0o600
    assert_jwk_is_public_half_of(jwk, out.read_bytes())
    assert jwk["kid"] == rfc7638_thumbprint(jwk)
    assert Path(f"{out}.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----\n")

    converted = run_cli("pem2jwk", f"{out}.pub", env=cli_env(data_dir))
    assert_ok(converted)
    assert json.loads(converted.stdout) == jwk


@pytest.mark.parametrize(
    ("spelling", "jose"),
    [
        ("es256", "ES256"),
        ("ES256", "ES256"),
        ("Es256", "ES256"),
        ("eddsa", "EdDSA"),
        ("EDDSA", "EdDSA"),
        ("EdDSA", "EdDSA"),
    ],
)
def test_keygen_alg_takes_the_api_and_jose_names_in_any_case(
    spelling: str, jose: str, tmp_path: Path, data_dir: Path
) -> None:
    """Issue 9: ``--alg es256`` (the API's name) works as well as ``--alg ES256``."""
    _out, jwk = keygen(tmp_path, data_dir, spelling)
    assert jwk["alg"] == jose


def test_pem2jwk_alg_takes_the_api_name(
    rsa_pair: tuple[Path, dict[str, Any]], data_dir: Path
) -> None:
    out, printed = rsa_pair
    for spelling in ("rs256", "RS256", "rS256"):
        result = run_cli("pem2jwk", f"{out}.pub", "--alg", spelling, env=cli_env(data_dir))
        assert_ok(result)
        assert json.loads(result.stdout) == printed


@pytest.mark.parametrize(
    "command", [["keygen", "--alg"], ["pem2jwk", "-", "--alg"], ["rotate", "--algo"]]
)
def test_an_unknown_algorithm_lists_every_accepted_name(command: list[str], data_dir: Path) -> None:
    result = run_cli(*command, "rs257", env=cli_env(data_dir), stdin="")
    assert result.returncode == 2 and result.stdout == ""
    error = result.stderr.splitlines()[-1]
    assert "invalid algorithm 'rs257'" in error
    for name in ("rs256", "RS256", "es256", "ES256", "eddsa", "EdDSA"):
        assert name in error
    assert not data_dir.exists()  # refused before any store is opened


def test_keygen_defaults_to_rs256_4096_in_private_pem(tmp_path: Path, data_dir: Path) -> None:
    result = run_cli("keygen", env=cli_env(data_dir), cwd=tmp_path)
    assert_ok(result)
    private = serialization.load_pem_private_key(
        (tmp_path / "private.pem").read_bytes(), password=None
    )
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 4096
    assert (tmp_path / "private.pem.pub").is_file()
    assert json.loads(result.stdout)["alg"] == "RS256"


def test_keygen_refuses_to_overwrite_the_private_key(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "existing.pem"
    out.write_text("precious\n")
    result = run_cli("keygen", "--bits", "2048", "--out", str(out), env=cli_env(data_dir))
    assert str(out) in assert_one_line_error(result)
    assert out.read_text() == "precious\n"
    assert not Path(f"{out}.pub").exists()


def test_keygen_refuses_to_overwrite_the_public_key(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "new.pem"
    public = Path(f"{out}.pub")
    public.write_text("precious\n")
    result = run_cli("keygen", "--bits", "2048", "--out", str(out), env=cli_env(data_dir))
    assert str(public) in assert_one_line_error(result)
    assert public.read_text() == "precious\n"
    assert not out.exists()


def test_keygen_rejects_a_weak_rsa_size(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "weak.pem"
    result = run_cli("keygen", "--bits", "1024", "--out", str(out), env=cli_env(data_dir))
    assert result.returncode == 2 and "--bits" in result.stderr
    assert not out.exists()


# pem2jwk -------------------------------------------------------------------


def test_pem2jwk_of_a_keygen_public_key_is_the_keygen_jwk(
    rsa_pair: tuple[Path, dict[str, Any]], data_dir: Path
) -> None:
    out, printed = rsa_pair
    public = f"{out}.pub"
    env = cli_env(data_dir)

    inferred = run_cli("pem2jwk", public, env=env)
    assert_ok(inferred)
    assert json.loads(inferred.stdout) == printed

    explicit = run_cli("pem2jwk", public, "--alg", "RS256", "--use", "sig", env=env)
    assert_ok(explicit)
    assert json.loads(explicit.stdout) == printed

    named = run_cli("pem2jwk", public, "--kid", "2024-signing", env=env)
    assert_ok(named)
    assert json.loads(named.stdout) == {**printed, "kid": "2024-signing"}

    piped = run_cli("pem2jwk", "-", env=env, stdin=Path(public).read_text())
    assert_ok(piped)
    assert json.loads(piped.stdout) == printed


@pytest.mark.skipif(OPENSSL is None, reason="no openssl on PATH")
def test_pem2jwk_of_openssl_pubout(
    rsa_pair: tuple[Path, dict[str, Any]], tmp_path: Path, data_dir: Path
) -> None:
    assert OPENSSL is not None
    out, printed = rsa_pair
    openssl_public = tmp_path / "openssl.pub"
    subprocess.run(
        [OPENSSL, "rsa", "-in", str(out), "-pubout", "-out", str(openssl_public)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    # Both are SubjectPublicKeyInfo PEM of the same key.
    assert openssl_public.read_text() == Path(f"{out}.pub").read_text()
    result = run_cli("pem2jwk", str(openssl_public), env=cli_env(data_dir))
    assert_ok(result)
    jwk = json.loads(result.stdout)
    assert jwk == printed
    assert_jwk_is_public_half_of(jwk, out.read_bytes())


def test_pem2jwk_alg_mismatch_is_an_error(
    rsa_pair: tuple[Path, dict[str, Any]], data_dir: Path
) -> None:
    out, _ = rsa_pair
    result = run_cli("pem2jwk", f"{out}.pub", "--alg", "ES256", env=cli_env(data_dir))
    line = assert_one_line_error(result)
    assert "rs256" in line and "es256" in line


def test_pem2jwk_of_a_private_key_is_an_error_that_does_not_print_it(
    rsa_pair: tuple[Path, dict[str, Any]], data_dir: Path
) -> None:
    out, _ = rsa_pair
    result = run_cli("pem2jwk", str(out), env=cli_env(data_dir))
    line = assert_one_line_error(result)
    assert "private key" in line
    body = [row for row in out.read_text().splitlines() if not row.startswith("-----")]
    assert body and not any(row in result.stderr for row in body)
    assert "PRIVATE KEY-----" not in result.stderr


def test_pem2jwk_of_a_missing_file_is_an_error(tmp_path: Path, data_dir: Path) -> None:
    missing = tmp_path / "missing.pub"
    line = assert_one_line_error(run_cli("pem2jwk", str(missing), env=cli_env(data_dir)))
    assert str(missing) in line


# admin-key create ----------------------------------------------------------


def created_admin_key(result: subprocess.CompletedProcess[str]) -> str:
    """The key printed by ``admin-key create``: one line, the only output on stdout."""
    assert_ok(result)
    assert ADMIN_KEY.fullmatch(result.stdout.rstrip("\n")), result.stdout
    assert result.stdout.count("\n") == 1
    assert "shown once" in result.stderr
    return result.stdout.strip()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def socket_answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            conn.connect(str(path))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_admin_key_on_the_embedded_store_starts_and_stops_it(data_dir: Path) -> None:
    key = created_admin_key(run_cli("admin-key", "create", env=cli_env(data_dir)))
    # It ran its own server on the data dir, and stopped it.
    assert (data_dir / "appendonlydir").is_dir()
    assert (data_dir / "kek").is_file()
    assert not socket_answers(data_dir.resolve() / "valkey.sock")
    assert not (data_dir / "valkey.pid").exists()

    # The service on the same data dir (its own embedded server, the same KEK) accepts it.
    with TestClient(create_app(Settings(data_dir=data_dir, issuer="http://testserver"))) as app:
        assert app.get("/v1/realms", headers=bearer(key)).status_code == 200
        assert app.get("/v1/realms", headers=bearer(key[:-1] + "x")).status_code == 401


def test_admin_key_uses_the_embedded_server_already_running(data_dir: Path) -> None:
    server = EmbeddedServer(data_dir, find_server_binary())
    server.start()
    try:
        pid = server.pid
        key = created_admin_key(run_cli("admin-key", "create", env=cli_env(data_dir)))
        assert socket_answers(server.socket), "the CLI stopped a server it did not start"
        assert (data_dir / "valkey.pid").read_text().strip() == str(pid)
        settings = Settings(redis_url=server.url, data_dir=data_dir, issuer="http://testserver")
        with TestClient(create_app(settings)) as app:
            assert app.get("/v1/realms", headers=bearer(key)).status_code == 200
    finally:
        server.stop()


def test_global_admin_key_authenticates_against_the_app(
    client: TestClient, redis_url: str, data_dir: Path
) -> None:
    assert client.get("/v1/realms", headers=bearer("jwa_" + "x" * 43)).status_code == 401
    env = cli_env(data_dir, JWKS_REDIS_URL=redis_url, JWKS_KEK=KEK)
    key = created_admin_key(run_cli("admin-key", "create", env=env))
    assert not data_dir.exists()  # an external store: nothing embedded was started
    assert client.get("/v1/realms", headers=bearer(key)).status_code == 200
    created = client.post("/v1/realms", json={"name": "acme"}, headers=bearer(key))
    assert created.status_code == 201


def test_realm_admin_key_sees_only_its_realm(
    client: TestClient, admin: dict[str, str], redis_url: str, data_dir: Path
) -> None:
    for name in ("acme", "other"):
        assert client.post("/v1/realms", json={"name": name}, headers=admin).status_code == 201
    env = cli_env(data_dir, JWKS_REDIS_URL=redis_url, JWKS_KEK=KEK)
    result = run_cli("admin-key", "create", "--realm", "acme", env=env)
    key = created_admin_key(result)
    assert "'acme'" in result.stderr

    assert client.get("/v1/realms/acme/jwt_keys", headers=bearer(key)).status_code == 200
    assert client.get("/v1/realms/other/jwt_keys", headers=bearer(key)).status_code == 404
    assert client.get("/v1/realms/default/jwt_keys", headers=bearer(key)).status_code == 404
    listed = client.get("/v1/realms", headers=bearer(key)).json()["data"]
    assert [realm["name"] for realm in listed] == ["acme"]
    assert client.post("/v1/realms", json={"name": "x"}, headers=bearer(key)).status_code == 403


# The running app has made the default realm and sealed the store's KEK check value.
@pytest.mark.usefixtures("client")
def test_admin_key_for_a_missing_realm_fails_and_stores_nothing(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    before = redis_client.dbsize()
    env = cli_env(data_dir, JWKS_REDIS_URL=redis_url, JWKS_KEK=KEK)
    line = assert_one_line_error(run_cli("admin-key", "create", "--realm", "nope", env=env))
    assert "'nope'" in line
    assert redis_client.dbsize() == before


# The running app has made the default realm and sealed the store's KEK check value.
@pytest.mark.usefixtures("client")
def test_admin_key_with_another_kek_is_refused(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    before = redis_client.dbsize()
    other_kek = base64.b64encode(bytes(32)).decode()
    env = cli_env(data_dir, JWKS_REDIS_URL=redis_url, JWKS_KEK=other_kek)
    line = assert_one_line_error(run_cli("admin-key", "create", env=env))
    assert "JWKS_KEK" in line and other_kek not in line
    assert redis_client.dbsize() == before


def test_admin_key_with_an_unreachable_store_is_one_line(data_dir: Path) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    env = cli_env(data_dir, JWKS_REDIS_URL="redis://127.0.0.1:1/0", JWKS_KEK=KEK)
    line = assert_one_line_error(run_cli("admin-key", "create", env=env))
    assert "not reachable" in line


# configuration errors ------------------------------------------------------


BAD_SETTINGS = [
    ("JWKS_JWKS_MAX_AGE", "5m"),
    ("JWKS_RSA_BITS", "1024"),
    ("JWKS_REDIS_URL", "http://x"),
    ("JWKS_REDIS_URL", "redis://cache:port"),
    ("JWKS_KEK", "short"),
    ("JWKS_BOOTSTRAP_ADMIN_KEY", "too-short-but-still-secret"),
]
SECRET_SETTINGS = ("JWKS_KEK", "JWKS_BOOTSTRAP_ADMIN_KEY")


@pytest.mark.parametrize(
    "command", [["serve", "--port", "0"], ["admin-key", "create"]], ids=" ".join
)
@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_bad_setting_is_one_line_naming_the_variable(
    command: list[str], variable: str, value: str, data_dir: Path
) -> None:
    result = run_cli(*command, env=cli_env(data_dir, **{variable: value}))
    line = assert_one_line_error(result)
    assert result.returncode == 1
    assert line.startswith(f"{PROG}: {variable}: ")
    if variable in SECRET_SETTINGS:
        assert value not in result.stderr
    assert not data_dir.exists()  # refused before starting anything


def test_assertion_gets_a_token_for_a_keygen_key(
    tmp_path: Path, client: TestClient, admin: dict[str, str]
) -> None:
    """keygen -> register the printed JWK -> assertion -> token, as the README walks through."""
    key = tmp_path / "client.pem"
    made = subprocess.run(
        [sys.executable, "-m", "service", "keygen", "--alg", "ES256", "--out", str(key)],
        capture_output=True,
        text=True,
        check=True,
    )
    jwk_printed = json.loads(made.stdout)
    reg = client.post(
        "/oauth/register",
        json={"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk_printed]}},
        headers=admin,
    ).json()
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "assertion",
            "--client-id",
            reg["client_id"],
            "--key",
            str(key),
            "--audience",
            "http://testserver",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": printed,
    }
    assert client.post("/oauth/token", data=form).status_code == 200
    # The same assertion a second time is a replay.
    assert client.post("/oauth/token", data=form).json()["error"] == "invalid_client"
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "assertion",
            "--client-id",
            "x",
            "--key",
            str(tmp_path / "nope.pem"),
            "--audience",
            "http://testserver",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1


def test_rotate(data_dir: Path, redis_client: redis.Redis, redis_url: str) -> None:
    """rotate publishes a next key and says when to come back; --immediate activates now."""
    env = cli_env(
        data_dir,
        JWKS_REDIS_URL=redis_url,
        JWKS_KEK=KEK,
        JWKS_JWKS_MAX_AGE="60",
        JWKS_KEY_GRACE="3600",
    )
    waiting = assert_one_line_error(run_cli("rotate", env=env))
    assert "65 s" in waiting and "immediate" in waiting
    (upcoming,) = [
        json.loads(v)
        for k in redis_client.scan_iter("jwks:{default}:key:*")
        if (v := redis_client.get(k)) and json.loads(v)["status"] == "next"
    ]
    urgent = run_cli("rotate", "--immediate", env=env)
    assert_ok(urgent)
    printed = json.loads(urgent.stdout)
    assert printed["status"] == "active" and printed["id"] != upcoming["id"]
    assert "cached JWKS" in urgent.stderr
    assert_one_line_error(run_cli("rotate", "--realm", "nope", env=env))


def test_rotate_algo_takes_the_api_and_jose_names(
    data_dir: Path, redis_client: redis.Redis, redis_url: str
) -> None:
    """Issue 9: ``rotate --algo rs256`` failed with "invalid choice: 'rs256'"."""
    env = cli_env(data_dir, JWKS_REDIS_URL=redis_url, JWKS_KEK=KEK)
    for spelling in ("rs256", "RS256", "Rs256"):
        result = run_cli("rotate", "--algo", spelling, "--immediate", env=env)
        assert_ok(result)
        printed = json.loads(result.stdout)
        assert (printed["algo"], printed["status"]) == ("rs256", "active")
    es256 = run_cli("rotate", "--algo", "es256", "--immediate", env=env)
    assert_ok(es256)
    assert json.loads(es256.stdout)["algo"] == "es256"
