"""Task types and data flow that need no HTTP server."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from polyfleet.dsl import EXPRESSION, VALIDATION, DslError, Engine, WorkflowError
from tests.unit.dsl.support import Hooks, doc, run


async def test_set_replaces_the_data_and_evaluates_nested_expressions() -> None:
    document = doc(
        "do:\n"
        "  - shape:\n"
        "      set:\n"
        "        kind: circle\n"
        '        size: "${ .size * 2 }"\n'
        '        tags: ["${ .tag }", fixed, {deep: "${ .size }"}]\n'
    )
    assert await run(document, {"size": 3, "tag": "t"}) == {
        "kind": "circle",
        "size": 6,
        "tags": ["t", "fixed", {"deep": 3}],
    }


async def test_set_with_a_whole_expression_merges() -> None:
    document = doc('do:\n  - merge: {set: "${ . + {b: 2} }"}\n')
    assert await run(document, {"a": 1}) == {"a": 1, "b": 2}


async def test_nested_do_passes_data_through_and_reports_nested_ids() -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - first: {set: {n: 1}}\n"
        "  - outer:\n"
        "      do:\n"
        '        - inner: {set: {n: "${ .n + 1 }"}}\n'
        "        - deeper:\n"
        "            do:\n"
        '              - leaf: {set: {n: "${ .n * 10 }"}}\n'
    )
    assert await run(document, None, hooks=hooks) == {"n": 20}
    assert hooks.phases() == [
        ("RUNNING", "/do/0/first"),
        ("COMPLETED", "/do/0/first"),
        ("RUNNING", "/do/1/outer"),
        ("RUNNING", "/do/1/outer/do/0/inner"),
        ("COMPLETED", "/do/1/outer/do/0/inner"),
        ("RUNNING", "/do/1/outer/do/1/deeper"),
        ("RUNNING", "/do/1/outer/do/1/deeper/do/0/leaf"),
        ("COMPLETED", "/do/1/outer/do/1/deeper/do/0/leaf"),
        ("COMPLETED", "/do/1/outer/do/1/deeper"),
        ("COMPLETED", "/do/1/outer"),
    ]
    leaf = hooks.last("/do/1/outer/do/1/deeper/do/0/leaf")
    assert (leaf.name, leaf.type, leaf.input, leaf.output) == ("leaf", "set", {"n": 2}, {"n": 20})
    assert leaf.start_time is not None and leaf.end_time is not None
    assert leaf.start_time <= leaf.end_time


async def test_input_from_output_as_export_as_and_context() -> None:
    hooks = Hooks()
    document = doc(
        "input: {from: .order}\n"
        "do:\n"
        "  - pick:\n"
        "      input: {from: .items}\n"
        '      set: {count: "${ length }", first: "${ .[0] }", input: "${ $input }"}\n'
        '      output: {as: "${ {count, first} }"}\n'
        '      export: {as: "${ $context + {seen: .count, raw: $input} }"}\n'
        '  - use: {set: {total: "${ .count }", ctx: "${ $context }", wf: "${ $workflow.input }"}}\n'
        'output: {as: "${ .total }"}\n'
    )
    order = {"order": {"items": ["a", "b"]}}
    assert await run(document, order, hooks=hooks) == 2
    assert hooks.last("/do/0/pick").input == ["a", "b"]
    assert hooks.last("/do/0/pick").output == {"count": 2, "first": "a"}
    assert hooks.last("/do/1/use").output == {
        "total": 2,
        "ctx": {"seen": 2, "raw": ["a", "b"]},
        "wf": order,
    }


async def test_task_and_runtime_descriptors() -> None:
    document = doc(
        'do:\n  - me: {set: {name: "${ $task.name }", ref: "${ $task.reference }", '
        'at: "${ $task.startedAt.epoch.seconds > 0 }", rt: "${ $runtime.name }"}}\n'
    )
    assert await run(document) == {"name": "me", "ref": "/do/0/me", "at": True, "rt": "polyfleet"}


async def test_env_is_the_allow_list_and_jq_env_is_empty() -> None:
    document = doc(
        'do:\n  - e: {set: {region: "${ $env.REGION }", proc: "${ env }", var: "${ $ENV }"}}\n'
    )
    result = await run(document, env={"REGION": "eu"})
    assert result == {"region": "eu", "proc": {}, "var": {}}


async def test_switch_follows_the_matching_case_or_the_default() -> None:
    document = doc(
        "do:\n"
        "  - route:\n"
        "      switch:\n"
        "        - big: {when: .n > 10, then: large}\n"
        "        - other: {then: small}\n"
        "  - large: {set: {size: large}, then: end}\n"
        "  - small: {set: {size: small}}\n"
    )
    assert await run(document, {"n": 50}) == {"size": "large"}
    assert await run(document, {"n": 5}) == {"size": "small"}


async def test_switch_without_a_match_continues() -> None:
    document = doc(
        "do:\n"
        "  - route: {switch: [{big: {when: .n > 10, then: end}}]}\n"
        "  - next: {set: {ran: true}}\n"
    )
    assert await run(document, {"n": 1}) == {"ran": True}


async def test_for_iterates_with_each_at_and_chains_data() -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - sum:\n"
        "      for: {in: .xs, each: x, at: i}\n"
        "      do:\n"
        '        - add: {set: "${ . + {total: (.total + $x), seen: (.seen + [$i])} }"}\n'
    )
    result = await run(document, {"xs": [5, 6, 7], "total": 0, "seen": []}, hooks=hooks)
    assert result == {"xs": [5, 6, 7], "total": 18, "seen": [0, 1, 2]}
    ids = [r.id for r in hooks.reports if r.phase == "COMPLETED"]
    assert ids == [
        "/do/0/sum/for/0/do/0/add",
        "/do/0/sum/for/1/do/0/add",
        "/do/0/sum/for/2/do/0/add",
        "/do/0/sum",
    ]


async def test_for_defaults_and_while_stops_the_loop() -> None:
    document = doc(
        "do:\n"
        "  - loop:\n"
        "      for: {in: .xs}\n"
        "      while: $index < 2\n"
        "      do:\n"
        '        - keep: {set: "${ . + {got: (.got + [$item])} }"}\n'
    )
    assert await run(document, {"xs": ["a", "b", "c"], "got": []}) == {
        "xs": ["a", "b", "c"],
        "got": ["a", "b"],
    }


async def test_for_over_nothing_outputs_its_input() -> None:
    document = doc("do:\n  - loop: {for: {in: .none}, do: [{x: {set: {}}}]}\n")
    assert await run(document, {"a": 1}) == {"a": 1}


async def test_wait_accepts_iso_and_object_durations() -> None:
    document = doc(
        "do:\n  - a: {wait: PT0.05S}\n  - b: {wait: {milliseconds: 50}}\n"
        "  - c: {set: {done: true}}\n"
    )
    started = time.monotonic()
    assert await run(document) == {"done": True}
    assert time.monotonic() - started >= 0.1


async def test_raise_produces_an_rfc7807_error_naming_the_task() -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - check:\n"
        "      raise:\n"
        "        error:\n"
        "          type: https://example.com/errors/bad-order\n"
        "          status: 422\n"
        "          title: Bad order\n"
        '          detail: "${ \\"order \\" + .id + \\" is empty\\" }"\n'
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document, {"id": "o-1"}, hooks=hooks)
    assert caught.value.as_dict() == {
        "type": "https://example.com/errors/bad-order",
        "status": 422,
        "title": "Bad order",
        "detail": "order o-1 is empty",
        "instance": "/do/0/check",
    }
    failed = hooks.last("/do/0/check")
    assert failed.phase == "FAILED" and failed.error is not None
    assert failed.error.status == 422


async def test_raise_a_named_error_from_use_errors() -> None:
    document = doc(
        "use:\n  errors:\n"
        "    notFound: {type: https://example.com/nf, status: 404, title: Missing}\n"
        "do:\n  - r: {raise: {error: notFound}}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document)
    assert (caught.value.status, caught.value.title) == (404, "Missing")


async def test_try_catch_catches_filtered_errors_and_exposes_them() -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - guarded:\n"
        "      try:\n"
        "        - fail: {raise: {error: {type: https://e/x, status: 409, title: Conflict}}}\n"
        "        - never: {set: {ran: true}}\n"
        "      catch:\n"
        "        errors: {with: {type: https://e/x, status: 409}}\n"
        "        as: problem\n"
        '        when: "${ $problem.title == \\"Conflict\\" }"\n'
        "        do:\n"
        '          - recover: {set: {recovered: "${ $problem.status }", was: "${ .v }"}}\n'
    )
    assert await run(document, {"v": 1}, hooks=hooks) == {"recovered": 409, "was": 1}
    assert hooks.last("/do/0/guarded/try/0/fail").phase == "FAILED"
    assert hooks.last("/do/0/guarded/catch/do/0/recover").phase == "COMPLETED"
    assert hooks.last("/do/0/guarded").phase == "COMPLETED"
    assert "/do/0/guarded/try/1/never" not in {r.id for r in hooks.reports}


@pytest.mark.parametrize(
    "catch",
    [
        "{errors: {with: {status: 500}}}",
        "{errors: {with: {type: https://other}}}",
        "{when: '${ $error.status == 1 }'}",
        "{exceptWhen: '${ $error.status == 409 }'}",
    ],
)
async def test_errors_the_catch_does_not_accept_propagate(catch: str) -> None:
    document = doc(
        "do:\n"
        "  - guarded:\n"
        "      try:\n"
        "        - fail: {raise: {error: {type: https://e/x, status: 409}}}\n"
        f"      catch: {catch}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document)
    assert caught.value.status == 409
    assert caught.value.instance == "/do/0/guarded/try/0/fail"


async def test_catch_without_do_swallows_the_error() -> None:
    document = doc(
        "do:\n  - t: {try: [{f: {raise: {error: {type: x, status: 400}}}}], catch: {}}\n"
    )
    assert await run(document, {"keep": 1}) == {"keep": 1}


async def test_if_false_skips_the_task_and_reports_it_skipped() -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - maybe: {if: .go, set: {replaced: true}, then: end}\n"
        '  - always: {set: "${ . + {always: true} }"}\n'
    )
    assert await run(document, {"go": False}, hooks=hooks) == {"go": False, "always": True}
    skipped = hooks.last("/do/0/maybe")
    assert (skipped.phase, skipped.input, skipped.output) == (
        "SKIPPED",
        {"go": False},
        {"go": False},
    )
    assert [r.phase for r in hooks.reports if r.id == "/do/0/maybe"] == ["SKIPPED"]
    assert await run(document, {"go": True}) == {"replaced": True}


async def test_flow_directives_continue_exit_end_and_jump() -> None:
    document = doc(
        "do:\n"
        "  - init: {set: {n: 0}, then: count}\n"
        "  - skipped: {set: {skipped: true}}\n"
        '  - count: {set: "${ {n: (.n + 1)} }"}\n'
        "  - again:\n"
        "      switch:\n"
        "        - more: {when: .n < 3, then: count}\n"
        "        - done: {then: continue}\n"
        "  - inner:\n"
        "      do:\n"
        '        - leave: {set: "${ . + {left: true} }", then: exit}\n'
        "        - notRun: {set: {bad: true}}\n"
        '  - afterInner: {set: "${ . + {after: true} }", then: end}\n'
        "  - neverRun: {set: {bad: true}}\n"
    )
    assert await run(document) == {"n": 3, "left": True, "after": True}


async def test_end_in_a_nested_list_ends_the_workflow() -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - outer:\n"
        "      do:\n"
        "        - stop: {set: {stopped: true}, then: end}\n"
        "        - notRun: {set: {}}\n"
        "  - alsoNotRun: {set: {bad: true}}\n"
        'output: {as: "${ . + {out: true} }"}\n'
    )
    assert await run(document, hooks=hooks) == {"stopped": True, "out": True}
    assert hooks.last("/do/0/outer").phase == "COMPLETED"
    assert "/do/1/alsoNotRun" not in {r.id for r in hooks.reports}


async def test_call_agent_goes_through_the_hook_and_its_answer_is_usable() -> None:
    async def agent(name: str, message: str, task_id: str) -> str:
        return f"{name} answers {message}"

    hooks = Hooks(agent)
    document = doc(
        "do:\n"
        "  - ask: {call: agent, with: {agent: helper, message: '${ \"sum \" + (.a|tostring) }'}}\n"
        '  - use: {set: {answer: "${ . }"}}\n'
        "  - json: {call: agent, with: {agent: helper, message: {q: 1}}}\n"
    )
    result = await run(document, {"a": 2}, hooks=hooks)
    assert result == 'helper answers {"q": 1}'
    assert hooks.agent_calls[0] == ("helper", "sum 2", "/do/0/ask")
    assert hooks.last("/do/1/use").output == {"answer": "helper answers sum 2"}
    assert hooks.last("/do/0/ask").type == "call:agent"


async def test_twenty_tasks_report_in_order() -> None:
    hooks = Hooks()
    body = "do:\n" + "".join(f'  - step{i}: {{set: "${{ {{n: (.n + 1)}} }}"}}\n' for i in range(20))
    assert await run(doc(body), {"n": 0}, hooks=hooks) == {"n": 20}
    expected = []
    for i in range(20):
        expected += [("RUNNING", f"/do/{i}/step{i}"), ("COMPLETED", f"/do/{i}/step{i}")]
    assert hooks.phases() == expected
    assert [r.output for r in hooks.reports if r.phase == "COMPLETED"] == [
        {"n": i + 1} for i in range(20)
    ]
    assert len(hooks.checkpoints) == 20


async def test_expression_failures_are_expression_errors_naming_the_task() -> None:
    document = doc('do:\n  - ok: {set: "${ . }"}\n  - bad: {set: {x: "${ .a.b }"}}\n')
    with pytest.raises(WorkflowError) as caught:
        await run(document, {"a": 5})
    assert (caught.value.type, caught.value.status) == (EXPRESSION, 400)
    assert caught.value.instance == "/do/1/bad"
    assert ".a.b" in caught.value.detail


async def test_schemas_validate_input_and_output() -> None:
    document = doc(
        "input:\n"
        "  schema: {format: json, document: {type: object, required: [id]}}\n"
        "do:\n"
        "  - a:\n"
        "      set: {n: 1}\n"
        "      output: {schema: {document: {type: object, required: [n]}}}\n"
    )
    assert await run(document, {"id": 1}) == {"n": 1}
    with pytest.raises(WorkflowError) as caught:
        await run(document, {"nope": 1})
    assert (caught.value.type, caught.value.instance) == (VALIDATION, "/input")


async def test_a_failing_agent_call_is_a_catchable_runtime_error() -> None:
    async def agent(name: str, message: str, task_id: str) -> str:
        raise RuntimeError("agent execution failed")

    document = doc(
        "do:\n"
        "  - guarded:\n"
        "      try:\n"
        "        - ask: {call: agent, with: {agent: a, message: hi}}\n"
        "      catch:\n"
        "        errors: {with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime}}\n"
        "        do:\n"
        "          - note: {set: {failed: '${ $error.detail }'}}\n"
    )
    assert await run(document, hooks=Hooks(agent)) == {"failed": "agent execution failed"}


async def test_hook_failures_stop_the_run_and_are_not_workflow_errors() -> None:
    class Broken(Hooks):
        async def checkpoint(self, state: dict[str, Any]) -> None:
            raise OSError("heartbeat lost")

    document = doc(
        "do:\n  - t: {try: [{a: {set: {}}}], catch: {do: [{b: {set: {caught: true}}}]}}\n"
    )
    with pytest.raises(DslError) as caught:
        await run(document, hooks=Broken())
    assert not isinstance(caught.value, WorkflowError)
    assert "heartbeat lost" in str(caught.value)


async def test_an_engine_runs_once() -> None:
    async with httpx.AsyncClient() as client:
        engine = Engine(doc("do:\n  - a: {set: {}}\n"), Hooks(), http=client)
        await engine.run(None)
        with pytest.raises(DslError):
            await engine.run(None)
