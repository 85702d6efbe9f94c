"""schemathesis against a real ``python -m service serve``, from the document it serves.

Every operation of ``/openapi.json`` gets generated requests, schema-valid and
schema-violating (bounded and derandomized, so a run is repeatable), with a
valid admin key and a registered client's HTTP Basic credentials where the
document declares them. Every answer must not be a 5xx, and must conform to the
document: a documented status, its media type, its JSON schema, its required
headers.

One server serves the module: it starts on a store flushed by the fixture itself,
and nothing here uses ``redis_client`` (which would flush the store under it).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.http import openapi_document
from tests._service import flush, free_port, start_service, stop, wait_ready
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.e2e

#: Generated requests per operation (52 operations, HEAD twins included).
MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass(frozen=True)
class Live:
    """A running service and a client registered on it."""

    url: str
    client_id: str
    client_secret: str


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """``python -m service serve`` on a free port, on the flushed test store."""
    flush(redis_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tmp = tmp_path_factory.mktemp("fuzz")
    log = tmp / "server.log"
    # No access log: thousands of lines nobody reads; no scheduled rotation. No
    # lockouts: generated requests fail to authenticate by the hundred from one
    # address, and each must be judged on its own (the lockouts have their own tests).
    process = start_service(
        port,
        redis_url,
        tmp / "data",
        log,
        JWKS_ACCESS_LOG="0",
        JWKS_ROTATION_INTERVAL="0",
        JWKS_AUTH_FAILURES="0",
        JWKS_AUTH_FAILURES_PER_ADDRESS="0",
    )
    try:
        wait_ready(process, url, log)
        registered = httpx.post(
            f"{url}/oauth/register",
            json={"client_name": "fuzz", "scope": "read write", "allowed_rooms": ["*"]},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=5.0,
        )
        assert registered.status_code == 201, registered.text
        served = httpx.get(f"{url}/openapi.json", timeout=5.0)
        assert served.json() == openapi_document()
        body: dict[str, Any] = registered.json()
        yield Live(url, body["client_id"], body["client_secret"])
    finally:
        stop(process)
    log_text = log.read_text()
    assert "Traceback" not in log_text, log_text[-4000:]


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "request-timeout": 10,
            "generation": {"mode": "all", "deterministic": True, "database": "none"},
            # Coverage: a fixed set of boundary and schema-violating cases per operation;
            # fuzzing: MAX_EXAMPLES generated ones. No stateful phase: no links declared.
            "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
            "auth": {"openapi": {"adminKey": {"bearer": ADMIN_KEY}}},
        }
    )


def _pem_bodies() -> st.SearchStrategy[bytes]:
    """Key files as uploaded (``application/x-pem-file``): real public keys, the same
    cut short or changed, and any bytes."""
    keys = [
        k.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        for k in (ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate())
    ]
    real = st.sampled_from(keys)
    cut = st.tuples(real, st.integers(1, 80)).map(lambda pair: pair[0][: -pair[1]])
    return st.one_of(real, cut, st.binary(max_size=300))


schemathesis.openapi.media_type("application/x-pem-file", _pem_bodies())
# The document as built in-process; the fixture checks that the server serves it.
schema = schemathesis.openapi.from_dict(openapi_document(), config=_config())


#: Operations whose answers disagree with the document, and why: each is fuzzed on its
#: own, expected to fail until its owner fixes the route (then the strict xfail fails).
def _aim(case: schemathesis.Case, live: Live) -> dict[str, str]:
    """Point the case at existing data, and add the client's credentials; the headers to send.

    Most generated realm names do not exist, so three in four (chosen by the name's
    length, which derandomized generation repeats) go to ``default``, where the keys
    and clients are. HTTP Basic is added where the document offers it and the
    generated form carries no other client credentials (RFC 6749 §2.3: one method).
    """
    realm = (case.path_parameters or {}).get("realm")
    if isinstance(realm, str) and len(realm) % 4:
        case.path_parameters = {**(case.path_parameters or {}), "realm": "default"}
    security: list[dict[str, Any]] = case.operation.definition.raw.get("security", [])
    body = case.body if isinstance(case.body, dict) else {}
    if (
        security
        and "clientSecretBasic" in security[0]
        and not {"client_secret", "client_assertion"} & set(body)
    ):
        pair = f"{live.client_id}:{live.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)


@schema.parametrize()
@_SETTINGS
def test_every_answer_conforms_to_the_document(case: schemathesis.Case, live: Live) -> None:
    """No 5xx; status, media type, body and required headers as documented."""
    case.call_and_validate(base_url=live.url, headers=_aim(case, live), checks=CHECKS)
