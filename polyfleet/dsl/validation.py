"""Static validation of workflow documents: every problem named by its JSON pointer.

Validation is the runtime's contract: whatever passes here, the engine runs; whatever
the engine cannot run (unsupported tasks, properties, options) is a problem here, so a
document is never half-run or silently simplified.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import Problem
from polyfleet.dsl.expressions import BASE_VARIABLES, escape
from polyfleet.dsl.model import COMMON_KEYS, UNSUPPORTED_TYPES
from polyfleet.dsl.registry import keywords, task_type, type_of
from polyfleet.dsl.schedule import schedule_problems
from polyfleet.dsl.tasks.authentication import check_policy
from polyfleet.dsl.tasks.basic import check_error_object
from polyfleet.dsl.tasks.functions import check_catalogs, check_functions
from polyfleet.dsl.tasks.try_catch import check_retry

_DSL_VERSION = re.compile(r"^1\.0(\.\d+)?$")
_TOP_KEYS = frozenset(
    {"document", "input", "output", "use", "do", "timeout", "evaluate", "schedule"}
)
_DOCUMENT_KEYS = frozenset(
    {"dsl", "namespace", "name", "version", "title", "summary", "tags", "metadata"}
)
_USE_SUPPORTED = frozenset(
    {"secrets", "errors", "retries", "timeouts", "functions", "authentications", "catalogs"}
)
_USE_UNSUPPORTED = frozenset({"extensions"})


def validate_document(
    doc: Mapping[str, Any],
    *,
    known_agents: Collection[str] | None = None,
    known_workflows: Collection[str] | None = None,
    workflow_name: str | None = None,
    resolved_functions: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Every reason ``doc`` cannot be run, in document order.

    Args:
        doc: the parsed document (see :func:`polyfleet.dsl.load_document`).
        known_agents: names `call: agent` may refer to; None skips that check.
        known_workflows: names `run: workflow` may refer to; None skips that check.
        workflow_name: the name ``doc`` is applied under: a `run: workflow` naming it
            is a cycle; None skips that check.
        resolved_functions: the definitions of the catalog and URL functions ``doc``
            calls, by reference: each is checked as a task, and a call of one not here is
            a problem. None: such calls are checked for their syntax and catalog only
            (resolving them is the orchestrator's, when the workflow is applied).

    Returns:
        The problems found; empty when the engine can run the document.
    """
    checker = DocumentChecker(doc, known_agents, known_workflows, workflow_name, resolved_functions)
    checker.document()
    return checker.problems


def runner_requirements(
    doc: Mapping[str, Any], resolved_functions: Mapping[str, Any] | None = None
) -> dict[str, list[str]]:
    """What a (valid) document needs of its runner beyond the defaults.

    Args:
        doc: the document.
        resolved_functions: its resolved catalog and URL functions, whose tasks count too.

    Returns:
        The `run` process kinds it starts (`shell`, `script`: a runner must list them in
        ``POLYFLEET_RUNNER_ALLOW_RUN``), each with the pointers of the tasks that do.
    """
    checker = DocumentChecker(doc, None, resolved_functions=resolved_functions)
    checker.document()
    return checker.requirements


def function_references(doc: Mapping[str, Any]) -> dict[str, str]:
    """The catalog and URL functions ``doc`` calls, each with the pointer of its first call.

    Only the references of a document without problems are meaningful.
    """
    checker = DocumentChecker(doc, None)
    checker.document()
    return checker.function_references


class DocumentChecker(Checker):
    """Walks a document and its task lists; each task type checks its own properties.

    The types are looked up in the registry, which importing :mod:`polyfleet.dsl.tasks` (as
    this module does, for the `use` definitions it checks) fills.
    """

    # -- document -------------------------------------------------------------------

    def document(self) -> None:
        """Check the whole document."""
        doc = self.doc
        self.keys("", doc, _TOP_KEYS, required=("document", "do"))
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
        if "schedule" in doc:
            self.problems.extend(schedule_problems("/schedule", doc["schedule"]))
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
        if "functions" in use:
            check_functions(self)
        if "catalogs" in use:
            check_catalogs(self)
        secrets = use.get("secrets")
        if "secrets" in use and (
            not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets)
        ):
            self.add("/use/secrets", "'secrets' must be a list of secret names")
        for kind in ("errors", "retries", "timeouts", "authentications"):
            if kind not in use:
                continue
            named = self.mapping(f"/use/{kind}", use[kind], f"'{kind}'")
            for name, item in (named or {}).items():
                pointer = f"/use/{kind}/{escape(str(name))}"
                if kind == "errors":
                    check_error_object(self, pointer, item, frozenset(BASE_VARIABLES))
                elif kind == "retries":
                    check_retry(self, pointer, item, frozenset(BASE_VARIABLES))
                elif kind == "authentications":
                    check_policy(self, pointer, item, frozenset(BASE_VARIABLES))
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
            self.add(pointer, "unknown task type: expected one of " + ", ".join(keywords()))
            return
        spec = type_of(task)
        if spec is None:
            self.add(f"{pointer}/{kind}", f"the '{kind}' task is not supported by this runtime")
            return
        own = COMMON_KEYS | spec.keys
        type_words = frozenset(keywords()) | frozenset(UNSUPPORTED_TYPES)
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
        spec.check(self, pointer, task, variables, siblings)
