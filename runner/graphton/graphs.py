"""Bring your own graph: an importable compiled LangGraph graph named ``module:attribute``."""

from __future__ import annotations

import importlib
from typing import Any

from langgraph.pregel import Pregel

from runner.graphton.errors import GraphImportError


def load_graph(reference: str) -> Pregel[Any, Any, Any, Any]:
    """Import the compiled graph ``module:attribute`` (the attribute may be dotted).

    Raises:
        GraphImportError: Bad reference, module or attribute missing on this runner, or
            the object is not a compiled LangGraph graph.

    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise GraphImportError(f"graph '{reference}' is not of the form 'module:attribute'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise GraphImportError(
            f"graph '{reference}': module '{module_name}' cannot be imported on this runner: {err}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise GraphImportError(f"graph '{reference}': '{module_name}' has no '{attribute}'")
        target = getattr(target, part)
    if not isinstance(target, Pregel):
        raise GraphImportError(
            f"graph '{reference}' is a {type(target).__name__}, not a compiled LangGraph "
            "graph (call .compile() on the StateGraph)"
        )
    return target
