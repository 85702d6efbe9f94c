"""Settings.from_env: defaults, every variable parsed, every bad value a ConfigError."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pytest

from service.config import (
    ConfigError,
    MultiHostUrl,
    Settings,
    TlsOptions,
    parse_multi_host_url,
    redacted_url,
    single_server_tls,
)
from service.errors import ServiceError
from tests._tls import Pki, make_pki

KEK_BYTES = bytes(range(32))
KEK_B64 = base64.b64encode(KEK_BYTES).decode()
ADMIN_KEY = "bootstrap-admin-key-0123456789ab"


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.redis_url is None
    assert settings.embedded
    assert settings.data_dir == Path(".jwks-data")
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.bootstrap_admin_key is None
    assert settings.kek is None
    assert settings.jwks_max_age == 300
    assert settings.key_grace == 86_400
    assert settings.rsa_bits == 2048
    assert settings.redis_server_bin is None
    assert settings.cache_realms == settings.cache_clients == 10_000
    assert settings.access_log
    assert settings.sign_thread_min_bits == 2048
    assert (settings.header_timeout, settings.body_timeout) == (10, 10)
    assert (settings.keep_alive_timeout, settings.keep_alive_requests) == (5, 1000)
    assert (settings.max_header_bytes, settings.max_headers) == (16_384, 100)


def test_connection_limits() -> None:
    settings = Settings.from_env(
        {
            "JWKS_HEADER_TIMEOUT": "3",
            "JWKS_BODY_TIMEOUT": "30",
            "JWKS_KEEP_ALIVE_TIMEOUT": "75",
            "JWKS_KEEP_ALIVE_REQUESTS": "1",
            "JWKS_MAX_HEADER_BYTES": "1024",
            "JWKS_MAX_HEADERS": "20",
        }
    )
    assert (settings.header_timeout, settings.body_timeout) == (3, 30)
    assert (settings.keep_alive_timeout, settings.keep_alive_requests) == (75, 1)
    assert (settings.max_header_bytes, settings.max_headers) == (1024, 20)


def test_cache_bounds_access_log_and_signing_threads() -> None:
    settings = Settings.from_env(
        {
            "JWKS_CACHE_REALMS": "500",
            "JWKS_CACHE_CLIENTS": "20000",
            "JWKS_ACCESS_LOG": "false",
            "JWKS_SIGN_THREAD_MIN_BITS": "3072",
        }
    )
    assert (settings.cache_realms, settings.cache_clients) == (500, 20_000)
    assert not settings.access_log
    assert settings.sign_thread_min_bits == 3072


def test_log_format_and_level() -> None:
    assert (Settings().log_format, Settings().log_level) == ("json", "INFO")
    settings = Settings.from_env({"JWKS_LOG_FORMAT": "Text", "JWKS_LOG_LEVEL": "warning"})
    assert (settings.log_format, settings.log_level) == ("text", "WARNING")
    with pytest.raises(ConfigError, match="JWKS_LOG_FORMAT: must be one of json, text"):
        Settings.from_env({"JWKS_LOG_FORMAT": "logfmt"})
    with pytest.raises(ConfigError, match="JWKS_LOG_LEVEL: must be one of DEBUG"):
        Settings.from_env({"JWKS_LOG_LEVEL": "loud"})


def test_empty_or_blank_values_mean_unset() -> None:
    blank = {
        name: value
        for name, value in [
            ("JWKS_REDIS_URL", ""),
            ("JWKS_DATA_DIR", "  "),
            ("JWKS_ISSUER", ""),
            ("JWKS_BOOTSTRAP_ADMIN_KEY", " "),
            ("JWKS_KEK", ""),
            ("JWKS_JWKS_MAX_AGE", ""),
            ("JWKS_KEY_GRACE", "\t"),
            ("JWKS_RSA_BITS", ""),
        ]
    }
    assert Settings.from_env(blank) == Settings()


def test_unrelated_variables_are_ignored() -> None:
    assert Settings.from_env({"REDIS_URL": "http://nope", "JWKS_UNKNOWN": "x"}) == Settings()


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6380/0",
        "redis://:pw@cache.internal:6379",
        "rediss://user:pw@cache.example.com:6380/1",
        "unix:///run/valkey/valkey.sock",
        "unix:///tmp/v.sock?db=2",
        "redis+cluster://10.0.0.1:7000",
        "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002",
        "redis+cluster://:pw@a:7000,b",
        "redis+sentinel://s1:26379,s2:26380,s3/mymaster",
        "redis+sentinel://user:p%40ss@s1:26379/mymaster",
    ],
)
def test_redis_url_accepted(url: str) -> None:
    settings = Settings.from_env({"JWKS_REDIS_URL": url, "JWKS_KEK": KEK_B64})
    assert settings.redis_url == url
    assert not settings.embedded


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:6379",
        "localhost:6379",
        "redis://",
        "redis:///0",
        "unix://",
        "redis://[::1",
        "redis://cache:notaport",
        "redis://cache:99999",
        "redis+cluster://",
        "redis+cluster://a:7000,,b:7001",
        "redis+cluster://a:7000,b:notaport",
        "redis+cluster://a:70000",
        "redis+cluster://a:7000/0",
        "redis+cluster://a:7000?ssl=true",
        "redis+sentinel://s1:26379",
        "redis+sentinel://s1:26379/",
        "redis+sentinels://s1:26379/m",
    ],
)
def test_bad_redis_url_is_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_REDIS_URL": url})
    assert caught.value.variable == "JWKS_REDIS_URL"
    assert str(caught.value).startswith("JWKS_REDIS_URL")


def test_bad_redis_url_error_hides_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_REDIS_URL": "http://:hunter2-password@cache:6379"})
    assert "hunter2-password" not in str(caught.value)


def test_multi_host_urls_parse() -> None:
    assert parse_multi_host_url("redis+cluster://a:7000,[::1]:7001,b") == MultiHostUrl(
        "redis+cluster", (("a", 7000), ("::1", 7001), ("b", 6379))
    )
    sentinel = parse_multi_host_url("redis+sentinel://u:p%40w@s1,s2:26380/my%20master")
    assert sentinel == MultiHostUrl(
        "redis+sentinel", (("s1", 26379), ("s2", 26380)), "my master", "u", "p@w"
    )
    assert not sentinel.cluster
    assert parse_multi_host_url("redis+cluster://secret@a:7000").password == "secret"


def test_bad_multi_host_url_error_hides_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_REDIS_URL": "redis+sentinel://:hunter2-password@s1:x/m"})
    assert "hunter2-password" not in str(caught.value)


# TLS and Sentinel credentials in store URLs --------------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _redis_url_error(url: str) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_REDIS_URL": url, "JWKS_KEK": KEK_B64})
    assert caught.value.variable == "JWKS_REDIS_URL"
    return str(caught.value)


def test_tls_and_sentinel_parameters_parse(pki: Pki) -> None:
    sentinel = parse_multi_host_url(
        f"rediss+sentinel://:master-pw@s1,s2:26380/mymaster?ssl_ca_certs={pki.ca}"
        f"&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}"
        "&sentinel_username=watcher&sentinel_password=s%2Bpw%26"
    )
    assert sentinel.password == "master-pw"
    assert (sentinel.sentinel_username, sentinel.sentinel_password) == ("watcher", "s+pw&")
    assert sentinel.tls == TlsOptions(
        ca_certs=str(pki.ca), certfile=str(pki.client_cert), keyfile=str(pki.client_key)
    )
    assert not sentinel.cluster
    cluster = parse_multi_host_url(
        "rediss+cluster://a:7000,b?ssl_cert_reqs=none&ssl_check_hostname=false"
    )
    assert cluster.cluster and cluster.hosts == (("a", 7000), ("b", 6379))
    assert cluster.tls == TlsOptions(verify=False, check_hostname=False)
    # The plaintext schemes have no TLS; the Sentinels' credentials are optional.
    assert parse_multi_host_url("redis+sentinel://s1/m?sentinel_password=x").tls is None
    assert parse_multi_host_url("rediss+cluster://a").tls == TlsOptions()


def test_single_server_tls_parameters(pki: Pki) -> None:
    url = f"rediss://default:pw@cache.example.com:6380/0?ssl_ca_certs={pki.ca}"
    assert single_server_tls(url) == TlsOptions(ca_certs=str(pki.ca))
    assert single_server_tls("rediss://h?ssl_cert_reqs=none") == TlsOptions(verify=False)
    assert single_server_tls("redis://h/0") is None
    assert single_server_tls("unix:///tmp/v.sock?db=2") is None


@pytest.mark.parametrize(
    "query",
    [
        "ssl_ca_certs={ca}",
        "ssl_ca_certs={ca}&ssl_cert_reqs=required&ssl_check_hostname=true",
        "ssl_cert_reqs=none",
        "ssl_certfile={cert}&ssl_keyfile={key}&ssl_ca_certs={ca}",
    ],
)
@pytest.mark.parametrize(
    "base",
    [
        "rediss://:pw@cache.example.com:6380/0",
        "rediss+cluster://:pw@a:7000,b",
        "rediss+sentinel://:pw@s1/m",
    ],
)
def test_tls_urls_accepted(pki: Pki, base: str, query: str) -> None:
    url = f"{base}?" + query.format(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    settings = Settings.from_env({"JWKS_REDIS_URL": url, "JWKS_KEK": KEK_B64})
    assert settings.redis_url == url


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("rediss+cluster://a?ssl_ca_cert=/x", "unknown query parameter ssl_ca_cert"),
        ("rediss://h/0?ssl_verify=no", "unknown query parameter ssl_verify"),
        ("rediss://h/0?socket_timeout=1", "unknown query parameter socket_timeout"),
        ("redis+cluster://a?ssl_cert_reqs=none", "TLS needs rediss+cluster://"),
        ("redis+sentinel://s/m?ssl_cert_reqs=none", "TLS needs rediss+sentinel://"),
        ("redis://h/0?ssl_cert_reqs=none", "TLS needs rediss://"),
        ("unix:///tmp/v.sock?ssl_cert_reqs=none", "has no TLS"),
        ("rediss+cluster://a?ssl=true", "already means TLS"),
        ("rediss+cluster://a?sentinel_password=x", "only Sentinel URLs"),
        ("rediss://h?sentinel_password=x", "only Sentinel URLs"),
        ("rediss+cluster://a?ssl_cert_reqs=none&ssl_cert_reqs=none", "ssl_cert_reqs twice"),
        ("rediss+cluster://a?ssl_cert_reqs=", "empty query parameter ssl_cert_reqs"),
        ("rediss+cluster://a?ssl_cert_reqs=optional", "ssl_cert_reqs"),
        ("rediss+cluster://a?ssl_check_hostname=maybe", "ssl_check_hostname"),
        ("rediss+cluster://a?ssl_keyfile={key}", "ssl_keyfile without ssl_certfile"),
        ("rediss+cluster://a?ssl_ca_certs=/nonexistent/ca.pem", "ssl_ca_certs file it cannot read"),
        ("rediss+cluster://a?ssl_ca_certs={key}", "ssl_ca_certs file that holds no PEM"),
        ("rediss+cluster://a?ssl_certfile={ca}", "ssl_certfile / ssl_keyfile"),
        ("rediss+sentinel://s/m?sentinel_username=u", "sentinel_username without"),
        ("unix:///tmp/v.sock?db=two", "db parameter"),
    ],
)
def test_bad_query_is_config_error_naming_the_parameter(pki: Pki, url: str, names: str) -> None:
    message = _redis_url_error(url.format(key=pki.client_key, ca=pki.ca))
    assert names in message


def test_query_errors_never_quote_a_value() -> None:
    secrets = ["hunter2-master", "hunter3-sentinel", "hunter4-value", "/hunter5/path"]
    urls = [
        "rediss+sentinel://:hunter2-master@s1/m?sentinel_password=hunter3-sentinel"
        "&ssl_cert_reqs=hunter4-value",
        "rediss+sentinel://:hunter2-master@s1/m?sentinel_password=hunter3-sentinel&bogus=1",
        "rediss+cluster://:hunter2-master@a?ssl_check_hostname=hunter4-value",
        "rediss://:hunter2-master@h?ssl_ca_certs=/hunter5/path",
        # A bare & inside a password: the rest is no parameter's name, and is not quoted.
        "rediss+sentinel://s1/m?sentinel_password=abc&hunter4-value",
    ]
    for url in urls:
        message = _redis_url_error(url)
        assert not [s for s in secrets if s in message], message


def test_store_passwords_are_not_in_reprs() -> None:
    url = "rediss+sentinel://:hunter2-master@s1/m?sentinel_password=hunter3-sentinel"
    shown = repr(parse_multi_host_url(url)) + repr(
        Settings.from_env({"JWKS_REDIS_URL": url, "JWKS_KEK": KEK_B64})
    )
    assert "hunter2" not in shown and "hunter3" not in shown


def test_redis_url_from_a_file(tmp_path: Path) -> None:
    url = "rediss+sentinel://:master-pw@s1/m?sentinel_password=sentinel-pw"
    (tmp_path / "url").write_text(url + "\n")
    env = {"JWKS_REDIS_URL_FILE": str(tmp_path / "url"), "JWKS_KEK": KEK_B64}
    assert Settings.from_env(env).redis_url == url
    (tmp_path / "url").write_text("rediss+sentinel://:master-pw@s1/m?bogus=sentinel-pw")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == "JWKS_REDIS_URL_FILE"
    assert "bogus" in str(caught.value) and "pw" not in str(caught.value)


def test_data_dir(tmp_path: Path) -> None:
    assert Settings.from_env({"JWKS_DATA_DIR": str(tmp_path)}).data_dir == tmp_path
    assert Settings.from_env({"JWKS_DATA_DIR": "rel/dir"}).data_dir == Path("rel/dir")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://auth.example.com", "https://auth.example.com"),
        ("https://auth.example.com/", "https://auth.example.com"),
        ("https://auth.example.com/tenant//", "https://auth.example.com/tenant"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ],
)
def test_issuer_trailing_slash_stripped(raw: str, expected: str) -> None:
    assert Settings.from_env({"JWKS_ISSUER": raw}).issuer == expected


@pytest.mark.parametrize(
    "raw",
    [
        "auth.example.com",
        "ftp://auth.example.com",
        "https://",
        "https://auth.example.com/?tenant=1",
        "https://auth.example.com/#top",
        "http://[::1",
        "https://auth.example.com:https",
    ],
)
def test_bad_issuer_is_config_error(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_ISSUER": raw})
    assert str(caught.value).startswith("JWKS_ISSUER")


def test_bootstrap_admin_key_of_32_chars_accepted() -> None:
    assert len(ADMIN_KEY) == 32
    settings = Settings.from_env({"JWKS_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY})
    assert settings.bootstrap_admin_key == ADMIN_KEY


def test_short_bootstrap_admin_key_is_config_error_without_the_key() -> None:
    short = ADMIN_KEY[:31]
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_BOOTSTRAP_ADMIN_KEY": short})
    assert str(caught.value).startswith("JWKS_BOOTSTRAP_ADMIN_KEY")
    assert short not in str(caught.value)
    assert short not in repr(caught.value.args)


def test_kek_is_base64_of_32_bytes() -> None:
    assert Settings.from_env({"JWKS_KEK": KEK_B64}).kek == KEK_BYTES
    assert Settings.from_env({"JWKS_KEK": f"  {KEK_B64}\n"}).kek == KEK_BYTES


@pytest.mark.parametrize(
    "raw",
    [
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        base64.b64encode(b"\x01" * 64).decode(),
        "not base64 at all, but quite long enough!!",
        base64.urlsafe_b64encode(b"\xfb" * 32).decode(),
        KEK_B64[:-4],
    ],
)
def test_bad_kek_is_config_error_without_the_value(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_KEK": raw})
    assert str(caught.value).startswith("JWKS_KEK")
    assert raw not in str(caught.value)
    assert raw not in repr(caught.value.args)
    assert caught.value.__cause__ is None or raw not in str(caught.value.__cause__)


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("60", 60), (" 3600 ", 3600)])
def test_jwks_max_age(raw: str, expected: int) -> None:
    assert Settings.from_env({"JWKS_JWKS_MAX_AGE": raw}).jwks_max_age == expected


@pytest.mark.parametrize(("raw", "expected"), [("960", 960), ("604800", 604_800)])
def test_key_grace(raw: str, expected: int) -> None:
    assert Settings.from_env({"JWKS_KEY_GRACE": raw}).key_grace == expected


@pytest.mark.parametrize("raw", ["2048", "3072", "4096"])
def test_rsa_bits(raw: str) -> None:
    assert Settings.from_env({"JWKS_RSA_BITS": raw}).rsa_bits == int(raw)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("JWKS_JWKS_MAX_AGE", "5m"),
        ("JWKS_JWKS_MAX_AGE", "-1"),
        ("JWKS_JWKS_MAX_AGE", "1.5"),
        ("JWKS_JWKS_MAX_AGE", "\u00b2"),
        ("JWKS_KEY_GRACE", "0"),
        ("JWKS_KEY_GRACE", "1d"),
        ("JWKS_KEY_GRACE", "\u0663"),
        ("JWKS_RSA_BITS", "1024"),
        ("JWKS_RSA_BITS", "8192"),
        ("JWKS_RSA_BITS", "2048.0"),
        ("JWKS_RSA_BITS", "\u00b9\u2070\u00b2\u2074"),
        ("JWKS_CACHE_REALMS", "0"),
        ("JWKS_CACHE_REALMS", "many"),
        ("JWKS_CACHE_CLIENTS", "-5"),
        ("JWKS_SIGN_THREAD_MIN_BITS", "0"),
        ("JWKS_ACCESS_LOG", "sometimes"),
        ("JWKS_HEADER_TIMEOUT", "0"),
        ("JWKS_HEADER_TIMEOUT", "0.5"),
        ("JWKS_BODY_TIMEOUT", "0"),
        ("JWKS_KEEP_ALIVE_TIMEOUT", "0"),
        ("JWKS_KEEP_ALIVE_TIMEOUT", "5s"),
        ("JWKS_KEEP_ALIVE_REQUESTS", "0"),
        ("JWKS_MAX_HEADER_BYTES", "1023"),
        ("JWKS_MAX_HEADER_BYTES", "16k"),
        ("JWKS_MAX_HEADERS", "0"),
        ("JWKS_SHUTDOWN_DELAY", "-1"),
        ("JWKS_SHUTDOWN_DELAY", "0.5"),
        ("JWKS_SHUTDOWN_TIMEOUT", "20s"),
        ("JWKS_SHUTDOWN_TIMEOUT", "-5"),
        ("JWKS_STORE_WAIT", "forever"),
        ("JWKS_STORE_WAIT", "-1"),
    ],
)
def test_bad_number_is_config_error(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: raw})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(variable)


def test_first_bad_variable_is_named_and_good_ones_do_not_hide_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_ISSUER": "https://ok.example", "JWKS_RSA_BITS": "512"})
    assert caught.value.variable == "JWKS_RSA_BITS"


def test_config_error_is_a_service_error_with_a_safe_detail() -> None:
    with pytest.raises(ServiceError) as caught:
        Settings.from_env({"JWKS_JWKS_MAX_AGE": "soon"})
    assert isinstance(caught.value, ConfigError)
    assert caught.value.detail == str(caught.value)


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({"JWKS_RSA_BITS": "3072"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.rsa_bits = 4096  # type: ignore[misc]
    assert settings.rsa_bits == 3072


def test_key_grace_must_outlive_tokens_and_cached_jwks() -> None:
    """Grace >= token lifetime + JWKS max-age + margin, or the start is refused."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_KEY_GRACE": "959"})
    assert str(caught.value).startswith("JWKS_KEY_GRACE: must be at least 960 s")
    short = {"JWKS_KEY_GRACE": "200", "JWKS_TOKEN_TTL": "60", "JWKS_JWKS_MAX_AGE": "60"}
    assert Settings.from_env(short).key_grace == 200
    with pytest.raises(ConfigError):
        Settings.from_env({**short, "JWKS_JWKS_MAX_AGE": "100"})


