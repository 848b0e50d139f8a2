"""jq runtime expressions: `${ ... }` strings, compiled once and evaluated with `$` variables.

Every expression is wrapped as ``.[1] as {$a, $b} | .[0] | (EXPR)`` and fed
``[data, {a: ..., b: ...}]``. Binding variables through the input instead of jq's
compile-time ``args`` lets one compiled program serve every evaluation (compiling costs
about a millisecond; evaluating a cached program about ten microseconds).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from functools import lru_cache
from typing import Any

# The binding ships no type information; its surface here is compile/input_value/all.
import jq  # type: ignore[import-not-found, import-untyped, unused-ignore]

#: Variables every expression may use; tasks add `$item`/`$index`, `$error`, `$output`.
BASE_VARIABLES = ("input", "context", "env", "secrets", "task", "workflow", "runtime")

_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# jq's `env` and `$ENV` expose the runner's process environment (API keys included);
# workflow authors get the allow-listed `$env` instead.
_PRELUDE = "def env: {}; {} as $ENV | "
_LOCATION = re.compile(r" at <top-level>, line (\d+), column (\d+):?")


class ExpressionError(Exception):
    """An expression failed to compile or to evaluate."""

    def __init__(self, expression: str, message: str) -> None:
        self.expression = expression
        self.message = message
        super().__init__(f"{message} in expression `{expression}`")


def is_expression(value: Any) -> bool:
    """Whether ``value`` is a string made entirely of one `${ ... }` expression."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text.startswith("${") and text.endswith("}")


def expression_text(value: str) -> str:
    """The jq source of an expression field: `${ .a }` and a bare `.a` both give `.a`."""
    text = value.strip()
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1].strip()
    return text


def _clean(message: str) -> str:
    """First line of a jq error, with the location mapped back onto the user's text."""
    first = message.strip().splitlines()[0] if message.strip() else "invalid expression"
    first = first.removeprefix("jq: error: ").removeprefix("jq: error (at <unknown>): ")

    def relocate(match: re.Match[str]) -> str:
        # The user's text starts on line 2 of the wrapped program.
        line = max(int(match.group(1)) - 1, 1)
        return f" (line {line}, column {match.group(2)})"

    return _LOCATION.sub(relocate, first)


@lru_cache(maxsize=4096)
def _compile(expression: str, names: tuple[str, ...]) -> Any:
    binding = f".[1] as {{{', '.join('$' + n for n in names)}}} | " if names else ""
    try:
        return jq.compile(f"{_PRELUDE}{binding}.[0] | (\n{expression}\n)")
    except ValueError as exc:
        raise ExpressionError(expression, _clean(str(exc))) from None


def check(expression: str, variables: Collection[str]) -> str | None:
    """Compile ``expression`` with ``variables`` in scope; the problem, or None when valid."""
    if not expression.strip():
        return "empty expression"
    try:
        _compile(expression, tuple(sorted(set(variables))))
    except ExpressionError as exc:
        return exc.message
    return None


def evaluate(expression: str, data: Any, variables: Mapping[str, Any]) -> Any:
    """Evaluate jq ``expression`` over ``data``.

    Args:
        expression: jq source, without the `${ }`.
        data: the value `.` stands for.
        variables: values for `$name` variables; only the ones the text mentions are bound.

    Returns:
        The first result (None when the expression produces nothing).

    Raises:
        ExpressionError: the expression does not compile or fails at run time.
    """
    names = tuple(sorted({n for n in _VARIABLE.findall(expression) if n in variables}))
    program = _compile(expression, names)
    try:
        results = program.input_value([data, {n: variables[n] for n in names}]).all()
    except (ValueError, TypeError) as exc:
        raise ExpressionError(expression, _clean(str(exc))) from None
    return results[0] if results else None


def evaluate_field(value: Any, data: Any, variables: Mapping[str, Any]) -> Any:
    """Evaluate an expression-typed field (`if`, `when`, `in`, `input.from`, `output.as`, ...).

    A string is an expression with or without `${ }`; an object is a template.
    """
    if isinstance(value, str):
        return evaluate(expression_text(value), data, variables)
    return evaluate_template(value, data, variables)


def evaluate_template(value: Any, data: Any, variables: Mapping[str, Any]) -> Any:
    """Evaluate every `${ }` string inside ``value``, recursively; other values stay as is."""
    if isinstance(value, str):
        return evaluate(expression_text(value), data, variables) if is_expression(value) else value
    if isinstance(value, Mapping):
        return {k: evaluate_template(v, data, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate_template(v, data, variables) for v in value]
    return value


def iter_strings(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """Each string inside ``value``, recursively, as (JSON pointer, string)."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, f"{pointer}/{escape(str(key))}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{pointer}/{index}")


def iter_template_expressions(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """Each `${ }` string inside ``value`` as (JSON pointer, jq source)."""
    for at, text in iter_strings(value, pointer):
        if is_expression(text):
            yield at, expression_text(text)


def iter_embedded(value: Any, pointer: str) -> Iterator[str]:
    """Pointers of strings that contain `${` without being one whole expression.

    The DSL's strict mode evaluates only whole-value expressions; such strings would be
    sent literally, which is never what their author meant.
    """
    for at, text in iter_strings(value, pointer):
        if "${" in text and not is_expression(text):
            yield at


def mentions(value: Any, variable: str) -> bool:
    """Whether any expression text inside ``value`` mentions `$variable`."""
    needle = re.compile(r"\$" + re.escape(variable) + r"\b")
    if isinstance(value, str):
        return bool(needle.search(value))
    if isinstance(value, Mapping):
        return any(mentions(v, variable) for v in value.values())
    if isinstance(value, list):
        return any(mentions(v, variable) for v in value)
    return False


def escape(token: str) -> str:
    """Escape one JSON pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")
