"""Authentication of API callers: static tokens, OIDC JWTs (a real JWKS over HTTP), mTLS."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from orchestrator.auth.authn import Authenticator, AuthUnavailable, NoRole
from orchestrator.auth.caller import Caller
from orchestrator.errors import UnauthenticatedError
from polyfleet.config import AuthSettings, ConfigError
from polyfleet.roles import Role
from polyfleet.tokens import TokenEntry, dump_token_file, make_entry, new_token

AUDIENCE = "polyfleet-api"
NO_PEER: Mapping[str, list[bytes]] = {}


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --- static tokens ------------------------------------------------------------------------


def _write(path: Path, entries: list[TokenEntry], *, bump: int = 0) -> None:
    path.write_text(dump_token_file(entries))
    # A distinct mtime whatever the file system's resolution.
    stamp = time.time_ns() + bump * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def token_file(tmp_path: Path) -> tuple[Path, str]:
    token = new_token()
    path = tmp_path / "tokens.yaml"
    _write(path, [make_entry("ci-bot", Role.OPERATOR, token)])
    return path, token


async def test_a_static_token_authenticates_its_subject(token_file: tuple[Path, str]) -> None:
    path, token = token_file
    auth = Authenticator(AuthSettings(tokens_file=path))
    caller = await auth.authenticate(_bearer(token), NO_PEER)
    assert caller == Caller("ci-bot", Role.OPERATOR, "token")
    # The scheme is case-insensitive.
    assert await auth.authenticate({"authorization": f"bearer {token}"}, NO_PEER) == caller


async def test_a_wrong_token_is_refused_without_echo(token_file: tuple[Path, str]) -> None:
    path, _ = token_file
    auth = Authenticator(AuthSettings(tokens_file=path))
    wrong = new_token()
    with pytest.raises(UnauthenticatedError) as caught:
        await auth.authenticate(_bearer(wrong), NO_PEER)
    assert str(caught.value) == "invalid token"
    assert wrong not in str(caught.value)


async def test_missing_and_malformed_credentials(token_file: tuple[Path, str]) -> None:
    auth = Authenticator(AuthSettings(tokens_file=token_file[0]))
    with pytest.raises(UnauthenticatedError, match="missing credentials: send `authorization: Bea"):
        await auth.authenticate({}, NO_PEER)
    with pytest.raises(UnauthenticatedError, match="unsupported authorization"):
        await auth.authenticate({"authorization": f"Basic {token_file[1]}"}, NO_PEER)


async def test_a_rotated_file_is_read_without_restart(token_file: tuple[Path, str]) -> None:
    path, old = token_file
    auth = Authenticator(AuthSettings(tokens_file=path))
    assert (await auth.authenticate(_bearer(old), NO_PEER)).subject == "ci-bot"
    new = new_token()
    _write(path, [make_entry("ci-bot-2", Role.ADMIN, new)], bump=1)
    assert await auth.authenticate(_bearer(new), NO_PEER) == Caller("ci-bot-2", Role.ADMIN, "token")
    with pytest.raises(UnauthenticatedError, match="invalid token"):
        await auth.authenticate(_bearer(old), NO_PEER)


async def test_a_broken_rotated_file_keeps_the_old_entries(
    token_file: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    path, token = token_file
    auth = Authenticator(AuthSettings(tokens_file=path))
    leaked = new_token()
    path.write_text(f"tokens:\n  - subject: x\n    role: boss\n    sha256: {leaked}\n")
    stamp = time.time_ns() + 2_000_000_000
    os.utime(path, ns=(stamp, stamp))
    with caplog.at_level(logging.WARNING, logger="orchestrator.auth.authn"):
        assert (await auth.authenticate(_bearer(token), NO_PEER)).subject == "ci-bot"
        assert (await auth.authenticate(_bearer(token), NO_PEER)).subject == "ci-bot"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "warned once per change, not per call"
    assert str(path) in warnings[0] and "unknown role 'boss'" in warnings[0]
    assert leaked not in caplog.text


def test_an_unreadable_token_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"
    with pytest.raises(ConfigError, match=f"POLYFLEET_AUTH_TOKENS_FILE={missing}: cannot read"):
        Authenticator(AuthSettings(tokens_file=missing))
    broken = tmp_path / "broken.yaml"
    broken.write_text("tokens:\n  - subject: a\n")
    with pytest.raises(ConfigError, match=r"POLYFLEET_AUTH_TOKENS_FILE=.*tokens\[0\]"):
        Authenticator(AuthSettings(tokens_file=broken))


# --- OIDC against a real JWKS over HTTP -----------------------------------------------------


class IdentityProvider:
    """An OpenID provider on 127.0.0.1: a discovery document and a JWKS, counting requests."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.hits: dict[str, int] = {}
        self.issuer_override: str | None = None
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.hits[self.path] = provider.hits.get(self.path, 0) + 1
                body = provider.document(self.path)
                if body is None:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = self.url + "/realms/test"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def document(self, path: str) -> dict[str, Any] | None:
        if path == "/realms/test/.well-known/openid-configuration":
            return {
                "issuer": self.issuer_override or self.issuer,
                "jwks_uri": self.url + "/realms/test/certs",
            }
        if path == "/realms/test/certs":
            rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
            ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
            return {
                "keys": [
                    {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                    {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
                ]
            }
        return None

    def token(
        self, *, kid: str = "rsa-1", key: Any = None, algorithm: str = "RS256", **claims: Any
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "ada",
            "iat": now,
            "exp": now + 300,
            "roles": ["operator"],
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        signer = key or (self.rsa if algorithm.startswith("RS") else self.ec)
        return jwt.encode(payload, signer, algorithm=algorithm, headers={"kid": kid})

    def __enter__(self) -> IdentityProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider() as provider:
        yield provider


def _oidc(idp: IdentityProvider, **settings: Any) -> Authenticator:
    values: dict[str, Any] = {"oidc_issuer": idp.issuer, "oidc_audience": AUDIENCE}
    values.update(settings)
    return Authenticator(AuthSettings(**values))


async def test_a_valid_jwt_found_through_discovery(idp: IdentityProvider) -> None:
    auth = _oidc(idp)
    before = dict(idp.hits)
    for _ in range(3):
        caller = await auth.authenticate(_bearer(idp.token()), NO_PEER)
        assert caller == Caller("ada", Role.OPERATOR, "oidc")
    # Discovered once, keys fetched once: both are cached.
    discovery = "/realms/test/.well-known/openid-configuration"
    assert idp.hits[discovery] - before.get(discovery, 0) == 1
    assert idp.hits["/realms/test/certs"] - before.get("/realms/test/certs", 0) == 1
    ec_token = idp.token(kid="ec-1", algorithm="ES256", sub="bob", roles="admin")
    assert await auth.authenticate(_bearer(ec_token), NO_PEER) == Caller("bob", Role.ADMIN, "oidc")


async def test_an_explicit_jwks_url_skips_discovery(idp: IdentityProvider) -> None:
    auth = _oidc(idp, oidc_jwks_url=idp.url + "/realms/test/certs")
    before = idp.hits.get("/realms/test/.well-known/openid-configuration", 0)
    assert (await auth.authenticate(_bearer(idp.token()), NO_PEER)).subject == "ada"
    assert idp.hits.get("/realms/test/.well-known/openid-configuration", 0) == before


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "another-api"}, "invalid token: wrong audience"),
        ({"iss": "https://evil.example"}, "invalid token: wrong issuer"),
        ({"exp": int(time.time()) - 3600}, "token expired"),
        ({"nbf": int(time.time()) + 3600}, "invalid token: not valid yet"),
        ({"exp": None}, "invalid token: no 'exp' claim"),
        ({"sub": None}, "invalid token: no 'sub' claim"),
        ({"kid": "rotated-away"}, "invalid token: unknown signing key"),
    ],
)
async def test_invalid_jwts_are_refused_saying_why(
    idp: IdentityProvider, claims: dict[str, Any], reason: str
) -> None:
    token = idp.token(**claims)
    with pytest.raises(UnauthenticatedError) as caught:
        await _oidc(idp).authenticate(_bearer(token), NO_PEER)
    assert str(caught.value) == reason
    assert token not in str(caught.value)


