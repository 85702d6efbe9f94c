"""No secret ever reaches a log: a whole run's logs, scanned for every secret it made."""

from __future__ import annotations

import base64
import io
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.testclient import TestClient

from tests.conftest import ADMIN_KEY

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = {"grant_type": "client_credentials"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_a_full_run_logs_no_secret(
    make_client: Callable[..., TestClient],
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    service_log: io.StringIO,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: dict[str, str] = {"bootstrap admin key": ADMIN_KEY}
    client = make_client()
    client.post("/v1/realms", json={"name": "acme"}, headers=admin).raise_for_status()
    hs = client.post("/v1/realms/acme/jwt_keys", json={"algo": "hs256"}, headers=admin)
    secrets["generated HS256 secret"] = hs.json()["key"]
    imported = "an-imported-hs256-secret-of-32-bytes-or-more!"
    secrets["imported HS256 secret"] = imported
    client.post("/v1/realms/acme/jwt_keys", json={"algo": "hs256", "key": imported}, headers=admin)
    rotated = client.post(
        "/v1/realms/acme/jwt_keys/rotate",
        json={"algo": "hs256", "immediate": True},
        headers=admin,
    )
    if rotated.status_code == 200 and "key" in rotated.json():
        secrets["rotated HS256 secret"] = rotated.json()["key"]
    reg = client.post(
        "/realms/acme/oauth/register", json={"client_name": "b"}, headers=admin
    ).json()
    secrets["client secret"] = reg["client_secret"]
    token = client.post(
        "/realms/acme/oauth/token",
        data=FORM,
        headers=basic(reg["client_id"], reg["client_secret"]),
    ).json()["access_token"]
    secrets["access token"] = token
    wrong = "a-wrong-secret-" + uuid.uuid4().hex
    secrets["a wrong secret tried"] = wrong
    client.post("/realms/acme/oauth/token", data=FORM, headers=basic(reg["client_id"], wrong))
    client.post(
        "/realms/acme/oauth/token",
        data={**FORM, "client_id": reg["client_id"], "client_secret": wrong},
    )
    # A secret sent where it does not belong, in the query string.
    client.post(f"/realms/acme/oauth/token?client_secret={wrong}", data=FORM)
    wrong_admin = "not-an-admin-key-" + uuid.uuid4().hex
    secrets["a wrong admin key tried"] = wrong_admin
    client.get("/v1/realms", headers={"Authorization": f"Bearer {wrong_admin}"})
    client.post(
        "/realms/acme/oauth/introspect", data={"token": token}, headers=admin
    ).raise_for_status()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    private_jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key, as_dict=True)  # type: ignore[assignment]
    secrets["a private key's d"] = private_jwk["d"]
    secrets["a private key PEM"] = private_pem.splitlines()[1]
    # Private keys sent where public ones belong: refused, and not logged.
    client.post(
        "/v1/realms/acme/jwt_keys",
        json={"algo": "rs256", "public_key": private_pem},
        headers=admin,
    )
    client.post(
        "/realms/acme/oauth/register",
        json={"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private_jwk]}},
        headers=admin,
    )
    public_jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}  # type: ignore[dict-item]
    keyed = client.post(
        "/realms/acme/oauth/register",
        json={"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public_jwk]}},
        headers=admin,
    ).json()
    now = int(time.time())
    claims = {"iss": keyed["client_id"], "sub": keyed["client_id"], "iat": now}
    assertion = jwt.encode(
        {**claims, "aud": "http://testserver/realms/acme", "exp": now + 60, "jti": "j"},
        key,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    secrets["client assertion"] = assertion
    for _ in range(2):  # the second is a replay
        client.post(
            "/realms/acme/oauth/token",
            data={
                **FORM,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )
    client.delete(f"/v1/realms/acme/clients/{reg['client_id']}", headers=admin)
    client.app._log.flush()  # type: ignore[attr-defined]  # what the access log holds back
    # The service's own records (not the test's HTTP client, which logs its URLs),
    # with their tracebacks, as text and as the JSON lines the service writes (with
    # every field a record carries), and what it printed (the access log).
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    json_lines = [
        line
        for line in service_log.getvalue().splitlines()
        if not json.loads(line)["logger"].startswith(("httpx", "httpcore"))
    ]
    logs = "\n".join(
        [*(logging.Formatter().format(r) for r in ours), *json_lines, *capsys.readouterr()]
    )
    assert '"route":"/realms/{realm}/oauth/token"' in logs  # the access log was captured
    assert '"event": {"id": "evt_' in logs  # so were the audit events, whole
    leaked = [name for name, secret in secrets.items() if secret in logs]
    assert not leaked, leaked
