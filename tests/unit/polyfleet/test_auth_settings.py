"""The authentication settings (POLYFLEET_AUTH_*) and the API's per-caller limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from polyfleet.config import ApiSettings, AuthSettings, ConfigError
from polyfleet.roles import Role


def test_defaults_leave_authentication_off() -> None:
    settings = AuthSettings()
    assert not settings.enabled
    assert settings.oidc_algorithms == ["RS256", "ES256"]
    assert settings.oidc_roles_claim == "roles" and settings.oidc_subject_claim == "sub"
    assert settings.runner_binding_ttl == timedelta(seconds=10)


@pytest.mark.parametrize(
    "values",
    [
        {"tokens_file": Path("tokens.yaml")},
        {"oidc_issuer": "https://id.example/realms/x"},
        {"mtls_roles": "runner-1=runner"},
    ],
)
def test_any_credential_turns_authentication_on(values: dict[str, object]) -> None:
    assert AuthSettings(**values).enabled


def test_maps_and_lists_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_AUTH_OIDC_ROLE_MAP", "platform-admins=Admin, devs=operator")
    monkeypatch.setenv("POLYFLEET_AUTH_MTLS_ROLES", '{"runner-1.fleet": "runner"}')
    monkeypatch.setenv("POLYFLEET_AUTH_OIDC_ALGORITHMS", "RS256, PS256")
    monkeypatch.setenv("POLYFLEET_AUTH_RUNNER_BINDING_TTL", "1m")
    settings = AuthSettings()
    assert settings.oidc_role_map == {"platform-admins": Role.ADMIN, "devs": Role.OPERATOR}
    assert settings.mtls_roles == {"runner-1.fleet": Role.RUNNER}
    assert settings.oidc_algorithms == ["RS256", "PS256"]
    assert settings.runner_binding_ttl == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("POLYFLEET_AUTH_MTLS_ROLES", "a=admin,b=boss", "unknown role 'boss'"),
        ("POLYFLEET_AUTH_OIDC_ROLE_MAP", "devs", "'devs' is not NAME=ROLE"),
        ("POLYFLEET_AUTH_OIDC_ALGORITHMS", "RS256,HS256", "expected some of"),
        ("POLYFLEET_AUTH_OIDC_ALGORITHMS", "none", "expected some of"),
        ("POLYFLEET_AUTH_OIDC_ISSUER", "id.example", "expected an http(s) URL"),
        ("POLYFLEET_AUTH_OIDC_AUDIENCE", "api", "need POLYFLEET_AUTH_OIDC_ISSUER"),
        ("POLYFLEET_AUTH_RUNNER_BINDING_TTL", "0s", "must be more than 0"),
        ("POLYFLEET_AUTH_OIDC_SUBJECT_CLAIM", " ", "must not be empty"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        AuthSettings()
    assert variable in str(caught.value)
    assert expected in str(caught.value)


def test_per_caller_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ApiSettings()
    assert settings.api_reflection
    assert settings.api_max_watches_per_caller == 32
    assert settings.api_create_rate_per_caller == 0.0
    assert settings.api_create_burst_per_caller == 20
    monkeypatch.setenv("POLYFLEET_API_CREATE_RATE_PER_CALLER", "-1")
    with pytest.raises(ConfigError, match="POLYFLEET_API_CREATE_RATE_PER_CALLER"):
        ApiSettings()
    monkeypatch.setenv("POLYFLEET_API_CREATE_RATE_PER_CALLER", "2.5")
    monkeypatch.setenv("POLYFLEET_API_CREATE_BURST_PER_CALLER", "0")
    with pytest.raises(ConfigError, match="POLYFLEET_API_CREATE_BURST_PER_CALLER"):
        ApiSettings()
