"""Credentials of a local dev fleet: a throwaway CA, a server certificate and role tokens.

``polyfleet dev --secure``, ``polyfleet demo`` and the test fleet run the API with TLS and
bearer tokens (docs/security.md) using what :meth:`DevCredentials.ensure` keeps in one
directory:

=================  ===========================================================  ======
``ca.pem``         self-signed CA (EC P-256); its key is never written           0644
``server.pem``     the API's certificate, issued by the CA for 127.0.0.1, ::1,   0644
                   localhost
``server.key``     its private key                                               0600
``tokens.yaml``    the hashes of the tokens (``POLYFLEET_AUTH_TOKENS_FILE``)     0600
``tokens.json``    the tokens themselves, one per role (dev only, see below)     0600
``<role>.token``   each role's token alone, for ``$(cat …)``                    0600
=================  ===========================================================  ======

For development on one machine only: the tokens are kept in clear text (mode 0600) so a
restarted dev fleet, and the shell that talks to it, keep working. A real deployment keeps
only the hashes (``polyfleet tokens create``) and never writes a token to disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from polyfleet.config import ApiSettings, AuthSettings, variable_name
from polyfleet.roles import Role
from polyfleet.tokens import dump_token_file, hash_token, make_entry, new_token, parse_token_file

__all__ = [
    "CERT_VALIDITY",
    "MIN_REMAINING",
    "DevCredentials",
    "issue_certificate",
    "make_ca",
    "private_pem",
]

#: How long freshly made certificates are valid.
CERT_VALIDITY = timedelta(days=90)
#: Certificates valid for less than this are made anew by :meth:`DevCredentials.ensure`.
MIN_REMAINING = timedelta(days=1)
#: The names the server certificate is valid for: the loopback interfaces only.
SERVER_NAMES = ("127.0.0.1", "::1", "localhost")

_CA = "ca.pem"
_SERVER_CERT = "server.pem"
_SERVER_KEY = "server.key"
_TOKENS_FILE = "tokens.yaml"
_TOKENS_JSON = "tokens.json"
_LOCK = ".lock"
_SECRET_MODE = 0o600
_PUBLIC_MODE = 0o644


def _subject(role: Role) -> str:
    return f"dev-{role.value}"


@dataclass(frozen=True)
class DevCredentials:
    """The files and tokens of a dev fleet's TLS and authentication.

    Attributes:
        directory: Where the files are (absolute).
        ca_cert: The self-signed CA (EC P-256), PEM: what clients trust.
        server_cert: Issued by the CA for 127.0.0.1, ::1 and localhost, PEM.
        server_key: Its private key, PEM (0600).
        tokens_file: The YAML file of the tokens' hashes (POLYFLEET_AUTH_TOKENS_FILE).
        tokens: One token per role; subjects ``dev-admin``, ``dev-operator``,
            ``dev-reader``, ``dev-runner``.

    """

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    tokens_file: Path
    # Never in a repr: a failing test prints its fixtures, and those land in CI logs.
    tokens: Mapping[Role, str] = field(repr=False)

    @classmethod
    def ensure(cls, directory: Path) -> DevCredentials:
        """The credentials in ``directory``: reused if complete and valid, else made anew.

        They are reused when every file is there, agrees with the others (the certificate
        was issued by the CA for its key, each token's hash is in the token file with its
        role) and both certificates are valid for at least another day; otherwise
        everything is made anew, so clients must pick up the new CA and tokens.

        Args:
            directory: Where the files live; created (0700) if missing.

        Returns:
            The credentials.

        Raises:
            OSError: The directory or a file cannot be written.

        """
        directory = directory.absolute()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(directory / _LOCK):
            found = _load(directory)
            if found is not None:
                return found
            return _create(directory)

    def token_path(self, role: Role) -> Path:
        """The file holding ``role``'s token alone (0600), for ``$(cat …)``."""
        return self.directory / f"{role.value}.token"

    def server_fields(self) -> dict[str, object]:
        """:class:`~polyfleet.config.ApiSettings` fields of the server's TLS."""
        return {"api_tls_cert": self.server_cert, "api_tls_key": self.server_key}

    def auth_fields(self) -> dict[str, object]:
        """:class:`~polyfleet.config.AuthSettings` fields: the token file."""
        return {"tokens_file": self.tokens_file}

    def client_fields(self, role: Role | None) -> dict[str, object]:
        """:class:`~polyfleet.config.ApiSettings` fields of a client: TLS, and a token.

        Args:
            role: Whose token the client sends; None for none (health checks).

        """
        fields: dict[str, object] = {"api_tls": True, "api_tls_root_cert": self.ca_cert}
        if role is not None:
            fields["api_token"] = SecretStr(self.tokens[role])
        return fields

    def server_env(self) -> dict[str, str]:
        """The orchestrator's environment: TLS certificate and key, and the token file."""
        return {
            variable_name(ApiSettings, "api_tls_cert"): str(self.server_cert),
            variable_name(ApiSettings, "api_tls_key"): str(self.server_key),
            variable_name(AuthSettings, "tokens_file"): str(self.tokens_file),
        }

    def client_env(self, role: Role | None) -> dict[str, str]:
        """A client's environment: TLS with the dev CA and, given a role, its token.

        Args:
            role: Whose token the client sends; None for none.

        """
        env = {
            variable_name(ApiSettings, "api_tls"): "true",
            variable_name(ApiSettings, "api_tls_root_cert"): str(self.ca_cert),
        }
        if role is not None:
            env[variable_name(ApiSettings, "api_token")] = self.tokens[role]
        return env


