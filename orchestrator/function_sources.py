"""Catalog and URL functions of workflow documents, fetched when a workflow is applied.

A document's `call: name:version@catalog` and `call: https://.../function.yaml` name task
definitions kept elsewhere (:mod:`polyfleet.dsl.catalogs` turns a reference into the URL of
its definition). :class:`FunctionSources` fetches each one once per apply, only from the
URL prefixes ``POLYFLEET_DSL_FUNCTION_SOURCES`` allows, within a timeout and a size limit;
the workflow is stored with what was fetched (``Workflow.resolved_functions``), so runners
run exactly that and never fetch.

Errors: a reference outside the allowed prefixes, a definition that is missing (any 4xx)
or is not a task definition → INVALID_ARGUMENT naming the JSON pointer of the call; a
source that cannot be reached, times out or answers 5xx → UNAVAILABLE naming the URL
(applying again may succeed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from orchestrator.errors import InvalidArgumentError, UnavailableError
from polyfleet.dsl import InvalidDocumentError, load_document
from polyfleet.dsl.catalogs import FunctionReferenceError, allowed, function_url
from polyfleet.dsl.validation import function_references

logger = logging.getLogger(__name__)

SETTING = "POLYFLEET_DSL_FUNCTION_SOURCES"
_MAX_REDIRECTS = 3


class FunctionSources:
    """Fetches the definitions of catalog and URL functions from allowed URL prefixes.

    Args:
        prefixes: the allowed URL prefixes (``POLYFLEET_DSL_FUNCTION_SOURCES``).
        timeout: seconds one fetch may take, connecting included.
        max_bytes: largest definition accepted.
        transport: an httpx transport (tests); None: the network.
    """

    def __init__(
        self,
        prefixes: Sequence[str],
        *,
        timeout: float = 10.0,
        max_bytes: int = 256 * 1024,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.prefixes = list(prefixes)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._transport = transport

    async def resolve(self, document: Mapping[str, Any], field: str) -> dict[str, str]:
        """The definitions of every catalog and URL function ``document`` calls.

        Args:
            document: a parsed document without problems.
            field: the document's field in the request, e.g. ``workflow.document``.

        Returns:
            Each reference mapped to the JSON of its definition ({} when it calls none).

        Raises:
            InvalidArgumentError: naming ``field`` and the pointer of the call.
            UnavailableError: a source could not be reached, naming its URL.
        """
        references = function_references(document)
        if not references:
            return {}
        # Every URL is checked before anything is fetched.
        urls: dict[str, tuple[str, str]] = {}
        for reference, pointer in references.items():
            where = f"{field}{pointer}"
            try:
                url = function_url(document, reference)
            except FunctionReferenceError as exc:
                raise InvalidArgumentError(where, str(exc)) from None
            self._check_allowed(url, where)
            urls[reference] = (url, where)
        resolved: dict[str, str] = {}
        async with httpx.AsyncClient(
            timeout=self.timeout, transport=self._transport, follow_redirects=False
        ) as http:
            for reference, (url, where) in urls.items():
                definition = await self._fetch(http, url, where)
                logger.info("resolved function %s from %s", reference, url)
                resolved[reference] = json.dumps(definition, separators=(",", ":"))
        return resolved

    def _check_allowed(self, url: str, where: str) -> None:
        if not allowed(url, self.prefixes):
            sources = ", ".join(self.prefixes) or "none"
            raise InvalidArgumentError(
                where,
                f"the function definition {url} is not under an allowed function source "
                f"({SETTING}: {sources})",
            )

    async def _fetch(self, http: httpx.AsyncClient, url: str, where: str) -> dict[str, Any]:
        target = url
        for _ in range(_MAX_REDIRECTS + 1):
            self._check_allowed(target, where)
            try:
                body, response = await self._get(http, target)
            except _TooLargeError:
                raise InvalidArgumentError(
                    where,
                    f"the function definition {target} is larger than {self.max_bytes} bytes "
                    "(POLYFLEET_DSL_FUNCTION_MAX_BYTES)",
                ) from None
            except httpx.TimeoutException:
                raise UnavailableError(
                    f"the function definition {target} (for {where}) did not arrive within "
                    f"{self.timeout:g}s (POLYFLEET_DSL_FUNCTION_TIMEOUT); apply again later"
                ) from None
            except httpx.HTTPError as exc:
                raise UnavailableError(
                    f"cannot fetch the function definition {target} (for {where}): "
                    f"{type(exc).__name__}; apply again later"
                ) from None
            if response.is_redirect and "location" in response.headers:
                target = str(response.url.join(response.headers["location"]))
                continue
            if response.status_code >= 500:
                raise UnavailableError(
                    f"fetching the function definition {target} (for {where}) answered "
                    f"{response.status_code}; apply again later"
                )
            if response.status_code != 200:
                what = "not found" if response.status_code in (404, 410) else "not readable"
                raise InvalidArgumentError(
                    where,
                    f"the function definition {target} is {what} (HTTP {response.status_code})",
                )
            return _parse(body, target, where)
        raise InvalidArgumentError(where, f"the function definition {url} redirects too often")

    async def _get(self, http: httpx.AsyncClient, url: str) -> tuple[bytes, httpx.Response]:
        async with http.stream("GET", url) as response:
            chunks: list[bytes] = []
            size = 0
            if response.status_code == 200:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise _TooLargeError
                    chunks.append(chunk)
            return b"".join(chunks), response


class _TooLargeError(Exception):
    pass


def _parse(body: bytes, url: str, where: str) -> dict[str, Any]:
    try:
        return load_document(body.decode("utf-8"))
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except InvalidDocumentError as err:
        problem = f"is not a task definition ({err.problems[0].message})"
    raise InvalidArgumentError(where, f"the function definition {url} {problem}")
