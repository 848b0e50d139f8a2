"""Every served API call is counted and timed by method and status code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from orchestrator.telemetry import MetricsInterceptor
from polyfleet.config import MetricsSettings
from polyfleet.telemetry import metrics
from polyfleet.telemetry.metrics import API_REQUEST_DURATION, API_REQUESTS
from tests.helpers import free_port

METHOD = "/polyfleet.v1.AgentExecutionService/GetAgentExecution"


class FakeContext:
    def __init__(self, code: grpc.StatusCode | None) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode | None:
        return self._code


@pytest.fixture
def export() -> Iterator[metrics.MetricsExport]:
    started = metrics.setup_metrics(
        MetricsSettings(port=free_port(), address="127.0.0.1"), "polyfleet-test", 0
    )
    try:
        yield started
    finally:
        started.close()


def recorded(code: str) -> tuple[float, int, float]:
    """The request count, and the duration's count and sum, of METHOD with ``code``."""
    key = frozenset({"method": METHOD, "code": code}.items())
    requests = metrics._instrument(API_REQUESTS)._values[key][0]
    durations = metrics._instrument(API_REQUEST_DURATION).collect(0)
    (point,) = [p for p in durations.data.data_points if frozenset(p.attributes.items()) == key]
    return requests, point.count, point.sum


async def _serve(context: FakeContext, error: BaseException | None = None) -> Any:
    async def servicer(request: Any, context: Any) -> str:
        await asyncio.sleep(0.01)
        if error is not None:
            raise error
        return "done"

    handler: Any = grpc.unary_unary_rpc_method_handler(servicer)
    wrapped: Any = MetricsInterceptor().wrap(handler, METHOD)
    return await wrapped.unary_unary(None, context)


@pytest.mark.parametrize(
    ("code", "error", "shown"),
    [
        (grpc.StatusCode.OK, None, "OK"),
        (grpc.StatusCode.NOT_FOUND, None, "NOT_FOUND"),
        (None, ValueError("boom"), "UNKNOWN"),
        (None, asyncio.CancelledError(), "CANCELLED"),
    ],
)
async def test_each_call_is_counted_and_timed_with_its_code(
    export: metrics.MetricsExport,
    code: grpc.StatusCode | None,
    error: BaseException | None,
    shown: str,
) -> None:
    if error is None:
        assert await _serve(FakeContext(code)) == "done"
    else:
        with pytest.raises(type(error)):
            await _serve(FakeContext(code), error)
    requests, count, seconds = recorded(shown)
    assert (requests, count) == (1, 1)
    assert seconds >= 0.01  # the servicer's own sleep
