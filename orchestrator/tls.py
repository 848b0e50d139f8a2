"""The API server's TLS credentials, reloaded from their files when those change."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

import grpc

from polyfleet.channel import read_pem
from polyfleet.config import ApiSettings, ConfigError

logger = logging.getLogger(__name__)


class CertificateFiles:
    """The server's certificate, key and optional client CA, re-read when a file changes.

    gRPC asks :meth:`fetch` before each TLS handshake; it answers None (keep the current
    configuration) unless a file's modification time changed, so rotating a certificate
    is replacing its files: new connections use the new one, without a restart.

    Args:
        settings: API settings with ``api_tls_cert`` and ``api_tls_key`` set.

    Raises:
        ConfigError: A file cannot be read at start-up; the message names its variable.

    """

    def __init__(self, settings: ApiSettings) -> None:
        if settings.api_tls_cert is None or settings.api_tls_key is None:
            raise ConfigError("POLYFLEET_API_TLS_CERT and POLYFLEET_API_TLS_KEY are not set")
        self._files: dict[str, Path] = {
            "POLYFLEET_API_TLS_CERT": settings.api_tls_cert,
            "POLYFLEET_API_TLS_KEY": settings.api_tls_key,
        }
        if settings.api_tls_client_ca is not None:
            self._files["POLYFLEET_API_TLS_CLIENT_CA"] = settings.api_tls_client_ca
        self.require_client_cert = settings.api_tls_client_ca is not None
        self._lock = threading.Lock()
        self._stamps = self._mtimes()
        self.initial = self._load()

    def _mtimes(self) -> dict[str, float]:
        stamps = {}
        for variable, path in self._files.items():
            try:
                stamps[variable] = path.stat().st_mtime
            except OSError:
                stamps[variable] = -1.0
        return stamps

    def _load(self) -> grpc.ServerCertificateConfiguration:
        pem = {variable: read_pem(variable, path) for variable, path in self._files.items()}
        return grpc.ssl_server_certificate_configuration(
            [(pem["POLYFLEET_API_TLS_KEY"], pem["POLYFLEET_API_TLS_CERT"])],
            root_certificates=pem.get("POLYFLEET_API_TLS_CLIENT_CA"),
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration if a file changed since the last load, else None."""
        with self._lock:
            stamps = self._mtimes()
            if stamps == self._stamps:
                return None
            try:
                loaded = self._load()
            except ConfigError as exc:
                # Half-written during a rotation, or removed: keep serving the old one.
                logger.warning("keeping the current TLS certificate: %s", exc)
                return None
            self._stamps = stamps
            logger.info("reloaded the API's TLS certificate files")
            return loaded

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that call :meth:`fetch` before each handshake."""
        # gRPC takes None from the fetcher as "unchanged"; its type stubs do not say so.
        fetch = cast("Callable[[], grpc.ServerCertificateConfiguration]", self.fetch)
        return grpc.dynamic_ssl_server_credentials(
            self.initial, fetch, require_client_authentication=self.require_client_cert
        )
