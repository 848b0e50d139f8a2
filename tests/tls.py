"""Test certificates made with `cryptography`: a CA, a server and clients, as PEM files."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


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
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        path = directory / f"{name}.pem"
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(name, key, certificate, path)

    def issue(self, directory: Path, name: str, *, server: bool) -> Pair:
        """A certificate signed by this CA: for 127.0.0.1, ::1 and localhost if ``server``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
        pair.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return pair


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
