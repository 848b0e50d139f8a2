"""The one place every call is authenticated and authorized, before any servicer runs.

For each call: find the method's rule (policy.py; a method without one is refused),
authenticate the caller (authn.py) unless the method is public, check the role, bind a
runner's call to the execution of its running activity (binding.py), count it against
the caller's limits (limits.py), then serve it inside ``calling_as(caller)`` so services
record who did what. Servicers never check permissions themselves.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.message import Message

from orchestrator.auth.authn import Authenticator
from orchestrator.auth.binding import RunnerBinding
from orchestrator.auth.caller import ANONYMOUS, Caller, calling_as
from orchestrator.auth.limits import CreateRate, WatchLimit
from orchestrator.auth.policy import Access, Limit, Rule, is_runner_method, rule_for
from orchestrator.errors import PermissionDeniedError, UnauthenticatedError
from orchestrator.servicers.errors import abort_with
from orchestrator.servicers.wrapping import Context, WrappingInterceptor, wrap_handler
from polyfleet.roles import Role, grants

logger = logging.getLogger(__name__)


def _metadata(context: Context) -> dict[str, str]:
    # Binary (-bin) entries are not credentials or claims; only text ones are read.
    return {
        str(key).lower(): value
        for key, value in context.invocation_metadata() or ()
        if isinstance(value, str)
    }


class AuthInterceptor(WrappingInterceptor):
    """Authenticates, authorizes and rate-limits every call of the API.

    Args:
        authenticator: Verifies credentials; None when authentication is off (every
            caller is ``anonymous`` and may call anything but is still rate-limited).
        binding: Checks that a runner acts only on its running activity's execution;
            applied to callers with the ``runner`` role.
        watches: The per-caller limit of concurrent Watch streams.
        creates: The per-caller rate of Creates.

    """

    def __init__(
        self,
        authenticator: Authenticator | None,
        binding: RunnerBinding | None,
        watches: WatchLimit,
        creates: CreateRate,
    ) -> None:
        super().__init__()
        self._authenticator = authenticator
        self._binding = binding
        self._watches = watches
        self._creates = creates

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap the method's handler so the checks run before it."""
        rule = rule_for(method)
        if handler.request_streaming and not handler.response_streaming:
            # No client-streaming methods exist; refuse rather than serve one unchecked.
            return _refusal(method)
        watched = rule is not None and rule.limit is Limit.WATCH

        @contextlib.asynccontextmanager
        async def admitted(request: Any, context: Context) -> AsyncIterator[None]:
            # Server reflection streams its requests: ``request`` is None, nothing to bind.
            caller = await self._admit(method, rule, context, request)
            try:
                with calling_as(caller):
                    yield
            finally:
                if watched:
                    self._watches.release(caller.subject)

        return wrap_handler(handler, admitted)

    async def _admit(
        self, method: str, rule: Rule | None, context: Context, request: Any
    ) -> Caller:
        try:
            return await self._authorize(method, rule, context, request)
        except UnauthenticatedError as err:
            # Who knocks without a valid credential is worth a line; never the credential.
            logger.info("refused %s from %s: %s", method, context.peer(), err)
            await abort_with(context, err)
        except Exception as err:  # noqa: BLE001 - every refusal leaves as a status
            await abort_with(context, err)

    async def _authorize(
        self, method: str, rule: Rule | None, context: Context, request: Any
    ) -> Caller:
        if rule is None:
            raise PermissionDeniedError(f"{method} is not an API method anyone may call")
        if rule.needs is Access.PUBLIC:
            return ANONYMOUS
        metadata = _metadata(context)
        if self._authenticator is None:
            caller = ANONYMOUS
        else:
            caller = await self._authenticator.authenticate(metadata, context.auth_context())
        name = method.rsplit("/", 1)[-1]
        if caller.role is not None and isinstance(rule.needs, Role):
            if not grants(caller.role, rule.needs):
                logger.info("refused %s to %s: it needs role %s", name, caller, rule.needs.value)
                raise PermissionDeniedError(
                    f"{name} needs role {_needed(rule.needs)}; "
                    f"{caller.subject} has role {caller.role.value}"
                )
        if (
            caller.role is Role.RUNNER
            and self._binding is not None
            and is_runner_method(method)
            # An undecodable body is refused by the next interceptor, naming the problem.
            and isinstance(request, Message)
        ):
            await self._binding.check(method, metadata, request)
        if rule.limit is Limit.CREATE:
            self._creates.take(caller.subject)
        elif rule.limit is Limit.WATCH:
            # Last, so nothing after it can refuse the call: the stream releases it.
            self._watches.acquire(caller.subject)
        return caller


def _needed(role: Role) -> str:
    if role is Role.RUNNER:
        return "runner (RunnerService is for runners only)"
    return f"{role.value} or higher" if role is not Role.ADMIN else "admin"


def _refusal(method: str) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(requests: AsyncIterator[Any], context: Context) -> None:
        await abort_with(context, PermissionDeniedError(f"{method} is not served"))

    return grpc.stream_stream_rpc_method_handler(refuse)
