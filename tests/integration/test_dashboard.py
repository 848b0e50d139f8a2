"""The dashboard in a real headless Chromium, against a real secure fleet.

Executions are created over gRPC while the page is open: the page must learn of them from
the change stream (no reload), follow their event streams, and cancel them through the
HTTP API with the token typed into its form. The screenshots the README and docs show are
taken here (docs/images/dashboard-*.png).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from google.protobuf import json_format, struct_pb2
from playwright.async_api import Locator, Page, expect
from temporalio.client import Client

from polyfleet.config import ExecutionSettings, HttpSettings
from polyfleet.manifest.loader import load_resources
from polyfleet.roles import Role
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_pb2,
    common_pb2,
    workflow_execution_pb2,
    workflow_pb2,
)
from tests.browser import browser_page
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping
from tests.helpers import free_port, wait_terminal

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "images"
ORDER_FLOW = REPO / "examples" / "workflows" / "order-flow.yaml"
EXAMPLE_ASSISTANT = REPO / "examples" / "agents" / "assistant.yaml"
# Playwright's waits, in milliseconds: generous for a loaded 2-core machine.
WAIT = 30_000

ANSWER = (
    "polyfleet runs AI agent executions durably on Temporal: an orchestrator decides, "
    "runners do the work, and every execution streams its progress live to whoever watches."
)

# Records every text the answer element shows, from before the page's own script runs, so
# the test can tell a partial answer (streamed) from one that appeared all at once.
RECORD_ANSWERS = """
window.__answers = [];
new MutationObserver(() => {
  const node = document.querySelector('[data-testid="answer"]');
  const text = node ? node.textContent : null;
  if (text !== null && window.__answers[window.__answers.length - 1] !== text) {
    window.__answers.push(text);
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def streaming_assistant(chunk_delay_ms: int) -> agent_pb2.Agent:
    """The agent `assistant` (as the order-flow workflow calls it), answering word by word."""
    agent = scripted_agent("assistant", **{"(?i)what is polyfleet": ANSWER, "(?i)explode": ""})
    agent.model.scripted.chunk_words = 2
    agent.model.scripted.chunk_delay_ms = chunk_delay_ms
    agent.model.scripted.rules[1].error = "the scripted model was told to fail"
    return agent


def weather_assistant() -> agent_pb2.Agent:
    """The example assistant and its weather tool (MCP), answering slowly, word by word."""
    [agent] = [r for r in load_resources(EXAMPLE_ASSISTANT) if isinstance(r, agent_pb2.Agent)]
    script = agent.model.scripted
    script.chunk_words = 2
    script.chunk_delay_ms = 150
    del script.rules[:]
    rule = script.rules.add(
        pattern="(?i)weather",
        reply="In Paris it is {tool_result}: a fine day to watch an agent type its answer, "
        "two words at a time, while the dashboard shows every word as it arrives.",
    )
    rule.tool_call.name = "get_weather"
    rule.tool_call.arguments.update({"city": "Paris"})
    return agent


async def create_agent_execution(
    fleet: Fleet, message: str, **labels: str
) -> agent_execution_pb2.AgentExecution:
    """Start an execution of `assistant` over gRPC, as the fleet's admin."""
    return await fleet.executions.CreateAgentExecution(
        agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(
                agent="assistant", message=message, labels=labels
            )
        )
    )


async def open_dashboard(page: Page, fleet: Fleet, role: Role = Role.ADMIN) -> list[str]:
    """Load the page, enter ``role``'s token in its form and wait for the live list.

    Returns:
        The page's script errors and console errors (a refused script, style or connection
        included) from now on; an HTTP error status the page handles is not one.

    """
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    response = await page.goto(f"https://{fleet.orchestrator.http_address}/")
    assert response is not None and response.ok
    assert "default-src 'self'" in response.headers["content-security-policy"]
    await enter_token(page, fleet, role)
    return errors


async def enter_token(page: Page, fleet: Fleet, role: Role) -> None:
    """Type ``role``'s token into the page's form; the list then goes live."""
    assert fleet.credentials is not None
    await page.get_by_label("Token", exact=True).fill(fleet.credentials.tokens[role])
    await page.get_by_role("button", name="Use token").click()
    await expect(page.get_by_test_id("live")).to_have_text("live", timeout=WAIT)


def row(page: Page, execution_id: str) -> Locator:
    """The list's row of one execution."""
    return page.locator(f'[data-testid="execution-row"][data-id="{execution_id}"]')


async def test_an_execution_created_over_grpc_appears_and_its_answer_streams_in(
    fleet: Fleet,
) -> None:
    await fleet.agents.CreateAgent(agent_pb2.CreateAgentRequest(agent=weather_assistant()))
    async with browser_page(ignore_https_errors=True) as page:
        await page.add_init_script(RECORD_ANSWERS)
        errors = await open_dashboard(page, fleet)
        created = await create_agent_execution(fleet, "What's the weather in Paris?", team="docs")

        # No reload: the change stream adds the row.
        await expect(row(page, created.id)).to_have_count(1, timeout=WAIT)
        await row(page, created.id).click()
        assert page.url.endswith(f"#/executions/{created.id}")
        await expect(page.get_by_test_id("detail-phase")).to_have_text("COMPLETED", timeout=WAIT)
        done = await wait_terminal(fleet.client.agent_executions, created.id)
        full = done.status.output_text
        await expect(page.get_by_test_id("answer")).to_have_text(full)

        seen: list[str] = await page.evaluate("window.__answers")
        partial = [text for text in seen if text and text != full and full.startswith(text)]
        assert partial, f"no partial answer was shown before the full one: {seen}"
        # The tool call, usage and the phase timeline come from the same stream.
        [call] = done.status.tool_calls
        tool = page.get_by_test_id("tool-call")
        await expect(tool).to_contain_text(call.name)
        await expect(tool).to_contain_text('"city": "Paris"')
        await expect(tool).to_contain_text(call.result)
        await expect(page.get_by_test_id("usage")).to_contain_text("Model calls")
        transitions = page.get_by_test_id("transition")
        await expect(transitions).to_have_count(len(done.status.transitions))
        await expect(transitions.last).to_contain_text("COMPLETED")
        await page.screenshot(path=IMAGES / "dashboard-agent.png")

        # The list learnt the new phase from the change stream too.
        await page.get_by_role("link", name="← All executions").first.click()
        await expect(row(page, created.id).get_by_test_id("phase")).to_have_text("COMPLETED")
        assert errors == []


async def test_a_workflow_execution_shows_its_task_tree(fleet: Fleet) -> None:
    await fleet.agents.CreateAgent(agent_pb2.CreateAgentRequest(agent=streaming_assistant(20)))
    [order_flow] = [r for r in load_resources(ORDER_FLOW) if isinstance(r, workflow_pb2.Workflow)]
    await fleet.workflows.ApplyWorkflow(workflow_pb2.ApplyWorkflowRequest(workflow=order_flow))
    async with browser_page(ignore_https_errors=True) as page:
        errors = await open_dashboard(page, fleet)
        data = {"customer": "Ada", "items": [{"sku": "book", "qty": 2}, {"sku": "pen", "qty": 5}]}
        execution = workflow_execution_pb2.WorkflowExecution(workflow=order_flow.name)
        execution.input.CopyFrom(json_format.ParseDict(data, struct_pb2.Struct()))
        created = await fleet.workflow_executions.CreateWorkflowExecution(
            workflow_execution_pb2.CreateWorkflowExecutionRequest(execution=execution)
        )
        failing = await create_agent_execution(fleet, "explode, please", team="ops")
        answered = await create_agent_execution(fleet, "What is polyfleet?", team="docs")

        await expect(row(page, created.id)).to_have_count(1, timeout=WAIT)
        await row(page, created.id).click()
        await expect(page.get_by_test_id("detail-phase")).to_have_text("COMPLETED", timeout=WAIT)
        done = await wait_terminal(fleet.client.workflow_executions, created.id)
        assert done.status.tasks, "the workflow reported no tasks"
        tree = page.get_by_test_id("task-tree")
        for task in done.status.tasks:
            item = tree.locator(f'[data-testid="task"][data-id="{task.id}"]')
            phase = common_pb2.TaskPhase.Name(task.phase).removeprefix("TASK_PHASE_")
            await expect(item.get_by_test_id("task-phase").first).to_have_text(phase)
            if task.HasField("output"):
                output = json_format.MessageToDict(task.output)
                # Every top-level key of the output is shown (the <pre> holds it as JSON).
                for key in output if isinstance(output, dict) else []:
                    await expect(item.get_by_test_id("task-output").first).to_contain_text(key)
        # The `call: agent` task links to the agent execution it started.
        [ask] = [task for task in done.status.tasks if task.agent_execution_id]
        await expect(tree.get_by_role("link", name=ask.agent_execution_id)).to_have_count(1)
        await expect(page.get_by_test_id("workflow-output")).to_contain_text("Ship to Ada")
        await page.screenshot(path=IMAGES / "dashboard-workflow.png", full_page=True)

        await page.get_by_role("link", name="← All executions").first.click()
        await expect(row(page, failing.id).get_by_test_id("phase")).to_have_text(
            "FAILED", timeout=WAIT
        )
        for completed in (ask.agent_execution_id, answered.id):
            badge = row(page, completed).get_by_test_id("phase")
            await expect(badge).to_have_text("COMPLETED", timeout=WAIT)
        await page.screenshot(path=IMAGES / "dashboard-list.png")

        # Filters: by kind, label, agent or workflow name, phase.
        rows = page.get_by_test_id("execution-row")
        await page.get_by_label("Kind").select_option("workflow")
        await expect(rows).to_have_count(1)
        await expect(row(page, created.id)).to_have_count(1)
        await page.get_by_label("Kind").select_option("")
        await page.get_by_label("Label").fill("team=ops")
        await expect(rows).to_have_count(1)
        await expect(row(page, failing.id)).to_have_count(1)
        await page.get_by_label("Label").fill("")
        await page.get_by_label("Agent or workflow").fill("order")
        await expect(rows).to_have_count(1)
        await expect(row(page, created.id)).to_have_count(1)
        await page.get_by_label("Agent or workflow").fill("")
        await page.get_by_label("Phase").select_option("COMPLETED")
        await expect(rows).to_have_count(3)
        await expect(row(page, failing.id)).to_have_count(0)

        # The failed execution's detail says why.
        await page.get_by_label("Phase").select_option("FAILED")
        await row(page, failing.id).click()
        stored = await wait_terminal(fleet.client.agent_executions, failing.id)
        await expect(page.get_by_test_id("error")).to_contain_text(stored.status.error.type)
        await expect(page.get_by_test_id("error")).to_contain_text(stored.status.error.message)
        assert errors == []


async def test_a_silent_execution_is_flagged_stuck_and_the_cancel_button_cancels_it(
    temporal_client: Client, tmp_path: Path
) -> None:
    stuck_after = ExecutionSettings(stuck_after=timedelta(seconds=2))
    temporal_ui = "http://127.0.0.1:8233"
    http = HttpSettings(address=f"127.0.0.1:{free_port()}", temporal_ui_url=temporal_ui)
    fleet = await start_fleet(temporal_client, tmp_path, executions=stuck_after, http=http)
    async with stopping(fleet), browser_page(ignore_https_errors=True) as page:
        # The first words come after 10 s: RUNNING, without any event in between.
        await fleet.agents.CreateAgent(
            agent_pb2.CreateAgentRequest(agent=streaming_assistant(10_000))
        )
        created = await create_agent_execution(fleet, "What is polyfleet?")
        # A reader may look but not cancel: the button says why and stays disabled.
        errors = await open_dashboard(page, fleet, Role.READER)
        await expect(row(page, created.id).get_by_test_id("stuck")).to_have_count(1, timeout=WAIT)
        await row(page, created.id).click()
        await expect(page.get_by_test_id("detail-phase")).to_have_text("RUNNING", timeout=WAIT)
        workflow_page = f"{temporal_ui}/namespaces/{temporal_client.namespace}/workflows/"
        await expect(page.get_by_role("link", name="Temporal UI")).to_have_attribute(
            "href", workflow_page + quote(created.workflow_id, safe="")
        )
        cancel = page.get_by_role("button", name="Cancel")
        await cancel.click()
        await expect(page.get_by_test_id("cancel-error")).to_contain_text("operator")
        await expect(cancel).to_be_disabled()

        # An operator's token, entered after forgetting the reader's, may.
        await page.get_by_role("button", name="Forget token").click()
        await enter_token(page, fleet, Role.OPERATOR)
        await expect(page.get_by_test_id("detail-phase")).to_have_text("RUNNING", timeout=WAIT)
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.get_by_test_id("detail-phase")).to_have_text("CANCELLED", timeout=WAIT)
        await expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
        await expect(page.get_by_test_id("transition").last).to_contain_text(
            re.compile(r"CANCELLED.*dev-operator")
        )
        assert errors == []

        stored = await fleet.executions.GetAgentExecution(
            agent_execution_pb2.GetAgentExecutionRequest(id=created.id)
        )
        assert stored.status.phase == common_pb2.EXECUTION_PHASE_CANCELLED
        assert stored.cancel_requested_by.subject == "dev-operator"
