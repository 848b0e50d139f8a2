"""Serverless Workflow DSL 1.0 runtime: parse, validate and run workflow documents.

Supported: `do`, `set`, `call: http`, `call: agent` (polyfleet extension), `switch`,
`for`, `fork`, `try`/`catch`/`retry`, `wait`, `raise`, `run` (workflow, shell, script),
flow directives, `if`,
`input`/`output`/`export` (with JSON Schemas), timeouts, `use.secrets|errors|retries|timeouts`
and jq expressions. Anything else is a validation problem, never silently skipped.

Task ids are JSON pointers into the document (`/do/1/outer/do/0/inner`,
`/do/0/par/fork/branches/1/b`, `/do/2/t/try/0/x`, `/do/2/t/catch/do/0/y`); tasks inside
a `for` iteration get the iteration inserted after the loop's pointer
(`/do/3/loop/for/4/do/0/step`), so every iteration reports under its own id. Retried
`try` tasks report again under the same ids with a higher `attempts`.
"""

from polyfleet.dsl.engine import Engine
from polyfleet.dsl.errors import (
    COMMUNICATION,
    CONFIGURATION,
    EXPRESSION,
    RUNTIME,
    TIMEOUT,
    VALIDATION,
    DslError,
    InvalidDocumentError,
    Problem,
    WorkflowError,
)
from polyfleet.dsl.loader import load_document
from polyfleet.dsl.reports import EngineHooks, EventBatch, TaskReport
from polyfleet.dsl.state import ResumeError
from polyfleet.dsl.validation import validate_document

__all__ = [
    "COMMUNICATION",
    "CONFIGURATION",
    "EXPRESSION",
    "RUNTIME",
    "TIMEOUT",
    "VALIDATION",
    "DslError",
    "Engine",
    "EngineHooks",
    "EventBatch",
    "InvalidDocumentError",
    "Problem",
    "ResumeError",
    "TaskReport",
    "WorkflowError",
    "load_document",
    "validate_document",
]
