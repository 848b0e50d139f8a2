"""jq expressions and durations, below the engine."""

from __future__ import annotations

import pytest

from polyfleet.dsl.durations import DurationError, parse_duration
from polyfleet.dsl.expressions import (
    ExpressionError,
    check,
    evaluate,
    evaluate_field,
    evaluate_template,
    is_expression,
)


def test_is_expression_means_a_whole_dollar_brace_string() -> None:
    assert is_expression("${ .a }")
    assert is_expression("  ${.a}  ")
    assert not is_expression("prefix ${ .a }")
    assert not is_expression(".a")
    assert not is_expression(3)


def test_evaluate_binds_only_the_variables_given() -> None:
    assert evaluate(".a + $input.b", {"a": 1}, {"input": {"b": 2}, "context": {}}) == 3
    assert evaluate("$context", None, {"context": {"x": 1}}) == {"x": 1}
    assert evaluate(". as $local | $local", 5, {}) == 5


def test_first_result_or_null() -> None:
    assert evaluate(".[]", [1, 2], {}) == 1
    assert evaluate("empty", None, {}) is None


def test_errors_name_the_expression() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate('error("boom")', None, {})
    assert "boom" in str(caught.value)
    assert 'error("boom")' in str(caught.value)
    assert check(".a |", ["input"]) is not None
    assert "$x is not defined" in (check("$x", ["input"]) or "")
    assert check("$x", ["x"]) is None


def test_the_process_environment_is_not_reachable() -> None:
    assert evaluate("env", None, {}) == {}
    assert evaluate("$ENV", None, {}) == {}


def test_fields_take_bare_expressions_and_templates() -> None:
    assert evaluate_field(".a", {"a": 1}, {}) == 1
    assert evaluate_field("${ .a }", {"a": 1}, {}) == 1
    assert evaluate_field({"b": "${ .a }"}, {"a": 1}, {}) == {"b": 1}
    assert evaluate_template({"x": [".a", "${ .a }"]}, {"a": 2}, {}) == {"x": [".a", 2]}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT1S", 1),
        ("PT0.25S", 0.25),
        ("PT2M", 120),
        ("P1DT2H", 93600),
        ("P1W", 604800),
        ({"seconds": 1, "milliseconds": 500}, 1.5),
        ({"minutes": 1}, 60),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["P1M", "P1Y", "PT", "P", "1s", {"weeks": 1}, {}, 5])
def test_unsupported_durations(value: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(value)
