"""temporalio's activation payload walks: skipped where they change nothing, kept elsewhere."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import ClassVar

import pytest
import temporalio.bridge.worker as bridge_worker
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import DataConverter, PayloadCodec

from orchestrator.activation_payloads import skip_noop_payload_walks, walks_have_effect


@dataclasses.dataclass(frozen=True)
class _CountingConverter(DataConverter):
    """temporalio's default converter, counting the payloads its codec steps are handed."""

    seen: ClassVar[list[int]] = []

    async def _decode_payload_sequence(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.seen.append(len(payloads))
        return await super()._decode_payload_sequence(payloads)

    async def _encode_payload_sequence(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.seen.append(len(payloads))
        return await super()._encode_payload_sequence(payloads)


class _Reversing(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata=p.metadata, data=p.data[::-1]) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata=p.metadata, data=p.data[::-1]) for p in payloads]


def _activation() -> WorkflowActivation:
    activation = WorkflowActivation(run_id="run")
    signal = activation.jobs.add().signal_workflow
    signal.signal_name = "poke"
    signal.input.add(metadata={"encoding": b"json/plain"}, data=b'"abc"')
    return activation


def _completion() -> WorkflowActivationCompletion:
    completion = WorkflowActivationCompletion(run_id="run")
    command = completion.successful.commands.add().complete_workflow_execution
    command.result.metadata["encoding"] = b"json/plain"
    command.result.data = b'"abc"'
    return completion


@pytest.fixture
def skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registers temporalio's own functions to be put back after the test.
    monkeypatch.setattr(bridge_worker, "decode_activation", bridge_worker.decode_activation)
    monkeypatch.setattr(bridge_worker, "encode_completion", bridge_worker.encode_completion)
    assert skip_noop_payload_walks()


def test_the_locked_temporalio_has_the_entry_points_known(skipping: None) -> None:
    # A temporalio whose entry points change keeps its walks; this says it happened.
    decode = bridge_worker.decode_activation
    assert skip_noop_payload_walks()  # idempotent: not wrapped twice
    assert bridge_worker.decode_activation is decode


async def test_no_codec_no_storage_skips_the_walks(skipping: None) -> None:
    converter = _CountingConverter()
    assert not walks_have_effect(converter)
    _CountingConverter.seen.clear()
    activation, completion = _activation(), _completion()

    decoded = await bridge_worker.decode_activation(activation, converter, False, 1)
    encoded = await bridge_worker.encode_completion(completion, converter, False, 1)

    assert _CountingConverter.seen == []
    assert decoded.payload_count == 0 and encoded.payload_count == 0
    assert activation == _activation() and completion == _completion()


async def test_without_the_skip_the_walks_visit_every_payload() -> None:
    # The same calls with temporalio's own functions (an orchestrator started by an
    # earlier test may have wrapped them): the skip above is not vacuous.
    decode = inspect.unwrap(bridge_worker.decode_activation)
    encode = inspect.unwrap(bridge_worker.encode_completion)
    _CountingConverter.seen.clear()
    await decode(_activation(), _CountingConverter(), False, 1)
    await encode(_completion(), _CountingConverter(), False, 1)
    assert _CountingConverter.seen == [1, 1]


async def test_a_codec_still_decodes_and_encodes_every_payload(skipping: None) -> None:
    converter = dataclasses.replace(DataConverter.default, payload_codec=_Reversing())
    assert walks_have_effect(converter)
    activation, completion = _activation(), _completion()

    await bridge_worker.decode_activation(activation, converter, False, 1)
    await bridge_worker.encode_completion(completion, converter, False, 1)

    assert activation.jobs[0].signal_workflow.input[0].data == b'"cba"'
    assert completion.successful.commands[0].complete_workflow_execution.result.data == b'"cba"'