async def test_a_bad_signature_is_refused(idp: IdentityProvider) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(UnauthenticatedError, match="invalid token: bad signature"):
        await _oidc(idp).authenticate(_bearer(idp.token(key=impostor)), NO_PEER)
    # HS256 is not an accepted algorithm (a JWKS's public data must never be an HMAC secret).
    now = int(time.time())
    forged = jwt.encode(
        {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "exp": now + 60, "roles": "admin"},
        "a shared secret of at least 32 bytes",
        algorithm="HS256",
        headers={"kid": "rsa-1"},
    )
    with pytest.raises(UnauthenticatedError, match="invalid token"):
        await _oidc(idp).authenticate(_bearer(forged), NO_PEER)


async def test_no_audience_configured_accepts_any(idp: IdentityProvider) -> None:
    auth = _oidc(idp, oidc_audience="")
    assert (await auth.authenticate(_bearer(idp.token(aud="other")), NO_PEER)).subject == "ada"


@pytest.mark.parametrize(
    ("settings", "claims", "role"),
    [
        ({}, {"roles": ["reader", "admin", "operator"]}, Role.ADMIN),
        ({}, {"roles": ["runner", "reader"]}, Role.READER),
        ({}, {"roles": "runner"}, Role.RUNNER),
        ({}, {"roles": ["unknown", "reader"]}, Role.READER),
        (
            {"oidc_role_map": "platform-admins=admin,devs=operator,fleet=runner"},
            {"roles": ["devs", "platform-admins"]},
            Role.ADMIN,
        ),
        ({"oidc_role_map": "fleet=runner,devs=operator"}, {"roles": ["fleet"]}, Role.RUNNER),
        (
            {"oidc_roles_claim": "realm_access.roles", "oidc_role_map": "devs=operator"},
            {"roles": None, "realm_access": {"roles": ["devs", "admin"]}},
            Role.OPERATOR,
        ),
    ],
)
async def test_role_mapping(
    idp: IdentityProvider, settings: dict[str, Any], claims: dict[str, Any], role: Role
) -> None:
    caller = await _oidc(idp, **settings).authenticate(_bearer(idp.token(**claims)), NO_PEER)
    assert caller.role is role