def test_oauth_settings() -> None:
    settings = Settings.from_env(
        {
            "JWKS_TOKEN_TTL": "300",
            "JWKS_MAX_ASSERTION_LIFETIME": "120",
            "JWKS_STRICT_ASSERTION_AUDIENCE": "true",
        }
    )
    assert (settings.token_ttl, settings.max_assertion_lifetime) == (300, 120)
    assert settings.strict_assertion_audience is True
    assert Settings.from_env({}).strict_assertion_audience is False
    assert Settings.from_env({"JWKS_ISSUER": "https://k.example/"}).issuer_of("acme") == (
        "https://k.example/realms/acme"
    )
    for name, raw in (
        ("JWKS_TOKEN_TTL", "0"),
        ("JWKS_MAX_ASSERTION_LIFETIME", "1h"),
        ("JWKS_STRICT_ASSERTION_AUDIENCE", "maybe"),
    ):
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({name: raw})
        assert str(caught.value).startswith(f"{name}: ")


def test_rotation_interval() -> None:
    assert Settings.from_env({}).rotation_interval == 604_800
    assert Settings.from_env({"JWKS_ROTATION_INTERVAL": "0"}).rotation_interval == 0
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_ROTATION_INTERVAL": "305"})
    assert str(caught.value).startswith("JWKS_ROTATION_INTERVAL: must be 0 (off) or more than 305")


