"""The ``polyfleet`` entry point: parse, dispatch, turn failures into exit codes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from polyfleet.cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, CliError, print_error
from polyfleet.cli.output import Console
from polyfleet.cli.parser import Handler, build_parser
from polyfleet.config import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``polyfleet`` command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        The exit code: 0 success, 1 the execution FAILED or was CANCELLED, 2 usage, input
        or API error, 130 interrupted. Invalid arguments exit 2 through argparse.

    """
    args = build_parser().parse_args(argv)
    console = Console(out=sys.stdout, err=sys.stderr)
    # Library loggers stay quiet unless something is wrong; the CLI prints its own output.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args, console)
    except CliError as exc:
        print_error(exc, console.err)
        return exc.exit_code
    except ConfigError as exc:
        # The settings classes name the malformed environment variable.
        print_error(CliError(f"invalid configuration: {exc}"), console.err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=console.err)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into e.g. `head` that exited early: not an error worth a traceback.
        # Pointing stdout at /dev/null keeps the interpreter's final flush from failing too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