async def test_a_custom_subject_claim(idp: IdentityProvider) -> None:
    auth = _oidc(idp, oidc_subject_claim="preferred_username")
    token = idp.token(preferred_username="ada.lovelace")
    assert (await auth.authenticate(_bearer(token), NO_PEER)).subject == "ada.lovelace"


@pytest.mark.parametrize(
    ("settings", "claims"),
    [
        ({}, {"roles": ["superuser"]}),
        ({}, {"roles": None}),
        ({}, {"roles": {"not": "a list"}}),
        ({"oidc_role_map": "devs=operator"}, {"roles": ["admin"]}),
    ],
)
async def test_no_mapped_role_is_permission_denied(
    idp: IdentityProvider, settings: dict[str, Any], claims: dict[str, Any]
) -> None:
    with pytest.raises(NoRole, match="grants no polyfleet role"):
        await _oidc(idp, **settings).authenticate(_bearer(idp.token(**claims)), NO_PEER)


async def test_a_discovery_document_for_another_issuer_is_not_trusted(
    idp: IdentityProvider,
) -> None:
    idp.issuer_override = "https://evil.example"
    try:
        with pytest.raises(AuthUnavailable, match="identity provider misconfigured"):
            await _oidc(idp).authenticate(_bearer(idp.token()), NO_PEER)
    finally:
        idp.issuer_override = None


async def test_an_unreachable_provider_is_unavailable(idp: IdentityProvider) -> None:
    auth = _oidc(idp, oidc_jwks_url=idp.url + "/nowhere")
    with pytest.raises(AuthUnavailable, match="unreachable"):
        await auth.authenticate(_bearer(idp.token()), NO_PEER)


async def test_tokens_and_jwts_together(idp: IdentityProvider, tmp_path: Path) -> None:
    token = new_token()
    path = tmp_path / "tokens.yaml"
    _write(path, [make_entry("ci-bot", Role.READER, token)])
    auth = _oidc(idp, tokens_file=path)
    assert (await auth.authenticate(_bearer(token), NO_PEER)).via == "token"
    assert (await auth.authenticate(_bearer(idp.token()), NO_PEER)).via == "oidc"
    # Neither a known token nor shaped like a JWT: refused without asking the provider.
    with pytest.raises(UnauthenticatedError, match=r"^invalid token$"):
        await auth.authenticate(_bearer(new_token()), NO_PEER)


# --- mTLS -----------------------------------------------------------------------------------


def _peer(cn: str, *sans: str) -> dict[str, list[bytes]]:
    return {
        "transport_security_type": [b"ssl"],
        "x509_common_name": [cn.encode()],
        "x509_subject_alternative_name": [s.encode() for s in sans],
    }


async def test_a_client_certificate_maps_to_its_role() -> None:
    auth = Authenticator(AuthSettings(mtls_roles="runner-1=runner,ops.example.com=admin"))
    assert await auth.authenticate({}, _peer("runner-1")) == Caller("runner-1", Role.RUNNER, "mtls")
    by_san = await auth.authenticate({}, _peer("laptop", "ops.example.com"))
    assert by_san == Caller("ops.example.com", Role.ADMIN, "mtls")
    with pytest.raises(UnauthenticatedError, match="client certificate maps to no role"):
        await auth.authenticate({}, _peer("stranger"))
    # Without TLS there is no certificate to believe.
    with pytest.raises(UnauthenticatedError, match="missing credentials"):
        await auth.authenticate({}, {"x509_common_name": [b"runner-1"]})


async def test_a_bearer_wins_over_the_certificate(token_file: tuple[Path, str]) -> None:
    auth = Authenticator(AuthSettings(tokens_file=token_file[0], mtls_roles="runner-1=runner"))
    with pytest.raises(UnauthenticatedError, match="invalid token"):
        await auth.authenticate(_bearer(new_token()), _peer("runner-1"))
    caller = await auth.authenticate(_bearer(token_file[1]), _peer("runner-1"))
    assert caller.via == "token"
