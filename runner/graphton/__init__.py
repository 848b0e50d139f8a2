"""Graphton: the LangGraph agent runtime behind ExecuteGraphton (see README.md here)."""

from runner.graphton.errors import GraphtonError, ModelError
from runner.graphton.progress import ProgressReporter
from runner.graphton.runtime import execution_logger, run_graphton
from runner.graphton.scripted import ScriptedChatModel
from runner.graphton.secrets import Secrets

__all__ = [
    "GraphtonError",
    "ModelError",
    "ProgressReporter",
    "ScriptedChatModel",
    "Secrets",
    "execution_logger",
    "run_graphton",
]
