"""The client's channel and the one place its calls meet gRPC: metadata, deadlines, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

import grpc

from polyfleet.channel import create_channel, token_metadata
from polyfleet.client.errors import PolyfleetError
from polyfleet.config import ApiSettings
from polyfleet.telemetry import tracing

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

# Unary calls are quick lookups or writes; thirty seconds without an answer means trouble.
UNARY_TIMEOUT = 30.0


def open_channel(settings: ApiSettings) -> grpc.aio.Channel:
    """Open a channel to the API as the settings describe (plaintext or TLS).

    Args:
        settings: Address, message limit and TLS settings
            (:func:`polyfleet.channel.client_credentials`).

    Returns:
        An asyncio channel; the caller closes it.

    Raises:
        ConfigError: A TLS file cannot be read.

    """
    return create_channel(settings.api_address, settings)


@dataclass(frozen=True)
class Transport:
    """Makes calls with the client's metadata and turns their failures into PolyfleetError.

    Attributes:
        metadata: Sent with every call (the bearer token, when there is one).
        timeout: Deadline of unary calls, in seconds.

    """

    metadata: tuple[tuple[str, str], ...] = ()
    timeout: float = UNARY_TIMEOUT

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """:attr:`metadata` and the caller's trace context (W3C ``traceparent``), if any.

        Called inside a span (an application traced with OpenTelemetry), the API's span
        of the call, and so a created execution's trace, continues the caller's trace.
        """
        return (*self.metadata, *tracing.inject_metadata())

    @classmethod
    def for_settings(cls, settings: ApiSettings) -> Transport:
        """The transport of a client configured by ``settings``."""
        return cls(metadata=token_metadata(settings))

    async def unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        *,
        deadline: float | None = None,
    ) -> _Resp:
        """Make a unary call.

        Args:
            method: The stub's method.
            request: Its request.
            deadline: The call's deadline in seconds; None uses :attr:`timeout`.

        Returns:
            The response.

        Raises:
            PolyfleetError: The call failed.

        """
        try:
            return await method(
                request, timeout=deadline or self.timeout, metadata=self.call_metadata() or None
            )
        except grpc.aio.AioRpcError as exc:
            raise PolyfleetError.from_rpc(exc) from exc

    async def stream(
        self, method: grpc.aio.UnaryStreamMultiCallable[_Req, _Resp], request: _Req
    ) -> AsyncIterator[_Resp]:
        """Make a server-streaming call, without a deadline (streams last as long as needed).

        Args:
            method: The stub's method.
            request: Its request.

        Yields:
            Each response of the stream.

        Raises:
            PolyfleetError: The call failed or the stream broke.

        """
        try:
            async for response in method(request, metadata=self.call_metadata() or None):
                yield response
        except grpc.aio.AioRpcError as exc:
            raise PolyfleetError.from_rpc(exc) from exc
