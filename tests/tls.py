"""Test certificates (polyfleet.dev_credentials makes them): CAs, a server and clients, as PEM."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from polyfleet.dev_credentials import SERVER_NAMES, issue_certificate, make_ca, private_pem


@dataclass(frozen=True)
class Pair:
    """A PEM certificate and its key, as files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority:
    """A test CA that issues certificates."""

    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert: Path

    @classmethod
    def create(cls, directory: Path, name: str) -> Authority:
        """A self-signed CA, its certificate written to ``directory/<name>.pem``."""
        start, end = _validity()
        key, certificate = make_ca(name, start, end)
        path = directory / f"{name}.pem"
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(name, key, certificate, path)

    def issue(self, directory: Path, name: str, *, server: bool) -> Pair:
        """A certificate signed by this CA: for 127.0.0.1, ::1 and localhost if ``server``."""
        start, end = _validity()
        key, certificate = issue_certificate(
            (self.key, self.certificate),
            name,
            server=server,
            start=start,
            end=end,
            names=SERVER_NAMES if server else (),
        )
        pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
        pair.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(private_pem(key))
        return pair


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)


@dataclass(frozen=True)
class TlsFiles:
    """A CA, a server certificate, a client certificate from it and one from another CA."""

    ca: Authority
    server: Pair
    client: Pair
    other_ca: Authority
    stranger: Pair

    @classmethod
    def create(cls, directory: Path) -> TlsFiles:
        """Write every file into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        ca = Authority.create(directory, "test-ca")
        other = Authority.create(directory, "other-ca")
        return cls(
            ca=ca,
            server=ca.issue(directory, "server", server=True),
            client=ca.issue(directory, "client", server=False),
            other_ca=other,
            stranger=other.issue(directory, "stranger", server=False),
        )

    def server_settings(self, *, mtls: bool) -> dict[str, object]:
        """ApiSettings fields of a TLS (``mtls``: and client-certificate) server."""
        fields: dict[str, object] = {
            "api_tls_cert": self.server.cert,
            "api_tls_key": self.server.key,
        }
        if mtls:
            fields["api_tls_client_ca"] = self.ca.cert
        return fields

    def client_settings(self, client: Pair | None = None) -> dict[str, object]:
        """ApiSettings fields of a TLS client trusting the CA, presenting ``client``."""
        fields: dict[str, object] = {"api_tls": True, "api_tls_root_cert": self.ca.cert}
        if client is not None:
            fields["api_tls_client_cert"] = client.cert
            fields["api_tls_client_key"] = client.key
        return fields