def test_rate_limits_and_lockouts() -> None:
    defaults = Settings.from_env({})
    # Generous enough for `make bench` (one client, one address, ~10,000 req/s).
    assert defaults.rate_token_per_client == defaults.rate_token_per_address == 1_000_000
    assert defaults.rate_introspect_per_client == defaults.rate_admin_per_key == 1_000_000
    assert (defaults.auth_failures, defaults.auth_failures_per_address) == (10, 100)
    assert defaults.auth_lockout == 60
    settings = Settings.from_env(
        {
            "JWKS_RATE_TOKEN_PER_CLIENT": "600",
            "JWKS_RATE_TOKEN_PER_ADDRESS": "0",
            "JWKS_RATE_INTROSPECT_PER_CLIENT": "6000",
            "JWKS_RATE_ADMIN_PER_KEY": "60",
            "JWKS_AUTH_FAILURES": "0",
            "JWKS_AUTH_FAILURES_PER_ADDRESS": "20",
            "JWKS_AUTH_LOCKOUT": "900",
        }
    )
    assert (settings.rate_token_per_client, settings.rate_token_per_address) == (600, 0)
    assert (settings.rate_introspect_per_client, settings.rate_admin_per_key) == (6000, 60)
    assert (settings.auth_failures, settings.auth_failures_per_address) == (0, 20)
    assert settings.auth_lockout == 900


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("JWKS_RATE_TOKEN_PER_CLIENT", "-1"),
        ("JWKS_RATE_TOKEN_PER_ADDRESS", "10/s"),
        ("JWKS_RATE_INTROSPECT_PER_CLIENT", "1e6"),
        ("JWKS_RATE_ADMIN_PER_KEY", "\u0663"),
        ("JWKS_AUTH_FAILURES", "ten"),
        ("JWKS_AUTH_FAILURES_PER_ADDRESS", "2.5"),
        ("JWKS_AUTH_LOCKOUT", "0"),
        ("JWKS_AUTH_LOCKOUT", "1m"),
    ],
)
def test_bad_rate_limit_is_config_error(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: raw})
    assert caught.value.variable == variable


