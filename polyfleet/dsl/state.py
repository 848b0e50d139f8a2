"""Checkpoint state: what a resumed engine needs to continue after the last completed task.

The state is the stack of *active* composite tasks, not a history::

    {
      "version": 1,
      "document": "<sha256 prefix of the document>",
      "context": <$context>,
      "frames": {
        "":               {"input": ..., "seq": {"next": 3, "data": ...}},
        "/do/3/loop":     {"input": ..., "items": [...], "index": 7, "data": ...,
                           "seq": {"next": 1, "data": ...}},
        "/do/3/loop/for/7/do/0/guarded": {"input": ..., "attempt": 2, "seq": {...}}
      }
    }

Each frame is keyed by the id of a running composite task (`""` is the workflow itself)
and holds that task's transformed input plus its own progress: for a task list, the index
of the next task and the data it will receive; for `for`, the items, the iteration and the
carried data; for `fork`, the outputs of finished branches; for `try`, the attempt and
whether the catch block is running. A frame is dropped when its task ends, so the state
stays proportional to nesting depth (and fork width), whatever the number of iterations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from polyfleet.dsl.errors import DslError

VERSION = 1


class ResumeError(DslError):
    """A checkpoint cannot be resumed with this document."""


def fingerprint(doc: Mapping[str, Any]) -> str:
    """A short, stable digest of a document, to refuse resuming a different one."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def snapshot(document: str, context: Any, frames: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, JSON-only copy of the live state (later changes do not leak into it)."""
    state = {"version": VERSION, "document": document, "context": context, "frames": frames}
    copied: dict[str, Any] = json.loads(json.dumps(state))
    return copied


def restore(state: Mapping[str, Any], document: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The context and frames of a checkpoint taken for ``document``.

    Raises:
        ResumeError: the state is malformed, of another version, or for another document.
    """
    if state.get("version") != VERSION:
        raise ResumeError(f"unsupported checkpoint version {state.get('version')!r}")
    if state.get("document") != document:
        raise ResumeError("the checkpoint was taken for a different workflow document")
    frames = state.get("frames")
    if not isinstance(frames, Mapping) or not all(isinstance(f, dict) for f in frames.values()):
        raise ResumeError("malformed checkpoint: 'frames' must map task ids to objects")
    copied: dict[str, dict[str, Any]] = json.loads(json.dumps(dict(frames)))
    return json.loads(json.dumps(state.get("context", {}))), copied
