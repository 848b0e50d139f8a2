"""DevCredentials: the dev fleet's CA, server certificate and role tokens."""

from __future__ import annotations

import ipaddress
import json
import stat
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health,
    health_pb2,
    health_pb2_grpc,
)
from pydantic import SecretStr

from polyfleet import dev_credentials
from polyfleet.channel import create_sync_channel
from polyfleet.config import ApiSettings, AuthSettings
from polyfleet.dev_credentials import DevCredentials
from polyfleet.roles import Role
from polyfleet.tokens import dump_token_file, hash_token, parse_token_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_server_certificate_is_issued_by_the_ca_for_loopback(tmp_path: Path) -> None:
    creds = DevCredentials.ensure(tmp_path / "creds")

    ca = x509.load_pem_x509_certificate(creds.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(creds.server_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=30)


def test_tls_handshake_with_the_ca_succeeds_for_127_0_0_1(tmp_path: Path) -> None:
    creds = DevCredentials.ensure(tmp_path / "creds")
    server = grpc.server(futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    key, chain = creds.server_key.read_bytes(), creds.server_cert.read_bytes()
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, chain)]))
    server.start()
    try:
        settings = ApiSettings(**creds.client_fields(None))
        with create_sync_channel(f"127.0.0.1:{port}", settings) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=10
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(None)


def test_each_role_has_a_token_whose_hash_is_in_the_file_with_its_role(tmp_path: Path) -> None:
    creds = DevCredentials.ensure(tmp_path / "creds")

    assert set(creds.tokens) == set(Role)
    entries = parse_token_file(creds.tokens_file.read_text(), str(creds.tokens_file))
    by_hash = {entry.sha256: entry for entry in entries}
    for role, token in creds.tokens.items():
        entry = by_hash[hash_token(token).removeprefix("sha256:")]
        assert entry.role is role
        assert entry.subject == f"dev-{role.value}"
        assert creds.token_path(role).read_text() == token
    assert len(set(creds.tokens.values())) == len(Role)
    # Only hashes in the token file.
    assert not any(token in creds.tokens_file.read_text() for token in creds.tokens.values())


def test_secrets_are_0600_and_certificates_readable(tmp_path: Path) -> None:
    creds = DevCredentials.ensure(tmp_path / "creds")

    secrets = [creds.server_key, creds.tokens_file, creds.directory / "tokens.json"]
    for path in [*secrets, *(creds.token_path(role) for role in Role)]:
        assert mode(path) == 0o600, path
    assert mode(creds.ca_cert) == 0o644
    assert mode(creds.server_cert) == 0o644
    assert mode(creds.directory) == 0o700
    # The CA's key is never written: nothing else can be signed with it.
    assert not any(b"PRIVATE KEY" in p.read_bytes() for p in [creds.ca_cert, creds.server_cert])
    stored = json.loads((creds.directory / "tokens.json").read_text())
    assert stored == {role.value: token for role, token in creds.tokens.items()}


def test_ensure_reuses_a_complete_valid_set(tmp_path: Path) -> None:
    first = DevCredentials.ensure(tmp_path / "creds")
    ca = first.ca_cert.read_bytes()

    again = DevCredentials.ensure(tmp_path / "creds")

    assert again == first
    assert again.ca_cert.read_bytes() == ca


@pytest.mark.parametrize(
    "damage",
    ["server.key", "tokens.yaml", "tokens.json", "admin.token", "ca.pem", "server.pem"],
)
def test_ensure_remakes_everything_when_a_file_is_missing(tmp_path: Path, damage: str) -> None:
    first = DevCredentials.ensure(tmp_path / "creds")
    (first.directory / damage).unlink()

    again = DevCredentials.ensure(tmp_path / "creds")

    assert again.tokens != first.tokens
    assert again.ca_cert.read_bytes() != b""
    x509.load_pem_x509_certificate(again.server_cert.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(again.ca_cert.read_bytes())
    )


def test_ensure_remakes_a_token_file_that_lost_a_role(tmp_path: Path) -> None:
    first = DevCredentials.ensure(tmp_path / "creds")
    kept = [e for e in parse_token_file(first.tokens_file.read_text(), "f") if e.role != "admin"]
    first.tokens_file.write_text(dump_token_file(kept))

    assert DevCredentials.ensure(tmp_path / "creds").tokens != first.tokens


def test_ensure_remakes_certificates_expiring_within_a_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev_credentials, "CERT_VALIDITY", timedelta(hours=12))
    first = DevCredentials.ensure(tmp_path / "creds")
    monkeypatch.setattr(dev_credentials, "CERT_VALIDITY", timedelta(days=90))

    again = DevCredentials.ensure(tmp_path / "creds")

    assert again.tokens != first.tokens
    cert = x509.load_pem_x509_certificate(again.server_cert.read_bytes())
    assert cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1)
    # A set valid for long enough is kept.
    assert DevCredentials.ensure(tmp_path / "creds") == again


def test_ensure_remakes_a_certificate_from_another_ca(tmp_path: Path) -> None:
    first = DevCredentials.ensure(tmp_path / "creds")
    other = DevCredentials.ensure(tmp_path / "other")
    first.ca_cert.write_bytes(other.ca_cert.read_bytes())

    again = DevCredentials.ensure(tmp_path / "creds")

    assert again.tokens != first.tokens


def test_settings_fields_and_environment(tmp_path: Path) -> None:
    creds = DevCredentials.ensure(tmp_path / "creds")

    server = ApiSettings(**creds.server_fields())
    assert server.server_tls
    assert server.api_tls_key == creds.server_key
    assert AuthSettings(**creds.auth_fields()).enabled
    client = ApiSettings(**creds.client_fields(Role.OPERATOR))
    assert client.api_tls and client.api_tls_root_cert == creds.ca_cert
    assert isinstance(client.api_token, SecretStr)
    assert client.api_token.get_secret_value() == creds.tokens[Role.OPERATOR]
    assert "api_token" not in creds.client_fields(None)
    assert creds.server_env() == {
        "POLYFLEET_API_TLS_CERT": str(creds.server_cert),
        "POLYFLEET_API_TLS_KEY": str(creds.server_key),
        "POLYFLEET_AUTH_TOKENS_FILE": str(creds.tokens_file),
    }
    assert creds.client_env(Role.RUNNER) == {
        "POLYFLEET_API_TLS": "true",
        "POLYFLEET_API_TLS_ROOT_CERT": str(creds.ca_cert),
        "POLYFLEET_API_TOKEN": creds.tokens[Role.RUNNER],
    }
    assert "POLYFLEET_API_TOKEN" not in creds.client_env(None)
    assert creds.directory.is_absolute()
