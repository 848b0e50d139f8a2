"""How the CLI reaches the API: one :class:`~polyfleet.client.Client` per command.

Every call goes through the Python client (:mod:`polyfleet.client`); this module only opens
it and turns its errors into :class:`CliError`, so a failed call is reported as
``<STATUS_CODE>: <details>`` with a hint where one helps.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from polyfleet.cli.errors import CliError
from polyfleet.client import Client, PolyfleetError
from polyfleet.config import ApiSettings


def api_address(args: argparse.Namespace) -> str:
    """Return the API address: ``--address`` if given, else ``POLYFLEET_API_ADDRESS``.

    Args:
        args: Parsed arguments.

    Returns:
        ``host:port``.

    """
    address: str | None = args.address
    return address or ApiSettings().api_address


@asynccontextmanager
async def connect(address: str, settings: ApiSettings | None = None) -> AsyncIterator[Client]:
    """Open a client of the API and translate its failures into :class:`CliError`.

    Args:
        address: ``host:port`` of the orchestrator API.
        settings: Connection settings (TLS, token); read from the environment if None.

    Yields:
        The client, closed on exit.

    Raises:
        CliError: A call failed; the message is ``<STATUS_CODE>: <details>``.

    """
    try:
        async with await Client.connect(address, settings=settings) as client:
            yield client
    except PolyfleetError as exc:
        raise rpc_error(exc, address) from exc


def rpc_error(exc: PolyfleetError, address: str) -> CliError:
    """Describe a failed call as the CLI reports it.

    Args:
        exc: The error the call raised.
        address: The API address, named in the hint when the server is unreachable.

    Returns:
        An error whose message is ``<STATUS_CODE_NAME>: <details>``.

    """
    hint = ""
    if exc.code == grpc.StatusCode.UNAVAILABLE:
        hint = (
            f"is the polyfleet API running at {address}? Start a local fleet with "
            "'polyfleet dev', or point --address / POLYFLEET_API_ADDRESS at one."
        )
    return CliError(str(exc), hint=hint)
