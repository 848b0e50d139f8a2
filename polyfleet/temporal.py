"""Connecting to Temporal with the SDK's own environment configuration."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from temporalio.client import Client, Interceptor
from temporalio.envconfig import ClientConfig
from temporalio.runtime import (
    LoggingConfig,
    MetricBuffer,
    OpenTelemetryConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
)

from polyfleet.logs import temporal_core_logging
from polyfleet.telemetry import tracing
from polyfleet.telemetry.metrics import temporal_metrics


def runtime(
    *,
    logging: LoggingConfig | None = None,
    metrics: OpenTelemetryConfig | PrometheusConfig | MetricBuffer | None = None,
) -> Runtime:
    """A Temporal Runtime (the SDK's core: its threads, logs and metrics).

    Args:
        logging: Temporal core's logging, e.g. forwarded into Python logging
            (:func:`polyfleet.logs.temporal_core_logging`); None: the SDK's default, which
            writes coloured lines to the console.
        metrics: Where the SDK's own metrics go (a loopback Prometheus endpoint or a
            buffer); None: nowhere.

    """
    return Runtime(
        telemetry=TelemetryConfig(logging=logging or LoggingConfig.default, metrics=metrics)
    )


@functools.cache
def process_runtime() -> Runtime:
    """The process's one Runtime, built on first use (after logging is configured).

    Temporal core's log lines are forwarded into Python logging, so they come out in the
    process's log format (docs/observability.md, "Logs") and never with ANSI colours. When
    the process exports metrics (:func:`polyfleet.telemetry.metrics.setup_metrics`, before
    the first connect), the SDK's own metrics (worker slots, pollers, schedule-to-start
    latencies) are served beside polyfleet's: aggregated by the runtime and read at each
    collection, or recorded into a buffer polyfleet drains
    (:func:`polyfleet.telemetry.metrics.temporal_metrics`).
    """
    return runtime(logging=temporal_core_logging(), metrics=temporal_metrics())


async def connect(
    target_host: str | None = None,
    namespace: str | None = None,
    *,
    interceptors: Sequence[Interceptor] | None = None,
) -> Client:
    """Connect a Temporal client.

    Connection settings come from the Temporal SDK's environment configuration
    (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`,
    or a `TEMPORAL_CONFIG_FILE` profile), so polyfleet runs unchanged against the dev
    server, a self-hosted cluster or Temporal Cloud.

    Args:
        target_host: Overrides the configured address (used by tests).
        namespace: Overrides the configured namespace.
        interceptors: The client's interceptors, which its workers use too; None:
            tracing's (:func:`polyfleet.telemetry.tracing.temporal_interceptors`).

    Returns:
        A connected client whose data converter handles protobuf messages as
        `json/protobuf` payloads.

    """
    config = ClientConfig.load_client_connect_config()
    if target_host:
        config["target_host"] = target_host
    if namespace:
        config["namespace"] = namespace
    config.setdefault("target_host", "127.0.0.1:7233")
    if interceptors is None:
        interceptors = tracing.temporal_interceptors()
    return await Client.connect(
        **config, runtime=process_runtime(), interceptors=list(interceptors)
    )


def traced(client: Client) -> Client:
    """``client`` with temporalio's tracing interceptor while tracing is on, else ``client``.

    A client passed in (tests share one) gets it as a new client on the same connection;
    one that has it already is returned as it is. Workers of the client trace workflows
    and activities (docs/observability.md, "Traces").
    """
    extra = tracing.temporal_interceptors()
    config = client.config()
    present = config["interceptors"]
    if not extra or any(type(i) is type(extra[0]) for i in present):
        return client
    config["interceptors"] = [*present, *extra]
    return Client(**config)
