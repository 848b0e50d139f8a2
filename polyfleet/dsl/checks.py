"""The checking primitives of validation: collecting problems and checking common shapes.

:class:`Checker` is what every task type's check receives (see :mod:`polyfleet.dsl.registry`):
it records problems by JSON pointer and checks the shapes tasks share (expressions,
templates, durations, timeouts, schemas, `input`/`output`/`export`, flow directives). Walking
a document and its task lists is :mod:`polyfleet.dsl.validation`'s job; a task type that holds
other tasks reaches that walk through :meth:`Checker.task_list` and :meth:`Checker.task`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import jsonschema
import jsonschema.exceptions

from polyfleet.dsl import expressions
from polyfleet.dsl.durations import DurationError, parse_duration
from polyfleet.dsl.errors import Problem
from polyfleet.dsl.expressions import escape
from polyfleet.dsl.model import DIRECTIVES


class Checker(ABC):
    """Collects the problems of one document; subclasses walk it.

    Attributes:
        doc: the document being checked.
        known_agents: names `call: agent` may refer to; None skips that check.
        known_workflows: names `run: workflow` may refer to; None skips that check.
        workflow_name: the name the document is applied under (a `run: workflow` of it
            is a cycle); None when not known.
        problems: what was found so far, in document order.
        requirements: what the document needs of its runner: `run` process kinds
            (`shell`, `script`) and the pointers of the tasks that need each.
        use: the document's `use` block ({} when absent or not an object).
        resolved_functions: the definitions of the catalog and URL functions the document
            calls, by reference (:mod:`polyfleet.dsl.catalogs`); None skips resolution:
            such calls are checked only for their syntax and catalog.
        function_references: each catalog or URL function the document calls, with the
            pointer of its first `call`.
    """

    def __init__(
        self,
        doc: Mapping[str, Any],
        known_agents: Collection[str] | None,
        known_workflows: Collection[str] | None = None,
        workflow_name: str | None = None,
        resolved_functions: Mapping[str, Any] | None = None,
    ) -> None:
        self.doc = doc
        self.resolved_functions = resolved_functions
        self.function_references: dict[str, str] = {}
        self.known_agents = None if known_agents is None else frozenset(known_agents)
        self.known_workflows = None if known_workflows is None else frozenset(known_workflows)
        self.workflow_name = workflow_name
        self.problems: list[Problem] = []
        self.requirements: dict[str, list[str]] = {}
        use = doc.get("use")
        self.use: Mapping[str, Any] = use if isinstance(use, Mapping) else {}

    @abstractmethod
    def task_list(self, pointer: str, value: Any, variables: frozenset[str]) -> None:
        """A list of named tasks run in sequence."""

    @abstractmethod
    def task(
        self, pointer: str, task: Any, variables: frozenset[str], siblings: Collection[str]
    ) -> None:
        """One task; ``siblings`` are the names its `then` may jump to."""

    def add(self, pointer: str, message: str) -> None:
        """Record one problem."""
        self.problems.append(Problem(pointer, message))

    def mapping(self, pointer: str, value: Any, what: str) -> Mapping[str, Any] | None:
        """``value`` when it is a mapping; otherwise record a problem and return None."""
        if isinstance(value, Mapping):
            return value
        self.add(pointer, f"{what} must be an object")
        return None

    def keys(
        self,
        pointer: str,
        value: Mapping[str, Any],
        allowed: Iterable[str],
        required: Iterable[str] = (),
        unsupported: Iterable[str] = (),
    ) -> None:
        """Record missing required members and members the runtime does not know or run."""
        allowed_set, unsupported_set = frozenset(allowed), frozenset(unsupported)
        for key in required:
            if key not in value:
                self.add(f"{pointer}/{escape(key)}", f"missing required property '{key}'")
        for key in value:
            if key in unsupported_set:
                self.add(f"{pointer}/{escape(str(key))}", f"'{key}' is not supported")
            elif key not in allowed_set:
                self.add(f"{pointer}/{escape(str(key))}", f"unknown property '{key}'")

    def members(
        self,
        pointer: str,
        value: Any,
        what: str,
        allowed: Iterable[str],
        required: Iterable[str] = (),
        unsupported: Iterable[str] = (),
    ) -> Mapping[str, Any] | None:
        """:meth:`mapping`, then :meth:`keys` on the mapping: the checked mapping or None."""
        block = self.mapping(pointer, value, what)
        if block is not None:
            self.keys(pointer, block, allowed, required, unsupported)
        return block

    def string(self, pointer: str, value: Any, what: str) -> bool:
        """Whether ``value`` is a non-empty string (a problem is recorded if not)."""
        if isinstance(value, str) and value.strip():
            return True
        self.add(pointer, f"{what} must be a non-empty string")
        return False

    def expression(self, pointer: str, value: Any, variables: Collection[str]) -> None:
        """An expression-typed field: a jq string, with or without `${ }`."""
        if not self.string(pointer, value, "an expression"):
            return
        source = expressions.expression_text(value)
        problem = expressions.check(source, variables)
        if problem:
            self.add(pointer, f"invalid jq expression `{source}`: {problem}")

    def transform(self, pointer: str, value: Any, variables: Collection[str]) -> None:
        """`input.from` / `output.as` / `export.as`: an expression string or an object template."""
        if isinstance(value, str):
            self.expression(pointer, value, variables)
        else:
            self.template(pointer, value, variables)

    def template(self, pointer: str, value: Any, variables: Collection[str]) -> None:
        """Data in which every `${ }` string is an expression."""
        for where in expressions.iter_embedded(value, pointer):
            self.add(
                where,
                "`${ }` inside a longer string is not evaluated: make the whole value an "
                'expression, e.g. ${ "Hello " + .name }',
            )
        for where, source in expressions.iter_template_expressions(value, pointer):
            problem = expressions.check(source, variables)
            if problem:
                self.add(where, f"invalid jq expression `{source}`: {problem}")

    def duration(self, pointer: str, value: Any) -> None:
        """A DSL duration (ISO 8601 string or object)."""
        try:
            parse_duration(value)
        except DurationError as exc:
            self.add(pointer, str(exc))

    def timeout(self, pointer: str, value: Any) -> None:
        """A timeout: `{after: duration}` or the name of one in `use.timeouts`."""
        if isinstance(value, str):
            if value not in self.named("timeouts"):
                self.add(pointer, f"unknown timeout '{value}' (not defined in use.timeouts)")
            return
        timeout = self.mapping(pointer, value, "a timeout")
        if timeout is not None:
            self.keys(pointer, timeout, {"after"}, required={"after"})
            if "after" in timeout:
                self.duration(f"{pointer}/after", timeout["after"])

    def schema(self, pointer: str, value: Any) -> None:
        """A `schema` object: inline JSON Schema only."""
        schema = self.mapping(pointer, value, "a schema")
        if schema is None:
            return
        self.keys(pointer, schema, {"format", "document"}, unsupported={"resource"})
        if schema.get("format", "json") != "json":
            self.add(f"{pointer}/format", "only the 'json' schema format is supported")
        document = schema.get("document")
        if "resource" in schema:
            return
        if not isinstance(document, Mapping):
            self.add(f"{pointer}/document", "an inline JSON Schema object is required")
            return
        try:
            jsonschema.validators.validator_for(document).check_schema(dict(document))
        except jsonschema.exceptions.SchemaError as exc:
            self.add(f"{pointer}/document", f"invalid JSON Schema: {exc.message}")

    def io(self, pointer: str, value: Any, member: str, variables: Collection[str]) -> None:
        """`input` (member `from`), `output` or `export` (member `as`)."""
        block = self.mapping(pointer, value, f"'{pointer.rsplit('/', 1)[-1]}'")
        if block is None:
            return
        self.keys(pointer, block, {member, "schema"})
        if member in block:
            self.transform(f"{pointer}/{member}", block[member], variables)
        if "schema" in block:
            self.schema(f"{pointer}/schema", block["schema"])

    def named(self, kind: str) -> Mapping[str, Any]:
        """The definitions of one kind in `use` (`errors`, `retries`, `timeouts`), or {}."""
        named = self.use.get(kind)
        return named if isinstance(named, Mapping) else {}

    def directive(self, pointer: str, value: Any, siblings: Collection[str]) -> None:
        """A flow directive: continue, exit, end, or the name of a task in the same list."""
        if not isinstance(value, str):
            self.add(pointer, "a flow directive must be a string")
        elif value not in DIRECTIVES and value not in siblings:
            self.add(
                pointer,
                f"unknown flow directive or task '{value}' "
                "(use continue, exit, end or the name of a task in the same list)",
            )
