"""Catalog functions and functions by URL: references and the URLs of their definitions.

A `call:` names an external function in one of two ways (DSL 1.0, "Catalogs" and "Custom
functions"):

- ``name:version@catalog`` — the function ``name`` at ``version`` in a catalog declared in
  ``use.catalogs`` (or ``default``: the specification's official catalog, unless the
  document declares its own ``default``). Its definition is
  ``<catalog endpoint>/functions/<name>/<version>/function.yaml``;
- an http(s) URL of a ``function.yaml`` (or of the directory holding one).

GitHub and GitLab page URLs (``github.com/<owner>/<repo>/tree/<ref>/...``) become the raw
content URLs, as the specification asks. Nothing here touches the network: the
orchestrator fetches the definitions when a workflow is applied
(``orchestrator/function_sources.py``) and runners receive what it resolved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: The specification's official catalog: the ``default`` catalog of this runtime.
OFFICIAL_CATALOG = "https://github.com/serverlessworkflow/catalog"
DEFAULT_CATALOG = "default"

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]*$")
_CATALOG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DEFINITION_FILES = (".yaml", ".yml", ".json")


class FunctionReferenceError(ValueError):
    """A `call:` reference, a catalog or the URL it leads to is malformed or unknown."""


@dataclass(frozen=True)
class CatalogReference:
    """``name:version@catalog``."""

    name: str
    version: str
    catalog: str


def is_external(call: str) -> bool:
    """Whether a `call:` names a catalog function or a function by URL."""
    return "://" in call or "@" in call


def parse_reference(call: str) -> CatalogReference | str:
    """The catalog reference, or the URL, a `call:` names.

    Raises:
        FunctionReferenceError: neither an http(s) URL nor ``name:version@catalog``.
    """
    if "://" in call:
        check_url(call)
        return call
    head, _, catalog = call.partition("@")
    name, colon, version = head.partition(":")
    if not colon or not _NAME.match(name) or not _VERSION.match(version):
        raise FunctionReferenceError(
            f"'{call}' is not a catalog function reference: expected name:version@catalog "
            "(name in lowercase letters, digits and '-'), e.g. log:1.0.0@default"
        )
    if not _CATALOG.match(catalog):
        raise FunctionReferenceError(f"'{call}': the catalog name '{catalog}' is not valid")
    return CatalogReference(name, version, catalog)


def check_url(url: str) -> None:
    """An absolute http(s) URL without credentials or `..` segments.

    Raises:
        FunctionReferenceError: saying what is wrong.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FunctionReferenceError(f"'{url}' is not an absolute http(s) URL")
    if parts.username or parts.password:
        raise FunctionReferenceError(f"'{url}': a URL may not carry credentials")
    if ".." in parts.path.split("/") or parts.query or parts.fragment:
        raise FunctionReferenceError(
            f"'{url}': a function URL has no '..' segments, query or fragment"
        )


def catalog_endpoint(doc: Mapping[str, Any], catalog: str) -> str:
    """The endpoint URI of a catalog of the document (``default``: the official one).

    Raises:
        FunctionReferenceError: the catalog is not declared in ``use.catalogs``.
    """
    use = doc.get("use")
    catalogs = use.get("catalogs") if isinstance(use, Mapping) else None
    declared = catalogs.get(catalog) if isinstance(catalogs, Mapping) else None
    if declared is None:
        if catalog == DEFAULT_CATALOG:
            return OFFICIAL_CATALOG
        raise FunctionReferenceError(f"unknown catalog '{catalog}' (not defined in use.catalogs)")
    endpoint = declared.get("endpoint") if isinstance(declared, Mapping) else None
    uri = endpoint.get("uri") if isinstance(endpoint, Mapping) else endpoint
    if not isinstance(uri, str):
        raise FunctionReferenceError(f"catalog '{catalog}' has no endpoint URI")
    return uri


def function_url(doc: Mapping[str, Any], call: str) -> str:
    """The URL the definition of an external function is read from.

    Raises:
        FunctionReferenceError: the reference, its catalog or the resulting URL is not valid.
    """
    reference = parse_reference(call)
    if isinstance(reference, CatalogReference):
        root = catalog_endpoint(doc, reference.catalog).rstrip("/")
        url = f"{root}/functions/{reference.name}/{reference.version}/function.yaml"
    else:
        url = reference
        if not url.rstrip("/").lower().endswith(_DEFINITION_FILES):
            url = url.rstrip("/") + "/function.yaml"
    url = raw_url(url)
    check_url(url)
    return url


def raw_url(url: str) -> str:
    """A GitHub or GitLab page URL as the URL of the raw file; any other URL as it is.

    ``https://github.com/o/r/tree/<ref>/p`` (or ``blob``) → ``https://raw.githubusercontent.com/o/r/<ref>/p``;
    ``https://github.com/o/r/p`` → the ``main`` branch; ``https://gitlab.com/g/p/-/tree/<ref>/x``
    → ``https://gitlab.com/g/p/-/raw/<ref>/x``.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    segments = [s for s in parts.path.split("/") if s]
    if host in ("github.com", "www.github.com") and len(segments) >= 2:
        owner, repo, rest = segments[0], segments[1], segments[2:]
        if rest[:1] in (["tree"], ["blob"]) and len(rest) >= 2:
            rest = rest[1:]
        else:
            rest = ["main", *rest]
        return "https://raw.githubusercontent.com/" + "/".join([owner, repo, *rest])
    if host == "gitlab.com" and "-" in segments:
        at = segments.index("-")
        if segments[at + 1 : at + 2] in (["tree"], ["blob"]):
            segments[at + 1] = "raw"
            return f"https://gitlab.com/{'/'.join(segments)}"
    return url


def allowed(url: str, sources: tuple[str, ...] | list[str]) -> bool:
    """Whether ``url`` lies under one of the allowed URL prefixes (``file://`` never)."""
    if urlsplit(url).scheme not in ("http", "https"):
        return False
    return any(url.startswith(prefix) for prefix in sources)
