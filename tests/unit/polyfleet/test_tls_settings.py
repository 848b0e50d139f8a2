"""The API's TLS settings: pairs set together, plaintext only on loopback, PEM files."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyfleet.channel import (
    bearer_metadata,
    client_credentials,
    create_sync_channel,
    read_pem,
    token_metadata,
)
from polyfleet.config import ApiSettings, ConfigError, is_loopback
from polyfleet.fleet import _api_overrides

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"api_tls_cert": "server.crt"}, "POLYFLEET_API_TLS_CERT and POLYFLEET_API_TLS_KEY"),
        ({"api_tls_key": "server.key"}, "POLYFLEET_API_TLS_CERT and POLYFLEET_API_TLS_KEY"),
        (
            {"api_tls_client_cert": "client.crt"},
            "POLYFLEET_API_TLS_CLIENT_CERT and POLYFLEET_API_TLS_CLIENT_KEY",
        ),
        (
            {"api_tls_client_key": "client.key"},
            "POLYFLEET_API_TLS_CLIENT_CERT and POLYFLEET_API_TLS_CLIENT_KEY",
        ),
        ({"api_tls_client_ca": "ca.pem"}, "POLYFLEET_API_TLS_CLIENT_CA needs"),
    ],
)
def test_certificate_and_key_are_set_together(fields: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        ApiSettings(**fields)


def test_the_pair_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_API_TLS_CERT", "/etc/polyfleet/server.crt")
    with pytest.raises(ConfigError, match="set both"):
        ApiSettings()
    monkeypatch.setenv("POLYFLEET_API_TLS_KEY", "/etc/polyfleet/server.key")
    assert ApiSettings().server_tls


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:7234", "127.1.2.3:1", "[::1]:7234", "localhost:7234", "LOCALHOST:1"],
)
def test_plaintext_is_allowed_on_loopback(address: str) -> None:
    assert is_loopback(address)
    ApiSettings().check_bind(address, authenticated=False)


@pytest.mark.parametrize(
    "address", ["0.0.0.0:7234", ":7234", "[::]:7234", "10.0.0.5:7234", "orchestrator:7234"]
)
def test_plaintext_is_refused_elsewhere(address: str) -> None:
    assert not is_loopback(address)
    with pytest.raises(ConfigError) as caught:
        ApiSettings().check_bind(address, authenticated=False)
    message = str(caught.value)
    assert f"POLYFLEET_API_ADDRESS={address}" in message
    assert "no TLS" in message and "POLYFLEET_API_TLS_CERT" in message
    assert "no authentication" in message and "POLYFLEET_AUTH_TOKENS_FILE" in message
    assert "POLYFLEET_API_ALLOW_INSECURE" in message


def test_tls_without_authentication_is_refused_elsewhere() -> None:
    with pytest.raises(ConfigError) as caught:
        ApiSettings(api_tls_cert="s.crt", api_tls_key="s.key").check_bind(
            "0.0.0.0:7234", authenticated=False
        )
    message = str(caught.value)
    assert "no authentication" in message and "POLYFLEET_AUTH_" in message
    assert "TLS (" not in message


def test_authentication_without_tls_is_refused_elsewhere() -> None:
    with pytest.raises(ConfigError) as caught:
        ApiSettings().check_bind("0.0.0.0:7234", authenticated=True)
    message = str(caught.value)
    assert "no TLS" in message and "POLYFLEET_API_TLS_CERT" in message
    assert "authentication (" not in message


def test_allow_insecure_or_tls_and_authentication_lift_the_refusal() -> None:
    ApiSettings(api_allow_insecure=True).check_bind("0.0.0.0:7234", authenticated=False)
    ApiSettings(api_tls_cert="s.crt", api_tls_key="s.key").check_bind(
        "0.0.0.0:7234", authenticated=True
    )


def test_unreadable_pem_names_variable_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match=f"POLYFLEET_API_TLS_ROOT_CERT={missing}: cannot read"):
        read_pem("POLYFLEET_API_TLS_ROOT_CERT", missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("secret-looking text")
    with pytest.raises(ConfigError) as caught:
        read_pem("POLYFLEET_API_TLS_KEY", garbage)
    assert "not a PEM file" in str(caught.value)
    assert "secret-looking" not in str(caught.value)


def test_client_credentials_follow_the_settings(tmp_path: Path) -> None:
    assert client_credentials(ApiSettings()) is None
    assert client_credentials(ApiSettings(api_tls=True)) is not None
    root = tmp_path / "ca.pem"
    root.write_bytes(PEM)
    # A root certificate alone implies TLS.
    assert client_credentials(ApiSettings(api_tls_root_cert=root)) is not None
    settings = ApiSettings(
        api_tls=True, api_tls_client_cert=tmp_path / "c.crt", api_tls_client_key=root
    )
    with pytest.raises(ConfigError, match="POLYFLEET_API_TLS_CLIENT_CERT="):
        client_credentials(settings)
    with pytest.raises(ConfigError, match="POLYFLEET_API_TLS_CLIENT_CERT="):
        create_sync_channel("127.0.0.1:1", settings)


def test_the_token_as_metadata_on_any_channel_or_on_plaintext_only() -> None:
    header = ("authorization", "Bearer t0ken")
    tls = ApiSettings(api_tls=True, api_token="t0ken")
    plaintext = ApiSettings(api_token="t0ken")

    # Over TLS the channel's call credentials carry it, unless the client opts out and
    # passes bearer_metadata with each call (the runner: no plugin thread per call).
    assert token_metadata(tls) == ()
    assert bearer_metadata(tls) == (header,)
    assert token_metadata(plaintext) == bearer_metadata(plaintext) == (header,)
    assert bearer_metadata(ApiSettings(api_tls=True)) == ()
    assert client_credentials(tls, call_credentials=False) is not None


def test_fleet_health_check_uses_the_childrens_api_settings() -> None:
    env = {"POLYFLEET_API_TLS": "true", "POLYFLEET_API_TLS_SERVER_NAME": "api", "HOME": "/"}
    settings = ApiSettings(**_api_overrides(env))
    assert settings.api_tls
    assert settings.api_tls_server_name == "api"
