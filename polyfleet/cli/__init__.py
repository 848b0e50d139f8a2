"""The ``polyfleet`` command-line interface.

``polyfleet apply``, ``run``, ``executions``, ``agents``, ``workflows`` talk to the
orchestrator API (:mod:`~polyfleet.cli.commands`, :mod:`~polyfleet.cli.run`,
:mod:`~polyfleet.cli.executions`);
``polyfleet dev`` and ``demo`` run a local fleet (see :mod:`polyfleet.fleet`).
"""

from __future__ import annotations

from polyfleet.cli.main import main

__all__ = ["main"]