def _paths(directory: Path, tokens: Mapping[Role, str]) -> DevCredentials:
    return DevCredentials(
        directory=directory,
        ca_cert=directory / _CA,
        server_cert=directory / _SERVER_CERT,
        server_key=directory / _SERVER_KEY,
        tokens_file=directory / _TOKENS_FILE,
        tokens=dict(tokens),
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: two processes never make the files at once."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _SECRET_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _load(directory: Path) -> DevCredentials | None:
    """The credentials in ``directory`` if complete, consistent and valid long enough."""
    try:
        data = json.loads((directory / _TOKENS_JSON).read_text(encoding="utf-8"))
        tokens = {role: data[role.value] for role in Role}
        if not all(isinstance(token, str) and token for token in tokens.values()):
            return None
        found = _paths(directory, tokens)
        ca = x509.load_pem_x509_certificate(found.ca_cert.read_bytes())
        cert = x509.load_pem_x509_certificate(found.server_cert.read_bytes())
        key = serialization.load_pem_private_key(found.server_key.read_bytes(), password=None)
        entries = parse_token_file(found.tokens_file.read_text(encoding="utf-8"), _TOKENS_FILE)
        on_disk = {role: found.token_path(role).read_text(encoding="utf-8") for role in Role}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    usable_until = datetime.now(UTC) + MIN_REMAINING
    if min(ca.not_valid_after_utc, cert.not_valid_after_utc) < usable_until:
        return None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return None
    if key.public_key() != cert.public_key():
        return None
    hashed = {(entry.role, entry.sha256) for entry in entries}
    for role, token in tokens.items():
        if (role, hash_token(token).split(":", 1)[1]) not in hashed or on_disk[role] != token:
            return None
    return found


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


Key = ec.EllipticCurvePrivateKey


def make_ca(common_name: str, start: datetime, end: datetime) -> tuple[Key, x509.Certificate]:
    """A self-signed CA (EC P-256) valid from ``start`` to ``end``: its key and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def issue_certificate(
    ca: tuple[Key, x509.Certificate],
    common_name: str,
    *,
    server: bool,
    start: datetime,
    end: datetime,
    names: tuple[str, ...] = (),
) -> tuple[Key, x509.Certificate]:
    """A leaf certificate signed by ``ca``: a server's (valid for ``names``) or a client's."""
    ca_key, ca_certificate = ca
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if names:
        alternatives = [_general_name(name) for name in names]
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), False)
    return key, builder.sign(ca_key, hashes.SHA256())


def private_pem(key: Key) -> bytes:
    """A private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _create(directory: Path) -> DevCredentials:
    """Make a new CA, server certificate and key, and one token per role, in ``directory``."""
    now = datetime.now(UTC)
    # Valid from a little earlier: a clock a few seconds behind must not reject it.
    start, end = now - timedelta(minutes=5), now + CERT_VALIDITY
    ca = make_ca("polyfleet dev CA", start, end)
    server_key, server = issue_certificate(
        ca, "localhost", server=True, start=start, end=end, names=SERVER_NAMES
    )
    tokens = {role: new_token() for role in Role}
    created = _paths(directory, tokens)
    pem = serialization.Encoding.PEM
    _write(created.ca_cert, ca[1].public_bytes(pem), _PUBLIC_MODE)
    _write(created.server_cert, server.public_bytes(pem), _PUBLIC_MODE)
    _write(created.server_key, private_pem(server_key), _SECRET_MODE)
    entries = [make_entry(_subject(role), role, token) for role, token in tokens.items()]
    _write(created.tokens_file, dump_token_file(entries).encode(), _SECRET_MODE)
    # Dev only: the tokens themselves, so a restarted fleet and its shell keep working.
    text = json.dumps({role.value: token for role, token in tokens.items()}, indent=2)
    _write(directory / _TOKENS_JSON, (text + "\n").encode(), _SECRET_MODE)
    for role, token in tokens.items():
        _write(created.token_path(role), token.encode(), _SECRET_MODE)
    return created


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` at ``mode``; never readable by others on the way."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
