"""The orchestrator refuses to start with unsafe or unreadable transport settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import Orchestrator, OrchestratorSettings
from polyfleet.config import ApiSettings, AuthSettings, ConfigError, StoreSettings


def _orchestrator(tmp_path: Path, auth: AuthSettings | None = None, **api: object) -> Orchestrator:
    return Orchestrator(
        OrchestratorSettings(
            api=ApiSettings(**api),
            auth=auth or AuthSettings(),
            store=StoreSettings(data_dir=tmp_path / "data"),
        )
    )


async def test_plaintext_on_all_interfaces_is_refused(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path, api_address="0.0.0.0:7234")
    with pytest.raises(ConfigError, match="POLYFLEET_API_ALLOW_INSECURE"):
        await orchestrator.run()
    # Refused before touching the data directory.
    assert not (tmp_path / "data").exists()


async def test_missing_certificate_names_variable_and_path(tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    cert = tmp_path / "nowhere" / "server.crt"
    orchestrator = _orchestrator(tmp_path, api_tls_cert=cert, api_tls_key=key)
    with pytest.raises(ConfigError, match=f"POLYFLEET_API_TLS_CERT={cert}: cannot read"):
        await orchestrator.run()


async def test_tls_without_authentication_on_all_interfaces_is_refused(tmp_path: Path) -> None:
    orchestrator = _orchestrator(
        tmp_path, api_address="0.0.0.0:7234", api_tls_cert="s.crt", api_tls_key="s.key"
    )
    with pytest.raises(ConfigError, match="no authentication"):
        await orchestrator.run()
    assert not (tmp_path / "data").exists()


async def test_tls_and_authentication_pass_the_bind_check(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens: []\n")
    orchestrator = _orchestrator(
        tmp_path,
        auth=AuthSettings(tokens_file=tokens),
        api_address="0.0.0.0:7234",
        api_tls_cert=tmp_path / "missing.crt",
        api_tls_key=tmp_path / "missing.key",
    )
    # Past the bind check: refused only for the certificate files that do not exist.
    with pytest.raises(ConfigError, match=r"POLYFLEET_API_TLS_CERT=.*cannot read"):
        await orchestrator.run()


async def test_certificate_roles_without_a_client_ca_are_refused(tmp_path: Path) -> None:
    orchestrator = _orchestrator(tmp_path, auth=AuthSettings(mtls_roles={"ci": "operator"}))
    with pytest.raises(ConfigError, match="POLYFLEET_AUTH_MTLS_ROLES needs POLYFLEET_API_TLS"):
        await orchestrator.run()
    assert not (tmp_path / "data").exists()
