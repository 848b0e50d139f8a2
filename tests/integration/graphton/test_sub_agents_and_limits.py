"""Sub-agents, structured output, bring-your-own graphs and execution limits."""

from __future__ import annotations

from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct

from polyfleet.v1 import agent_pb2, common_pb2
from tests.conftest import Fleet, scripted_agent
from tests.integration.graphton.conftest import apply, create, openai_agent, wait_terminal
from tests.integration.graphton.fake_openai import FakeOpenAI, Recorded, Reply, content_text

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
FAILED = common_pb2.EXECUTION_PHASE_FAILED


def _struct(value: dict[str, Any]) -> Struct:
    struct = Struct()
    struct.update(value)
    return struct


async def test_sub_agent_run_is_reported_with_its_output(gfleet: Fleet) -> None:
    def respond(request: Recorded) -> Reply:
        system = content_text(request.messages[0])
        if "researcher" in system:  # the sub-agent's own model calls
            return Reply(text=f"Research says: {request.last_user_content()} is 42")
        tool_results = [m for m in request.messages if m.get("role") == "tool"]
        if not tool_results:
            return Reply(tool_calls=[("researcher", {"input": "the answer"})])
        return Reply(text=f"Final: {content_text(tool_results[-1])}")

    with FakeOpenAI(respond) as server:
        agent = openai_agent("boss", server)
        agent.sub_agents.append(
            agent_pb2.SubAgent(
                name="researcher",
                description="Looks things up.",
                instructions="You are the researcher.",
            )
        )
        await apply(gfleet, agent)
        created = await create(gfleet, "boss", "What is the answer?")
        done = await wait_terminal(gfleet, created.id)

    assert done.status.phase == COMPLETED, done.status.error
    assert done.status.output_text == "Final: Research says: the answer is 42"
    (run,) = done.status.sub_agent_executions
    assert run.name == "researcher"
    assert run.input == "the answer"
    assert run.output == "Research says: the answer is 42"
    assert run.phase == COMPLETED
    assert run.HasField("start_time") and run.HasField("end_time")
    assert not run.HasField("error")
    (call,) = done.status.tool_calls
    assert (call.name, call.result) == ("researcher", "Research says: the answer is 42")
    # Three model calls: parent, sub-agent, parent again; all counted.
    assert done.status.usage.model_calls == 3
    # The sub-agent's tokens are not streamed as the parent's answer.
    assert [m.content for m in done.status.messages if m.role == 2] == [
        "Final: Research says: the answer is 42"
    ]


async def test_scripted_sub_agent_failure_is_recorded_and_fails_the_execution(
    gfleet: Fleet,
) -> None:
    agent = scripted_agent(name="parent")
    agent.model.scripted.rules.add(
        pattern="delegate",
        reply="never",
        tool_call=agent_pb2.ScriptedToolCall(name="helper", arguments=_struct({"input": "help"})),
    )
    helper_model = agent_pb2.ModelConfig(
        provider="scripted",
        scripted=agent_pb2.ScriptedModel(default_reply="x", rules=[]),
    )
    helper_model.scripted.rules.add(pattern=".", error="helper model is down")
    agent.sub_agents.append(
        agent_pb2.SubAgent(name="helper", description="Helps.", model=helper_model)
    )
    await apply(gfleet, agent)
    created = await create(gfleet, "parent", "delegate this")
    done = await wait_terminal(gfleet, created.id)

    assert done.status.phase == FAILED
    assert done.status.error.type == "ModelProviderError"
    assert "helper model is down" in done.status.error.message
    (run,) = done.status.sub_agent_executions
    assert run.phase == FAILED
    assert run.error.type == "ModelProviderError"


async def test_structured_output_is_validated_into_output(gfleet: Fleet) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
        "required": ["city", "temperature"],
    }
    agent = scripted_agent(name="structured")
    agent.model.scripted.default_reply = '{"city": "Paris", "temperature": 21}'
    agent.output_schema.CopyFrom(_struct(schema))
    bad = scripted_agent(name="unstructured")
    bad.model.scripted.default_reply = '{"city": "Paris"}'
    bad.output_schema.CopyFrom(_struct(schema))
    await apply(gfleet, agent)
    await apply(gfleet, bad)

    done = await wait_terminal(gfleet, (await create(gfleet, "structured", "weather?")).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert MessageToDict(done.status.output) == {"city": "Paris", "temperature": 21}
    assert done.status.output_text == '{"city": "Paris", "temperature": 21}'

    failed = await wait_terminal(gfleet, (await create(gfleet, "unstructured", "weather?")).id)
    assert failed.status.phase == FAILED
    assert failed.status.error.type == "StructuredOutputInvalid"
    assert "'temperature' is a required property" in failed.status.error.message


async def test_bring_your_own_graph_streams_like_the_built_in_agent(gfleet: Fleet) -> None:
    first = scripted_agent(name="byo")  # the model is unused: the graph has its own
    first.instructions = "Be brief."
    first.graph = "tests.integration.graphton.byo_graph:graph"
    await apply(gfleet, first)
    one = await wait_terminal(gfleet, (await create(gfleet, "byo", "hello graph")).id)
    assert one.status.phase == COMPLETED, one.status.error
    assert one.status.output_text == "graph saw 2 messages, last: hello graph"
    two = await wait_terminal(
        gfleet, (await create(gfleet, "byo", "again", session_id=one.session_id)).id
    )
    # System instructions + the first turn (user, assistant) + this message.
    assert two.status.output_text == "graph saw 4 messages, last: again"
    assert two.status.usage.model_calls == 1


async def test_timeout_and_max_steps_fail_with_their_types(gfleet: Fleet) -> None:
    slow = scripted_agent(name="slow")
    slow.model.scripted.default_reply = "a b c d e f g h i j"
    slow.model.scripted.chunk_words = 1
    slow.model.scripted.chunk_delay_ms = 500
    slow.limits.timeout.CopyFrom(Duration(seconds=1))
    await apply(gfleet, slow)

    def loop_forever(_: Recorded) -> Reply:
        return Reply(tool_calls=[("missing_tool", {})])

    with FakeOpenAI(loop_forever) as server:
        looping = openai_agent("looping", server)
        looping.limits.max_steps = 4
        await apply(gfleet, looping)
        timed_out = await wait_terminal(gfleet, (await create(gfleet, "slow", "go")).id)
        exhausted = await wait_terminal(gfleet, (await create(gfleet, "looping", "go")).id)

    assert timed_out.status.phase == FAILED
    assert timed_out.status.error.type == "AgentTimeout"
    assert "1 s" in timed_out.status.error.message
    assert exhausted.status.phase == FAILED
    assert exhausted.status.error.type == "MaxStepsExceeded"
    # Calls to an unknown tool are reported as failed, and the model is told.
    assert exhausted.status.tool_calls
    assert all(
        c.status == common_pb2.TOOL_CALL_STATUS_FAILED and "no tool named" in c.error
        for c in exhausted.status.tool_calls
    )
