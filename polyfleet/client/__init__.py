"""The Python client of the polyfleet API: asyncio :class:`Client`, blocking :class:`SyncClient`.

See docs/client.md.
Typed calls per service, ``run_agent`` / ``run_workflow`` (create and optionally wait),
``watch`` (events, resuming after a broken stream), ``wait`` (until terminal) and
``list_all`` (every page). Every failure is a :class:`PolyfleetError` carrying the gRPC
code and the API's error details.
"""

from polyfleet.client.client import Client
from polyfleet.client.errors import PolyfleetError, WaitTimeoutError, WatchError
from polyfleet.client.sync import SyncClient
from polyfleet.client.watch import ExecutionCalls, ExecutionWatch
from polyfleet.contract import TERMINAL_PHASES, Execution, is_terminal, phase_name

__all__ = [
    "TERMINAL_PHASES",
    "Client",
    "Execution",
    "ExecutionCalls",
    "ExecutionWatch",
    "PolyfleetError",
    "SyncClient",
    "WaitTimeoutError",
    "WatchError",
    "is_terminal",
    "phase_name",
]
