"""Who is calling: a bearer token from the token file, an OIDC JWT, or a client certificate.

:class:`Authenticator` turns a call's metadata and its TLS peer into a :class:`Caller`, or
raises ``UnauthenticatedError`` (or :class:`NoRole`, :class:`AuthUnavailable`), whose message
is safe to send back: never a token, a token's hash or a JWT's content. In order:

1. ``authorization: Bearer <token>``: a static token when its SHA-256 is in
   ``POLYFLEET_AUTH_TOKENS_FILE`` (via ``token``); else, when OIDC is configured and the
   token is shaped like a JWT, a JWT signed by one of the issuer's keys, for the configured
   audience, not expired (via ``oidc``); else "invalid token". A bearer decides alone: a
   wrong one is refused even over mTLS.
2. No bearer: the client certificate's common name, or one of its DNS subject alternative
   names, mapped to a role by ``POLYFLEET_AUTH_MTLS_ROLES`` (via ``mtls``).
3. Nothing: "missing credentials".

The token file is re-read when it changes (its mtime, size or inode), so tokens rotate
without a restart; a broken new file keeps the entries read before and logs a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt

from orchestrator.auth.caller import Caller
from orchestrator.errors import PermissionDeniedError, UnauthenticatedError, UnavailableError
from polyfleet.config import AuthSettings, ConfigError, variable_name
from polyfleet.roles import Role, parse_role
from polyfleet.tokens import HASH_PREFIX, TokenEntry, TokenFileError, hash_token, parse_token_file

logger = logging.getLogger(__name__)

#: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
JWT_LEEWAY = timedelta(seconds=30)
#: How long fetched signing keys are kept before they are fetched again.
JWKS_LIFESPAN = timedelta(minutes=5)
#: An unknown ``kid`` refetches the keys (a rotation) at most this often, so tokens with
#: made-up key IDs cannot make every call fetch the JWKS.
JWKS_MIN_REFRESH = timedelta(seconds=30)
HTTP_TIMEOUT = 5.0
MISSING = (
    "missing credentials: send `authorization: Bearer <token>` (POLYFLEET_API_TOKEN for the "
    "CLI and the client) or a client certificate"
)
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# The public roles from lowest to highest.
_LADDER = (Role.READER, Role.OPERATOR, Role.ADMIN)


class NoRole(PermissionDeniedError):  # noqa: N818 - named for what it means
    """A valid credential that grants no polyfleet role: PERMISSION_DENIED."""


class AuthUnavailable(UnavailableError):  # noqa: N818 - named for what it means
    """The identity provider cannot be reached to check a JWT now: UNAVAILABLE (retry)."""


class _TokenTable:
    """The token file's entries by hash, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_hash: dict[str, TokenEntry] = {}
        self._seen: tuple[int, int, int] | None = None
        try:
            self._load(self._stat())
        except (OSError, TokenFileError) as exc:
            name = variable_name(AuthSettings, "tokens_file")
            raise ConfigError(f"{name}={path}: {_describe(exc)}") from None

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self, signature: tuple[int, int, int]) -> None:
        entries = parse_token_file(self.path.read_text(), str(self.path))
        self._by_hash = {entry.sha256: entry for entry in entries}
        self._seen = signature

    def changed(self) -> bool:
        """Whether the file looks changed since it was read (or cannot be stat'ed now).

        One ``stat``, a few microseconds: cheap enough for every call, on the event loop.
        """
        try:
            return self._stat() != self._seen
        except OSError:
            return True

    def refresh(self) -> None:
        """Re-read the file if it changed; keep the old entries if the new file is broken."""
        try:
            signature = self._stat()
            if signature == self._seen:
                return
            self._seen = signature  # warn once per change, not on every call
            self._load(signature)
            logger.info("re-read token file %s: %d tokens", self.path, len(self._by_hash))
        except (OSError, TokenFileError) as exc:
            logger.warning(
                "token file %s unusable, keeping the %d tokens read before: %s",
                self.path,
                len(self._by_hash),
                _describe(exc),
            )

    async def lookup(self, token: str) -> TokenEntry | None:
        """The entry of ``token``, or None.

        The file is re-read, in a thread, only when it changed: a hop to a thread on every
        call cost more CPU than the rest of the authentication. A dict lookup by the
        token's SHA-256 leaks through its timing at most how much of a hash matches, which
        tells nothing about any token.
        """
        if self.changed():
            await asyncio.to_thread(self.refresh)
        return self._by_hash.get(hash_token(token).removeprefix(HASH_PREFIX))


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"cannot read ({exc.strerror or exc})"
    return str(exc)