def test_an_external_store_needs_a_kek() -> None:
    """A KEK made in the data dir would be lost with a container's filesystem (issue 9)."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_REDIS_URL": "redis://cache.internal:6379/0"})
    assert caught.value.variable == "JWKS_KEK"
    assert "JWKS_KEK_FILE" in str(caught.value) and "\n" not in str(caught.value)


def test_the_embedded_store_makes_its_own_kek() -> None:
    assert Settings.from_env({}).kek is None


def _secret_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "secret"
    path.write_text(text)
    return str(path)


def test_kek_file_is_read_like_the_variable(tmp_path: Path) -> None:
    """A Kubernetes secret mounted as a file: its trailing newline is not part of it."""
    other = base64.b64encode(bytes(32)).decode()
    single = Settings.from_env({"JWKS_KEK_FILE": _secret_file(tmp_path, f"{KEK_B64}\n")})
    assert single == Settings.from_env({"JWKS_KEK": KEK_B64})
    listed = Settings.from_env(
        {
            "JWKS_REDIS_URL": "redis://cache.internal:6379/0",
            "JWKS_KEK_FILE": _secret_file(tmp_path, f"k1:{KEK_B64},0:{other}\n"),
        }
    )
    assert (listed.kek, listed.kek_id) == (KEK_BYTES, "k1")
    assert listed.previous_keks == (("0", bytes(32)),)


def test_bootstrap_admin_key_file_is_read_like_the_variable(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, f"{ADMIN_KEY}\n")
    settings = Settings.from_env({"JWKS_BOOTSTRAP_ADMIN_KEY_FILE": path})
    assert settings.bootstrap_admin_key == ADMIN_KEY


@pytest.mark.parametrize(
    ("variable", "value"), [("JWKS_KEK", KEK_B64), ("JWKS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)]
)
def test_a_variable_and_its_file_together_are_config_error(
    tmp_path: Path, variable: str, value: str
) -> None:
    path = _secret_file(tmp_path, value)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value, f"{variable}_FILE": path})
    assert caught.value.variable == f"{variable}_FILE"
    assert value not in str(caught.value)


@pytest.mark.parametrize("variable", ["JWKS_KEK_FILE", "JWKS_BOOTSTRAP_ADMIN_KEY_FILE"])
def test_unreadable_secret_file_is_config_error_naming_variable_and_path(
    tmp_path: Path, variable: str
) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: str(missing)})
    assert caught.value.variable == variable
    assert str(missing) in str(caught.value)
    with pytest.raises(ConfigError) as directory:
        Settings.from_env({variable: str(tmp_path)})
    assert directory.value.variable == variable


@pytest.mark.parametrize(
    ("variable", "content"),
    [
        ("JWKS_KEK_FILE", "not base64 at all, but quite long enough!!"),
        ("JWKS_KEK_FILE", f"k1:{KEK_B64[:-4]}"),
        ("JWKS_BOOTSTRAP_ADMIN_KEY_FILE", ADMIN_KEY[:31]),
    ],
)
def test_bad_secret_file_content_is_config_error_without_the_content(
    tmp_path: Path, variable: str, content: str
) -> None:
    path = _secret_file(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: path})
    assert caught.value.variable == variable
    assert content not in str(caught.value)
    assert caught.value.__cause__ is None or content not in str(caught.value.__cause__)


def test_secret_file_that_is_not_text_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe" + bytes(30))
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_KEK_FILE": str(path)})
    assert caught.value.variable == "JWKS_KEK_FILE"
    assert str(path) in str(caught.value)


def test_embedded_store_is_allowed_unless_refused() -> None:
    assert Settings.from_env({}).embedded_store == "allow"
    assert Settings.from_env({"JWKS_EMBEDDED_STORE": "allow"}).embedded


def test_a_refused_embedded_store_needs_a_redis_url() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_EMBEDDED_STORE": "refuse", "JWKS_DATA_DIR": "/data"})
    assert caught.value.variable == "JWKS_REDIS_URL"
    message = str(caught.value)
    assert "\n" not in message
    assert "JWKS_EMBEDDED_STORE=allow" in message
    assert "/data" in message


@pytest.mark.parametrize("raw", ["refuse", "Refuse", " REFUSE "])
def test_a_refused_embedded_store_does_not_matter_with_a_redis_url(raw: str) -> None:
    settings = Settings.from_env(
        {"JWKS_EMBEDDED_STORE": raw, "JWKS_REDIS_URL": "redis://store:6379/0", "JWKS_KEK": KEK_B64}
    )
    assert settings.embedded_store == "refuse"
    assert not settings.embedded


@pytest.mark.parametrize("raw", ["no", "deny", "true", "refused"])
def test_bad_embedded_store_is_config_error(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_EMBEDDED_STORE": raw})
    assert caught.value.variable == "JWKS_EMBEDDED_STORE"


def test_shutdown_and_store_wait_defaults_fit_kubernetes() -> None:
    settings = Settings.from_env({})
    assert (settings.shutdown_delay, settings.shutdown_timeout) == (5, 15)
    assert settings.store_wait == 30
    # With the manifest's 5 s preStop sleep, well inside the pod's default 30 s
    # terminationGracePeriodSeconds; and a slow upload ends (408) within the timeout.
    assert 5 + settings.shutdown_delay + settings.shutdown_timeout < 30
    assert settings.shutdown_timeout > settings.body_timeout


def test_shutdown_and_store_wait() -> None:
    settings = Settings.from_env(
        {"JWKS_SHUTDOWN_DELAY": "0", "JWKS_SHUTDOWN_TIMEOUT": "60", "JWKS_STORE_WAIT": "0"}
    )
    assert (settings.shutdown_delay, settings.shutdown_timeout, settings.store_wait) == (0, 60, 0)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2-password@127.0.0.1:6380/0", "redis://127.0.0.1:6380"),
        ("rediss://user:hunter2-password@[::1]:6380?ssl_cert_reqs=none", "rediss://[::1]:6380"),
        ("redis://cache", "redis://cache"),
        ("unix:///run/valkey.sock?password=hunter2-password", "unix:///run/valkey.sock"),
        (
            "redis+sentinel://:hunter2-password@s1,s2:26380/mymaster",
            "redis+sentinel://s1:26379,s2:26380/mymaster",
        ),
        ("redis+cluster://u:hunter2-password@a:7000,b:7001", "redis+cluster://a:7000,b:7001"),
    ],
)
def test_a_redacted_url_shows_where_and_no_secret(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
