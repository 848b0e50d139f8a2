"""A task result over POLYFLEET_MAX_OUTPUT_BYTES fails the execution with a clear error."""

from __future__ import annotations

from polyfleet import contract
from polyfleet.v1 import common_pb2
from tests.conftest import Fleet
from tests.integration.workflows.conftest import apply_workflow, finish, start


async def test_a_20_mib_task_result_fails_with_output_too_large(fleet: Fleet) -> None:
    await apply_workflow(
        fleet,
        "huge",
        """
        do:
          - big:
              set:
                blob: ${ "x" * 20971520 }
        """,
    )

    execution = await finish(fleet, (await start(fleet, "huge")).id)

    assert execution.status.phase == common_pb2.EXECUTION_PHASE_FAILED
    error = execution.status.error
    assert error.type == contract.OUTPUT_TOO_LARGE
    assert "the result of task /do/0/big is 20971" in error.message
    assert "the limit is 4194304 bytes" in error.message
    assert "AioRpcError" not in error.message
