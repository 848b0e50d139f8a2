"""``polyfleet version``: the installed package's version, and with ``-o json`` its runtime.

Read from the installed distributions' metadata (``importlib.metadata``), so an image, a
wheel and a checkout each report what is really installed; nothing talks to the API.
"""

from __future__ import annotations

import argparse
import json
import platform
from importlib import metadata

from polyfleet.cli.errors import EXIT_OK
from polyfleet.cli.output import Console

# The distributions whose versions `-o json` reports, under these keys.
RUNTIME_DISTRIBUTIONS = {"temporalio": "temporalio", "grpc": "grpcio", "protobuf": "protobuf"}
UNKNOWN = "unknown"


def distribution_version(name: str) -> str:
    """The installed version of the distribution ``name``, or ``unknown`` if it is not installed.

    Args:
        name: A distribution name, e.g. ``polyfleet`` or ``grpcio``.

    """
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def package_version() -> str:
    """The installed polyfleet's version (``unknown`` when run from an uninstalled tree)."""
    return distribution_version("polyfleet")


def versions() -> dict[str, str]:
    """The versions of polyfleet, Python and the runtime libraries that matter most."""
    found = {"polyfleet": package_version(), "python": platform.python_version()}
    for key, distribution in RUNTIME_DISTRIBUTIONS.items():
        found[key] = distribution_version(distribution)
    return found


def cmd_version(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet version [-o text|json]``."""
    if args.output == "json":
        print(json.dumps(versions(), indent=2), file=console.out)
    else:
        print(f"polyfleet {package_version()}", file=console.out)
    return EXIT_OK