class _Oidc:
    """Verifies JWTs of one issuer against its published keys."""

    def __init__(self, settings: AuthSettings) -> None:
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.algorithms = list(settings.oidc_algorithms)
        self.roles_claim = settings.oidc_roles_claim
        self.subject_claim = settings.oidc_subject_claim
        self.role_map = dict(settings.oidc_role_map)
        self._jwks_url = settings.oidc_jwks_url
        self._client: jwt.PyJWKClient | None = None
        self._lock = asyncio.Lock()
        self._last_refresh = float("-inf")

    async def _keys(self) -> jwt.PyJWKClient:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                url = self._jwks_url or await self._discover()
                self._client = jwt.PyJWKClient(
                    url,
                    cache_keys=True,
                    cache_jwk_set=True,
                    lifespan=int(JWKS_LIFESPAN.total_seconds()),
                    timeout=int(HTTP_TIMEOUT),
                )
            return self._client

    async def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
                response = await http.get(url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("OIDC discovery at %s failed: %s", url, exc)
            raise AuthUnavailable(
                "cannot verify the token now: identity provider unreachable"
            ) from None
        if not isinstance(document, dict) or not isinstance(document.get("jwks_uri"), str):
            logger.warning("OIDC discovery document at %s has no jwks_uri", url)
            raise AuthUnavailable("cannot verify the token now: identity provider misconfigured")
        # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was
        # fetched for, or its keys are not the issuer's.
        if document.get("issuer") != self.issuer:
            logger.warning("OIDC discovery document at %s names another issuer", url)
            raise AuthUnavailable("cannot verify the token now: identity provider misconfigured")
        return str(document["jwks_uri"])

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise UnauthenticatedError("invalid token: malformed JWT") from None
        keys = await self._keys()
        try:
            found = await asyncio.to_thread(_find_key, keys, kid, False)
            if found is None and time.monotonic() - self._last_refresh >= (
                JWKS_MIN_REFRESH.total_seconds()
            ):
                # Perhaps the issuer rotated its keys: fetch them again, at most so often.
                self._last_refresh = time.monotonic()
                found = await asyncio.to_thread(_find_key, keys, kid, True)
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning("fetching the OIDC signing keys failed: %s", exc)
            raise AuthUnavailable(
                "cannot verify the token now: identity provider unreachable"
            ) from None
        except jwt.PyJWKClientError as exc:
            logger.warning("the OIDC signing keys are unusable: %s", exc)
            raise AuthUnavailable(
                "cannot verify the token now: identity provider misconfigured"
            ) from None
        if found is None:
            raise UnauthenticatedError("invalid token: unknown signing key")
        return found

    async def verify(self, token: str) -> Caller:
        key = await self._signing_key(token)
        options: jwt.types.Options = {
            "require": ["exp", "iss"],
            "verify_aud": bool(self.audience),
        }
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=self.algorithms,
                audience=self.audience or None,
                issuer=self.issuer,
                leeway=JWT_LEEWAY,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise UnauthenticatedError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise UnauthenticatedError("invalid token: not valid yet") from None
        except jwt.InvalidAudienceError:
            raise UnauthenticatedError("invalid token: wrong audience") from None
        except jwt.InvalidIssuerError:
            raise UnauthenticatedError("invalid token: wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise UnauthenticatedError("invalid token: bad signature") from None
        except jwt.InvalidAlgorithmError:
            raise UnauthenticatedError("invalid token: signature algorithm not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise UnauthenticatedError(f"invalid token: no {exc.claim!r} claim") from None
        except jwt.PyJWTError:  # also a key that does not fit the header's algorithm
            raise UnauthenticatedError("invalid token") from None
        subject = claims.get(self.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise UnauthenticatedError(f"invalid token: no {self.subject_claim!r} claim")
        role = self._role(claims)
        if role is None:
            raise NoRole(
                f"the token of {subject!r} grants no polyfleet role: its "
                f"{self.roles_claim!r} claim has no value mapped to a role"
            )
        return Caller(subject, role, "oidc")

    def _role(self, claims: Mapping[str, Any]) -> Role | None:
        value: Any = claims
        for part in self.roles_claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list):
            return None
        roles: set[Role] = set()
        for item in values:
            if not isinstance(item, str):
                continue
            if self.role_map:
                if item in self.role_map:
                    roles.add(Role(self.role_map[item]))
            else:
                try:
                    roles.add(parse_role(item))
                except ValueError:
                    continue
        return highest_role(roles)


def _find_key(keys: jwt.PyJWKClient, kid: object, refresh: bool) -> jwt.PyJWK | None:
    """The signing key with ID ``kid`` (blocking: it may fetch the JWKS)."""
    for key in keys.get_signing_keys(refresh=refresh):
        if key.key_id == kid:
            return key
    return None


def highest_role(roles: set[Role]) -> Role | None:
    """The role a caller holding ``roles`` gets.

    The highest public role; ``runner`` only when it is the only one, since a runner may call
    nothing but RunnerService and a person with a runner group too must keep their own role.
    """
    for role in reversed(_LADDER):
        if role in roles:
            return role
    return Role.RUNNER if Role.RUNNER in roles else None


def _first(peer: Mapping[str, Iterable[bytes]], key: str) -> list[str]:
    return [value.decode(errors="replace") for value in peer.get(key, ())]


class Authenticator:
    """Authenticates API callers as AuthSettings configures (see the module docs)."""

    def __init__(self, settings: AuthSettings) -> None:
        """Read the token file, if any.

        Raises:
            ConfigError: POLYFLEET_AUTH_TOKENS_FILE cannot be read or is malformed.

        """
        self._tokens = _TokenTable(settings.tokens_file) if settings.tokens_file else None
        self._oidc = _Oidc(settings) if settings.oidc_issuer else None
        self._mtls = dict(settings.mtls_roles)

    async def authenticate(
        self, metadata: Mapping[str, str], peer: Mapping[str, Iterable[bytes]]
    ) -> Caller:
        """The caller of one RPC.

        Args:
            metadata: The call's metadata, keys in lowercase.
            peer: The call's ``context.auth_context()``.

        Raises:
            UnauthenticatedError: No credential, or an invalid or expired one.
            NoRole: A valid JWT whose claims map to no role.
            AuthUnavailable: The identity provider cannot be reached to check a JWT.

        """
        header = metadata.get("authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise UnauthenticatedError(
                    "unsupported authorization: send `authorization: Bearer <token>`"
                )
            return await self._bearer(token)
        if self._mtls and _first(peer, "transport_security_type") == ["ssl"]:
            names = _first(peer, "x509_common_name") + _first(peer, "x509_subject_alternative_name")
            for name in names:
                role = self._mtls.get(name)
                if role is not None:
                    return Caller(name, role, "mtls")
            if names:
                raise UnauthenticatedError(
                    "the client certificate maps to no role (POLYFLEET_AUTH_MTLS_ROLES)"
                )
        raise UnauthenticatedError(MISSING)

    async def _bearer(self, token: str) -> Caller:
        if self._tokens is not None:
            entry = await self._tokens.lookup(token)
            if entry is not None:
                return Caller(entry.subject, entry.role, "token")
        if self._oidc is not None and _JWT_SHAPE.fullmatch(token):
            return await self._oidc.verify(token)
        raise UnauthenticatedError("invalid token")
