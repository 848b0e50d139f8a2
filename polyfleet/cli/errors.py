"""The CLI's exception root and its exit codes."""

from __future__ import annotations

from typing import TextIO

from polyfleet.contract import Execution
from polyfleet.v1 import common_pb2

EXIT_OK = 0
# The command worked but the execution it ran or watched ended FAILED or CANCELLED.
EXIT_EXECUTION_FAILED = 1
# Bad usage or input, or the API refused the request (argparse uses 2 as well).
EXIT_ERROR = 2
# Conventional code for a process ended by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130


def exit_code_for(execution: Execution) -> int:
    """Map an execution's final phase to the CLI's exit code.

    Args:
        execution: A terminal agent or workflow execution.

    Returns:
        0 when COMPLETED, 1 when FAILED or CANCELLED.

    """
    if execution.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED:
        return EXIT_OK
    return EXIT_EXECUTION_FAILED


class CliError(Exception):
    """A failure to report as ``error: <message>`` on stderr.

    Attributes:
        message: What went wrong, for the user.
        exit_code: The process exit code to use.
        hint: An optional second line suggesting a fix.

    """

    def __init__(self, message: str, *, exit_code: int = EXIT_ERROR, hint: str = "") -> None:
        self.message = message
        self.exit_code = exit_code
        self.hint = hint
        super().__init__(message)


def print_error(error: CliError, stream: TextIO) -> None:
    """Write an error as ``error: <message>``, plus its hint, to a stream.

    Args:
        error: The error.
        stream: Normally stderr.

    """
    print(f"error: {error.message}", file=stream)
    if error.hint:
        print(f"hint: {error.hint}", file=stream)
    stream.flush()
