"""Static validation of workflow documents: every problem named by its JSON pointer.

Validation is the runtime's contract: whatever passes here, the engine runs; whatever
the engine cannot run (unsupported tasks, properties, options) is a problem here, so a
document is never half-run or silently simplified.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import jsonschema
import jsonschema.exceptions

from runner.dsl import expressions
from runner.dsl.durations import DurationError, parse_duration
from runner.dsl.errors import Problem
from runner.dsl.expressions import BASE_VARIABLES, escape
from runner.dsl.model import COMMON_KEYS, DIRECTIVES, TYPE_KEYS, UNSUPPORTED_TYPES, task_type
from runner.dsl.validate_tasks import TYPE_CHECKS, check_error_object, check_retry

_DSL_VERSION = re.compile(r"^1\.0(\.\d+)?$")
_TOP_KEYS = frozenset({"document", "input", "output", "use", "do", "timeout", "evaluate"})
_DOCUMENT_KEYS = frozenset(
    {"dsl", "namespace", "name", "version", "title", "summary", "tags", "metadata"}
)
_USE_SUPPORTED = frozenset({"secrets", "errors", "retries", "timeouts"})
_USE_UNSUPPORTED = frozenset({"authentications", "catalogs", "extensions", "functions"})


def validate_document(
    doc: Mapping[str, Any], *, known_agents: Collection[str] | None = None
) -> list[Problem]:
    """Every reason ``doc`` cannot be run, in document order.

    Args:
        doc: the parsed document (see :func:`runner.dsl.load_document`).
        known_agents: names `call: agent` may refer to; None skips that check.

    Returns:
        The problems found; empty when the engine can run the document.
    """
    checker = Checker(doc, known_agents)
    checker.document()
    return checker.problems


class Checker:
    """Walks a document and collects problems; per-type task checks live in validate_tasks."""

    def __init__(self, doc: Mapping[str, Any], known_agents: Collection[str] | None) -> None:
        self.doc = doc
        self.known_agents = None if known_agents is None else frozenset(known_agents)
        self.problems: list[Problem] = []
        use = doc.get("use")
        self.use: Mapping[str, Any] = use if isinstance(use, Mapping) else {}

    # -- generic helpers ------------------------------------------------------------

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
            if value not in self._named("timeouts"):
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

    def _named(self, kind: str) -> Mapping[str, Any]:
        named = self.use.get(kind)
        return named if isinstance(named, Mapping) else {}

    # -- document -------------------------------------------------------------------

    def document(self) -> None:
        """Check the whole document."""
        doc = self.doc
        self.keys("", doc, _TOP_KEYS, required=("document", "do"), unsupported={"schedule"})
        if "document" in doc:
            header = self.mapping("/document", doc["document"], "'document'")
            if header is not None:
                self._header(header)
        variables = frozenset(BASE_VARIABLES)
        if "input" in doc:
            self.io("/input", doc["input"], "from", variables)
        if "output" in doc:
            self.io("/output", doc["output"], "as", variables)
        if "timeout" in doc:
            self.timeout("/timeout", doc["timeout"])
        if "evaluate" in doc:
            self._evaluate(doc["evaluate"])
        if "use" in doc and self.mapping("/use", doc["use"], "'use'") is not None:
            self._use()
        if "do" in doc:
            self.task_list("/do", doc["do"], variables)

    def _header(self, header: Mapping[str, Any]) -> None:
        required = ("dsl", "namespace", "name", "version")
        self.keys("/document", header, _DOCUMENT_KEYS, required=required)
        for key in ("dsl", "namespace", "name", "version"):
            value = header.get(key)
            if key in header and not isinstance(value, str):
                hint = " (quote it in YAML)" if isinstance(value, int | float) else ""
                self.add(f"/document/{key}", f"'{key}' must be a string{hint}")
        dsl = header.get("dsl")
        if isinstance(dsl, str) and not _DSL_VERSION.match(dsl):
            self.add("/document/dsl", f"unsupported DSL version '{dsl}'; this runtime runs 1.0.x")

    def _evaluate(self, value: Any) -> None:
        block = self.mapping("/evaluate", value, "'evaluate'")
        if block is None:
            return
        self.keys("/evaluate", block, {"language", "mode"})
        if block.get("language", "jq") != "jq":
            self.add("/evaluate/language", "only jq expressions are supported")
        if block.get("mode", "strict") != "strict":
            self.add("/evaluate/mode", "only the 'strict' evaluation mode is supported")

    def _use(self) -> None:
        use = self.use
        self.keys("/use", use, _USE_SUPPORTED, unsupported=_USE_UNSUPPORTED)
        secrets = use.get("secrets")
        if "secrets" in use and (
            not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets)
        ):
            self.add("/use/secrets", "'secrets' must be a list of secret names")
        for kind in ("errors", "retries", "timeouts"):
            if kind not in use:
                continue
            named = self.mapping(f"/use/{kind}", use[kind], f"'{kind}'")
            for name, item in (named or {}).items():
                pointer = f"/use/{kind}/{escape(str(name))}"
                if kind == "errors":
                    check_error_object(self, pointer, item, frozenset(BASE_VARIABLES))
                elif kind == "retries":
                    check_retry(self, pointer, item, frozenset(BASE_VARIABLES))
                else:
                    self.timeout(pointer, item)

    # -- tasks ----------------------------------------------------------------------

    def task_list(self, pointer: str, value: Any, variables: frozenset[str]) -> None:
        """A list of named tasks run in sequence; `then` targets must be siblings."""
        if not isinstance(value, list) or not value:
            self.add(pointer, "must be a non-empty list of tasks")
            return
        names: list[str] = []
        tasks: list[tuple[str, str, Mapping[str, Any]]] = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping) or len(item) != 1:
                self.add(f"{pointer}/{index}", "a task list item must map one task name to a task")
                continue
            ((name, task),) = item.items()
            name = str(name)
            if name in names:
                self.add(f"{pointer}/{index}/{escape(name)}", f"duplicate task name '{name}'")
            names.append(name)
            tasks.append((f"{pointer}/{index}/{escape(name)}", name, task))
        for task_pointer, _name, task in tasks:
            self.task(task_pointer, task, variables, names)

    def task(
        self, pointer: str, task: Any, variables: frozenset[str], siblings: Collection[str]
    ) -> None:
        """One task: its type, its common properties, then the checks of its type."""
        if not isinstance(task, Mapping):
            self.add(pointer, "a task must be an object")
            return
        kind = task_type(task)
        if kind is None:
            self.add(pointer, "unknown task type: expected one of " + ", ".join(TYPE_KEYS))
            return
        if kind in UNSUPPORTED_TYPES:
            self.add(f"{pointer}/{kind}", f"the '{kind}' task is not supported by this runtime")
            return
        own = COMMON_KEYS | TYPE_KEYS[kind]
        type_words = frozenset(TYPE_KEYS) | frozenset(UNSUPPORTED_TYPES)
        for key in task:
            if key in type_words and key not in own:
                self.add(
                    f"{pointer}/{key}", f"a task has one type: '{key}' conflicts with '{kind}'"
                )
        rest = {k: v for k, v in task.items() if k in own or k not in type_words}
        self.keys(pointer, rest, own)
        if "if" in task:
            self.expression(f"{pointer}/if", task["if"], variables)
        if "input" in task:
            self.io(f"{pointer}/input", task["input"], "from", variables)
        if "output" in task:
            self.io(f"{pointer}/output", task["output"], "as", variables)
        if "export" in task:
            self.io(f"{pointer}/export", task["export"], "as", variables | {"output"})
        if "timeout" in task:
            self.timeout(f"{pointer}/timeout", task["timeout"])
        if "metadata" in task:
            self.mapping(f"{pointer}/metadata", task["metadata"], "'metadata'")
        if "then" in task:
            self.directive(f"{pointer}/then", task["then"], siblings)
        TYPE_CHECKS[kind](self, pointer, task, variables, siblings)

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
