"""The ``polyfleet`` command-line interface.

``polyfleet apply``, ``run``, ``executions``, ``agents`` talk to the orchestrator API;
``polyfleet dev`` and ``demo`` run a local fleet (see :mod:`polyfleet.fleet`).
"""

from __future__ import annotations

from polyfleet.cli.main import main

__all__ = ["main"]
