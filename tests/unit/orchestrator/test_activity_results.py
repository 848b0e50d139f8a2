"""Decoding runner results in the workflow: anything off-contract is InvalidActivityResult."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from orchestrator.workflows.common import InvalidActivityResultError, decode_result
from polyfleet import contract
from polyfleet.v1 import activities_pb2

_CONVERTER = DataConverter.default.payload_converter


def _decode(payload: Payload) -> activities_pb2.ExecuteGraphtonOutput:
    return decode_result(
        _CONVERTER,
        contract.EXECUTE_GRAPHTON,
        "gpu-pool",
        payload,
        activities_pb2.ExecuteGraphtonOutput,
    )


def test_a_contract_result_decodes() -> None:
    output = activities_pb2.ExecuteGraphtonOutput(final_message_id="m1", message_count=2)
    assert _decode(_CONVERTER.to_payload(output)) == output


@pytest.mark.parametrize(
    ("payload", "received"),
    [
        (
            Payload(metadata={"encoding": b"json/plain"}, data=b'{"finalMessageId": "m1"}'),
            "encoding 'json/plain'",
        ),
        (Payload(metadata={"encoding": b"xml/soap"}, data=b"<x/>"), "encoding 'xml/soap'"),
        (Payload(data=b"{}"), "encoding '<none>'"),
        (
            Payload(
                metadata={
                    "encoding": b"json/protobuf",
                    "messageType": b"polyfleet.v1.ExecuteGraphtonOutput",
                },
                data=b"not json",
            ),
            "messageType 'polyfleet.v1.ExecuteGraphtonOutput'",
        ),
        (
            Payload(
                metadata={"encoding": b"json/protobuf", "messageType": b"acme.v1.Unknown"},
                data=b"{}",
            ),
            "messageType 'acme.v1.Unknown'",
        ),
        (
            _CONVERTER.to_payload(activities_pb2.EnsureThreadOutput(thread_id="t")),
            "messageType 'polyfleet.v1.EnsureThreadOutput'",
        ),
    ],
    ids=["json-plain", "unknown-encoding", "no-encoding", "bad-json", "unknown-type", "wrong-type"],
)
def test_an_off_contract_result_names_activity_queue_and_encoding(
    payload: Payload, received: str
) -> None:
    with pytest.raises(InvalidActivityResultError) as raised:
        _decode(payload)
    error = raised.value.execution_error()
    assert error.type == contract.INVALID_ACTIVITY_RESULT == "InvalidActivityResult"
    assert error.step == contract.EXECUTE_GRAPHTON
    assert error.message.startswith("ExecuteGraphton on task queue 'gpu-pool' returned a result")
    assert received in error.message
    assert "json/protobuf 'polyfleet.v1.ExecuteGraphtonOutput'" in error.message


def test_a_long_reason_is_shortened() -> None:
    payload = Payload(
        metadata={"encoding": b"json/protobuf", "messageType": b"x" * 5000}, data=b"{}"
    )
    with pytest.raises(InvalidActivityResultError) as raised:
        _decode(payload)
    assert len(str(raised.value)) < 1500
    assert "..." in str(raised.value)
