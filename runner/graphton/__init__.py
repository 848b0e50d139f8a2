"""Graphton: the LangGraph agent runtime behind ExecuteGraphton (see README.md here)."""

from runner.graphton.errors import GraphtonError, ModelError
from runner.graphton.runtime import execution_logger, run_graphton
from runner.graphton.scripted import ScriptedChatModel

__all__ = [
    "GraphtonError",
    "ModelError",
    "ScriptedChatModel",
    "execution_logger",
    "run_graphton",
]
