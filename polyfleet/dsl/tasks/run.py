"""`run`: another applied workflow as a child execution, or a shell command or script.

``run: {workflow: {name, version?, namespace?, input?}, await?}`` asks the host to run the
applied workflow ``name`` as a child execution (its output is the task's raw output; with
``await: false`` the task outputs ``{id, workflow}`` as soon as the child is started).

``run: {shell: {command, arguments?, environment?, stdin?}, return?}`` runs ``command``
with ``/bin/sh -c`` and the ``arguments`` as its positional parameters (``$1``...), never
parsed by the shell; a command that reads none gets them appended as words (``"$@"``).
``run: {script: {language: python|js|javascript, code | source, arguments?, environment?,
stdin?}, return?}`` runs the code with the host's Python (isolated mode) or ``node`` (as a
script file, so ``process.argv[2]`` is the first argument). ``stdin`` (text; anything else
is sent as JSON) is what the process reads on its standard input. Both are processes of
the host (:mod:`polyfleet.dsl.tasks.run_process`), only when its
:class:`~polyfleet.dsl.runtime.ProcessLimits` allow their kind. ``return`` picks the
output: ``stdout`` (default), ``stderr``, ``code``, ``all`` (``{code, stdout, stderr}``) or
``none`` (null); a non-zero exit raises a runtime error unless it is ``code`` or ``all``.

``run: {container: ...}`` is rejected: no container runtime is assumed on runners.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import CONFIGURATION, RUNTIME, TIMEOUT, WorkflowError
from polyfleet.dsl.expressions import is_expression
from polyfleet.dsl.registry import StepResult, TaskType
from polyfleet.dsl.reports import ChildWorkflow
from polyfleet.dsl.runtime import Runtime, TaskCall
from polyfleet.dsl.tasks.run_process import (
    ProcessOutputError,
    ProcessTimeoutError,
    child_environment,
    run_process,
)

PROCESSES = ("shell", "script")
RETURNS = ("stdout", "stderr", "code", "all", "none")
#: `javascript` is the spec examples' spelling of `js`.
LANGUAGES = ("python", "js", "javascript")
_KINDS = ("container", "script", "shell", "workflow")
_JS_SCRIPT = "script.js"
# A shell command that reads its positional parameters: $1..$9, ${1}, $@, $*, $#.
_POSITIONAL = re.compile(r"\$(?:[1-9@*#]|\{[0-9@*#])")
# How much of a failed process's stderr its error shows.
_DETAIL_CHARS = 2000


# -- validation -------------------------------------------------------------------------


def _check(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    block = c.members(f"{p}/run", task.get("run"), "'run'", {*_KINDS, "await", "return"})
    if block is None:
        return
    kinds = [k for k in _KINDS if k in block]
    if len(kinds) != 1:
        c.add(f"{p}/run", "'run' must have exactly one of shell, script, workflow")
        return
    kind = kinds[0]
    rp = f"{p}/run/{kind}"
    if "await" in block and not isinstance(block["await"], bool):
        c.add(f"{p}/run/await", "'await' must be true or false")
    elif block.get("await") is False and kind != "workflow":
        c.add(f"{p}/run/await", "'await: false' is supported for `run: workflow` only")
    if "return" in block:
        if kind == "workflow":
            c.add(f"{p}/run/return", "'return' applies to `run: shell` and `run: script` only")
        elif block["return"] not in RETURNS:
            c.add(f"{p}/run/return", "'return' must be one of " + ", ".join(RETURNS))
    if kind == "container":
        c.add(
            rp,
            "`run: container` is not supported: polyfleet assumes no container runtime on "
            "its runners (docs/dsl.md, 'run'); use `run: shell` on a runner that allows it",
        )
    elif kind == "workflow":
        _check_workflow(c, rp, block["workflow"], variables)
    else:
        _check_process(c, rp, kind, block[kind], variables)
        c.requirements.setdefault(kind, []).append(p)


def _check_workflow(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    block = c.members(
        p, value, "'workflow'", {"name", "namespace", "version", "input"}, required=("name",)
    )
    if block is None:
        return
    for key in ("name", "namespace", "version"):
        if key in block and c.string(f"{p}/{key}", block[key], f"'{key}'"):
            c.template(f"{p}/{key}", block[key], variables)
    name = block.get("name")
    if isinstance(name, str) and name.strip() and not is_expression(name):
        if c.workflow_name is not None and name == c.workflow_name:
            c.add(f"{p}/name", f"workflow '{name}' cannot run itself (a cycle)")
        elif c.known_workflows is not None and name not in c.known_workflows:
            c.add(f"{p}/name", f"unknown workflow '{name}' (apply it first)")
    if "input" in block:
        given = block["input"]
        if not (isinstance(given, Mapping) or is_expression(given)):
            c.add(f"{p}/input", "'input' must be an object or a `${ }` expression")
        c.template(f"{p}/input", given, variables)


def _check_process(c: Checker, p: str, kind: str, value: Any, variables: frozenset[str]) -> None:
    if kind == "shell":
        allowed = {"command", "arguments", "environment", "stdin"}
        block = c.members(p, value, "'shell'", allowed, required=("command",))
    else:
        allowed = {"language", "code", "source", "arguments", "environment", "stdin"}
        block = c.members(p, value, "'script'", allowed, required=("language",))
    if block is None:
        return
    if (
        kind == "shell"
        and "command" in block
        and c.string(f"{p}/command", block["command"], "'command'")
    ):
        c.template(f"{p}/command", block["command"], variables)
    if kind == "script":
        _check_script(c, p, block, variables)
    if "arguments" in block:
        arguments = block["arguments"]
        if not isinstance(arguments, list | Mapping) and not is_expression(arguments):
            c.add(f"{p}/arguments", "'arguments' must be a list, an object or an expression")
        c.template(f"{p}/arguments", arguments, variables)
    if "stdin" in block:
        c.template(f"{p}/stdin", block["stdin"], variables)
    if "environment" in block:
        environment = block["environment"]
        if not isinstance(environment, Mapping) and not is_expression(environment):
            c.add(f"{p}/environment", "'environment' must be an object or an expression")
        c.template(f"{p}/environment", environment, variables)


def _check_script(c: Checker, p: str, block: Mapping[str, Any], variables: frozenset[str]) -> None:
    if "language" in block and block["language"] not in LANGUAGES:
        c.add(f"{p}/language", "'language' must be one of " + ", ".join(LANGUAGES))
    if ("code" in block) == ("source" in block):
        c.add(p, "a script has exactly one of 'code' and 'source'")
    if "code" in block and c.string(f"{p}/code", block["code"], "'code'"):
        c.template(f"{p}/code", block["code"], variables)
    if "source" in block:
        source = c.members(f"{p}/source", block["source"], "'source'", {"name", "endpoint"})
        if source is not None:
            endpoint = source.get("endpoint")
            if isinstance(endpoint, Mapping):
                c.keys(f"{p}/source/endpoint", endpoint, {"uri"}, required=("uri",))
                endpoint = endpoint.get("uri")
            if not isinstance(endpoint, str) or not _source_path(endpoint):
                c.add(
                    f"{p}/source/endpoint",
                    "a script source must be a local file: an absolute path or a file:// URI",
                )


def _source_path(endpoint: str) -> str:
    """The local path of a script source, or "" when it is not one."""
    if endpoint.startswith("/"):
        return endpoint
    parsed = urlparse(endpoint)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost") and parsed.path:
        return unquote(parsed.path)
    return ""


# -- execution --------------------------------------------------------------------------


async def _run(rt: Runtime, call: TaskCall) -> StepResult:
    block: Mapping[str, Any] = call.definition["run"]
    if "workflow" in block:
        return StepResult(await _run_workflow(rt, call, block))
    kind = "shell" if "shell" in block else "script"
    return StepResult(await _run_process(rt, call, kind, block))


async def _run_workflow(rt: Runtime, call: TaskCall, block: Mapping[str, Any]) -> Any:
    spec: Mapping[str, Any] = block["workflow"]
    variables = rt.variables(call, call.input)
    texts = {
        key: str(rt.template(spec[key], call.input, variables)) if key in spec else ""
        for key in ("name", "version", "namespace")
    }
    given = spec.get("input", {})
    child_input = (
        rt.field(given, call.input, variables)
        if is_expression(given)
        else rt.template(given, call.input, variables)
    )
    if not isinstance(child_input, dict):
        raise WorkflowError(
            CONFIGURATION,
            400,
            title="Invalid workflow input",
            detail=f"the input of workflow '{texts['name']}' must be an object, "
            f"not {type(child_input).__name__}",
            instance=call.id,
        )
    wait = block.get("await", True) is not False
    child = ChildWorkflow(texts["name"], texts["version"], texts["namespace"], child_input, wait)
    result = await rt.hooks.run_workflow(child, call.id)
    if wait:
        return result
    return {"id": result, "workflow": child.name}


async def _run_process(rt: Runtime, call: TaskCall, kind: str, block: Mapping[str, Any]) -> Any:
    limits = rt.processes
    if kind not in limits.allow:
        raise WorkflowError(
            CONFIGURATION,
            400,
            title=f"`run: {kind}` is not enabled on this runner",
            detail=f"task {call.id} runs a {kind} process: run it on runners whose "
            f"{limits.setting} includes {kind}",
            instance=call.id,
        )
    spec: Mapping[str, Any] = block[kind]
    variables = rt.variables(call, call.input)
    arguments = _arguments(rt.template(spec.get("arguments", []), call.input, variables))
    environment = rt.template(spec.get("environment", {}), call.input, variables)
    if not isinstance(environment, Mapping):
        raise _invalid(call, "'environment' must evaluate to an object")
    env = child_environment({str(k): _word(v) for k, v in environment.items() if v is not None})
    stdin = None
    if "stdin" in spec:
        given = rt.template(spec["stdin"], call.input, variables)
        stdin = (given if isinstance(given, str) else json.dumps(given)).encode()
    files: dict[str, str] = {}
    if kind == "shell":
        command = str(rt.template(spec["command"], call.input, variables))
        argv = ["/bin/sh", "-c", _shell_script(command, arguments), "sh", *arguments]
    else:
        argv = _script_argv(rt, call, spec, variables, arguments, files)
    try:
        result = await run_process(
            argv,
            env,
            seconds=limits.max_seconds,
            max_output_bytes=limits.max_output_bytes,
            stdin=stdin,
            files=files,
        )
    except ProcessTimeoutError:
        raise WorkflowError(
            TIMEOUT,
            408,
            title="Process timed out",
            detail=f"the {kind} process of task {call.id} ran longer than "
            f"{limits.max_seconds:g}s (POLYFLEET_RUNNER_RUN_TIMEOUT)",
            instance=call.id,
        ) from None
    except ProcessOutputError as exc:
        raise WorkflowError(
            RUNTIME,
            500,
            title="Process output too large",
            detail=f"the {kind} process of task {call.id} wrote more than "
            f"{limits.max_output_bytes} bytes to {exc.stream} "
            "(POLYFLEET_RUNNER_RUN_OUTPUT_MAX_BYTES)",
            instance=call.id,
        ) from None
    except OSError as exc:
        raise WorkflowError(
            RUNTIME,
            500,
            title="Process could not start",
            detail=f"the {kind} process of task {call.id} could not start: {exc.strerror}",
            instance=call.id,
        ) from None
    mode = block.get("return", "stdout")
    if result.code != 0 and mode not in ("code", "all"):
        raise WorkflowError(
            RUNTIME,
            500,
            title=f"Process exited with code {result.code}",
            detail=result.stderr[-_DETAIL_CHARS:].strip(),
            instance=call.id,
        )
    outputs: dict[str, Any] = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "code": result.code,
        "all": {"code": result.code, "stdout": result.stdout, "stderr": result.stderr},
        "none": None,
    }
    return outputs[mode]


def _script_argv(
    rt: Runtime,
    call: TaskCall,
    spec: Mapping[str, Any],
    variables: Mapping[str, Any],
    arguments: list[str],
    files: dict[str, str],
) -> list[str]:
    if "code" in spec:
        code = str(rt.template(spec["code"], call.input, variables))
    else:
        source = spec["source"]["endpoint"]
        path = _source_path(source["uri"] if isinstance(source, Mapping) else source)
        try:
            code = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise _invalid(call, f"cannot read the script source {path}: {exc.strerror}") from None
    if spec["language"] == "python":
        return [sys.executable, "-I", "-c", code, *arguments]
    node = shutil.which("node")
    if node is None:
        raise WorkflowError(
            CONFIGURATION,
            400,
            title="No JavaScript runtime",
            detail=f"task {call.id} runs a js script, and this runner has no `node` on its PATH",
            instance=call.id,
        )
    # A file, not `node -e`: its argv is then a script's ([node, script, *arguments]).
    files[_JS_SCRIPT] = code
    return [node, _JS_SCRIPT, *arguments]


def _shell_script(command: str, arguments: list[str]) -> str:
    """The script `sh -c` runs: the arguments are its positional parameters ($1, ...).

    The shell never parses them. A command that reads no positional parameter gets them
    appended as words of its last line (``"$@"``), so ``command: ls`` with ``[-l]`` runs
    ``ls -l``; one that does (the spec's ``echo "ARGS are $1 $2"``) uses them itself.
    """
    if not arguments or _POSITIONAL.search(command):
        return command
    return f'{command.rstrip()} "$@"'


def _arguments(value: Any) -> list[str]:
    """Arguments as words: a list item by item; an object as `key value` (`key` for null)."""
    if isinstance(value, Mapping):
        words: list[str] = []
        for key, item in value.items():
            words.append(str(key))
            if item is not None:
                words.append(_word(item))
        return words
    if isinstance(value, list):
        return [_word(item) for item in value]
    return [_word(value)]


def _word(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _invalid(call: TaskCall, detail: str) -> WorkflowError:
    return WorkflowError(
        CONFIGURATION, 400, title="Invalid run task", detail=detail, instance=call.id
    )


RUN = TaskType("run", frozenset({"run"}), _check, _run)
