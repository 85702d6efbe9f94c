"""A client gets tokens only for the audiences and Jitsi tenants it was registered for."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from tests.oauth.test_token import FORM, ISSUER, TOKEN_URL, register


def token(client: TestClient, reg: dict[str, Any], **form: str) -> Any:
    return client.post(
        TOKEN_URL,
        data={**FORM, "client_id": reg["client_id"], "client_secret": reg["client_secret"], **form},
    )


def aud_of(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})["aud"]


def refused(response: Any, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert "access_token" not in response.json()


def test_a_client_without_allowed_audiences_gets_its_default_only(
    client: TestClient, admin: dict[str, str]
) -> None:
    plain = register(client, admin, token_endpoint_auth_method="client_secret_post")
    assert plain["allowed_audiences"] == []
    assert aud_of(token(client, plain)) == ISSUER
    assert aud_of(token(client, plain, audience=ISSUER)) == ISSUER
    for form in ({"audience": "https://payments.example"}, {"resource": "https://x.example/"}):
        refused(token(client, plain, **form), "invalid_target")
    with_default = register(
        client,
        admin,
        token_endpoint_auth_method="client_secret_post",
        default_audience="https://api.example",
    )
    assert aud_of(token(client, with_default)) == "https://api.example"
    assert aud_of(token(client, with_default, resource="https://api.example")) == (
        "https://api.example"
    )
    refused(token(client, with_default, audience=ISSUER), "invalid_target")


def test_allowed_audiences_are_exact_values(client: TestClient, admin: dict[str, str]) -> None:
    reg = register(
        client,
        admin,
        token_endpoint_auth_method="client_secret_post",
        allowed_audiences=["https://api.example/v1", "billing"],
    )
    assert reg["allowed_audiences"] == ["https://api.example/v1", "billing"]
    assert aud_of(token(client, reg, resource="https://api.example/v1")) == "https://api.example/v1"
    assert aud_of(token(client, reg, audience="billing")) == "billing"
    for near in ("https://api.example/v1/", "https://api.example", "Billing", "billing2"):
        refused(token(client, reg, audience=near), "invalid_target")


@pytest.mark.parametrize(
    "bad",
    [
        {"allowed_audiences": "https://api.example"},
        {"allowed_audiences": ["has space"]},
        {"allowed_audiences": [""]},
        {"allowed_audiences": ["x" * 300]},
        {"allowed_tenants": ["acme"]},  # not a Jitsi client
    ],
)
def test_bad_allowed_audiences_or_tenants(
    client: TestClient, admin: dict[str, str], bad: dict[str, Any]
) -> None:
    response = client.post("/oauth/register", json=bad, headers=admin)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"


def jitsi(client: TestClient, admin: dict[str, str], **metadata: Any) -> dict[str, Any]:
    return register(
        client,
        admin,
        token_endpoint_auth_method="client_secret_post",
        token_profile="jitsi",
        jitsi_app_id="app",
        allowed_rooms=["*"],
        **metadata,
    )


def sub_of(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})["sub"]


def test_a_jitsi_client_without_allowed_tenants_gets_the_realm_only(
    client: TestClient, admin: dict[str, str]
) -> None:
    reg = jitsi(client, admin)
    assert sub_of(token(client, reg, room="standup")) == "default"
    assert sub_of(token(client, reg, room="standup", tenant="default")) == "default"
    for tenant in ("*", "other-tenant"):
        refused(token(client, reg, room="standup", tenant=tenant), "invalid_request")


def test_a_jitsi_client_gets_only_its_allowed_tenants(
    client: TestClient, admin: dict[str, str]
) -> None:
    reg = jitsi(client, admin, allowed_tenants=["acme", "beta"])
    assert sub_of(token(client, reg, room="r", tenant="acme")) == "acme"
    assert sub_of(token(client, reg, room="r", tenant="beta")) == "beta"
    refused(token(client, reg, room="r"), "invalid_request")  # the realm is not listed
    refused(token(client, reg, room="r", tenant="*"), "invalid_request")
    everything = jitsi(client, admin, allowed_tenants=["*"])
    assert sub_of(token(client, everything, room="r", tenant="*")) == "*"


def test_values_copied_into_a_token_are_bounded(client: TestClient, admin: dict[str, str]) -> None:
    # So that every token issued here is one this server accepts back (8 KiB at most).
    reg = jitsi(client, admin)
    refused(token(client, reg, room="r" * 300), "invalid_request")
    refused(token(client, reg, room="r", user_name="n" * 5000), "invalid_request")
