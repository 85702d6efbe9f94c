"""The data the rows need, made through the service's own API (and its runtime, for
what the API does not offer, such as a realm whose keys are RSA-4096)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwk, jwt

from service.bootstrap import open_runtime
from service.config import Settings

__all__ = ["Scenario", "basic", "make_assertions", "setup"]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic client authentication headers (RFC 6749 §2.3.1) and the form type."""
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {**FORM, "Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class Scenario:
    """What the rows send."""

    base: str
    admin: dict[str, str]
    jwks_body: str
    jwks_headers: list[tuple[str, str]]
    etag: str
    rs256_basic: dict[str, str]
    hs256_basic: dict[str, str]
    pkjwt_client_id: str
    pkjwt_key: jwk.RSAKey
    introspect_body: str
    jitsi_url: str
    jitsi_body: str


def _register(http: httpx.Client, base: str, admin: dict[str, str], **metadata: Any) -> Any:
    response = http.post(f"{base}/oauth/register", headers=admin, json=metadata)
    response.raise_for_status()
    return response.json()


async def _realm_with_rsa4096(store_url: str, kek: bytes, data_dir: Path, name: str) -> None:
    # The admin API generates keys of JWKS_RSA_BITS; a runtime with 4096 makes this one.
    settings = Settings(
        redis_url=store_url, kek=kek, rsa_bits=4096, rotation_interval=0, data_dir=data_dir
    )
    async with open_runtime(settings) as runtime:
        await runtime.keys.create_realm(name)


def setup(base: str, admin_key: str, store_url: str, kek: bytes, data_dir: Path) -> Scenario:
    """Keys, clients and tokens for every row, in the default realm and in ``jitsi4096``."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(timeout=60) as http:
        http.post(
            f"{base}/v1/realms/default/jwt_keys", headers=admin, json={"algo": "hs256"}
        ).raise_for_status()
        rs = _register(http, base, admin, client_name="bench-rs256")
        hs = _register(
            http, base, admin, client_name="bench-hs256", access_token_signed_response_alg="HS256"
        )
        key = jwk.RSAKey.generate_key(2048, auto_kid=True)
        pk = _register(
            http,
            base,
            admin,
            client_name="bench-pkjwt",
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [key.as_dict(private=False)]},
        )
        rs_headers = basic(rs["client_id"], rs["client_secret"])
        issued = http.post(
            f"{base}/oauth/token", headers=rs_headers, content="grant_type=client_credentials"
        )
        issued.raise_for_status()
        token = issued.json()["access_token"]
        asyncio.run(_realm_with_rsa4096(store_url, kek, data_dir, "jitsi4096"))
        jitsi = _register(
            http,
            f"{base}/realms/jitsi4096",
            admin,
            client_name="bench-jitsi",
            token_endpoint_auth_method="client_secret_post",
            token_profile="jitsi",
            jitsi_app_id="bench",
            allowed_rooms=["*"],
        )
        published = http.get(f"{base}/.well-known/jwks.json")
        published.raise_for_status()
    keep = ("content-type", "cache-control", "etag", "access-control-allow-origin")
    return Scenario(
        base=base,
        admin=admin,
        jwks_body=published.text,
        jwks_headers=[(k, v) for k, v in published.headers.items() if k.lower() in keep],
        etag=published.headers["etag"],
        rs256_basic=rs_headers,
        hs256_basic=basic(hs["client_id"], hs["client_secret"]),
        pkjwt_client_id=pk["client_id"],
        pkjwt_key=key,
        introspect_body=f"token={token}",
        jitsi_url=f"{base}/realms/jitsi4096/oauth/token",
        jitsi_body=(
            f"grant_type=client_credentials&client_id={jitsi['client_id']}"
            f"&client_secret={jitsi['client_secret']}&room=standup&user_name=Ada"
        ),
    )


def make_assertions(scenario: Scenario, count: int, path: Path) -> Path:
    """``count`` token request bodies, each with its own private_key_jwt assertion (jti)."""
    now = int(time.time())
    header = {"alg": "RS256", "kid": scenario.pkjwt_key.kid, "typ": "client-authentication+jwt"}
    lines = []
    for _ in range(count):
        claims = {
            "iss": scenario.pkjwt_client_id,
            "sub": scenario.pkjwt_client_id,
            "aud": scenario.base,
            "iat": now,
            "exp": now + 900,
            "jti": secrets.token_urlsafe(16),
        }
        assertion = jwt.encode(header, claims, scenario.pkjwt_key)
        lines.append(
            "grant_type=client_credentials&client_assertion_type="
            "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            f"&client_assertion={assertion}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def jwks_spec(scenario: Scenario, path: Path) -> Path:
    """The JWKS answer (body and headers) for the reference app."""
    path.write_text(json.dumps({"body": scenario.jwks_body, "headers": scenario.jwks_headers}))
    return path
