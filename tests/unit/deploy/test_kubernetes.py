"""deploy/kubernetes: every overlay builds, validates, and agrees with its own settings.

The Kubernetes objects are validated offline against the Kubernetes JSON schemas
(kubernetes-validate); KEDA's objects, which those schemas do not hold, against the fields
KEDA documents for its ``temporal`` scaler (keda.sh, "Temporal" scaler, v2.17+).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import kubernetes_validate
import pytest

from polyfleet.config import RunnerSettings, unknown_variables
from polyfleet.durations import parse_duration
from tests.kustomize import (
    KUBERNETES,
    OVERLAYS,
    Object,
    container_env,
    containers,
    find,
    one,
    overlay,
    render,
    settings,
)

# The Kubernetes version the manifests are checked against: the oldest we support.
KUBERNETES_VERSION = "1.30.0"
KEDA_GROUP = "keda.sh/v1alpha1"
# The `temporal` trigger's metadata (keda.sh/docs/2.17/scalers/temporal): required, then optional.
TEMPORAL_REQUIRED = {"endpoint", "taskQueue"}
TEMPORAL_OPTIONAL = {
    "endpointFromEnv",
    "namespace",
    "activationTargetQueueSize",
    "targetQueueSize",
    "queueTypes",
    "buildId",
    "selectAllActive",
    "selectUnversioned",
    "apiKeyFromEnv",
    "minConnectTimeout",
    "unsafeSsl",
    "tlsServerName",
    "enableTLS",  # v2.22: TLS with API-key authentication
    "workerDeploymentName",
    "workerDeploymentBuildId",
}
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
# The parameters KEDA's temporal scaler takes from a TriggerAuthentication.
TEMPORAL_AUTH_PARAMETERS = {"apiKey", "ca", "cert", "key", "keyPassword"}
RUNNER_COMMAND = ["python", "-m", "runner"]
QUEUE_VARIABLES = {
    "POLYFLEET_RUNNER_AGENTS": "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE",
    "POLYFLEET_RUNNER_WORKFLOWS": "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE",
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Object]]:
    return {name: overlay(name) for name in OVERLAYS}


def hpa_variant(tmp_path: Path, name: str) -> list[Object]:
    """Overlay ``name`` with the HPA fallback component, as a cluster without KEDA uses it."""
    # Kustomize takes only relative paths.
    base = os.path.relpath(KUBERNETES, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{base}/overlays/{name}]\n"
        f"components: [{base}/components/hpa-fallback]\n"
    )
    return render(tmp_path)


def runner_deployments(objects: list[Object]) -> list[Object]:
    return [d for d in find(objects, "Deployment") if containers(d)[0]["command"] == RUNNER_COMMAND]


def polled_queues(env: dict[str, str | None]) -> set[str]:
    """The queues a runner with ``env`` polls (runner/app.py: both kinds unless disabled)."""
    queues = set()
    for switch, variable in QUEUE_VARIABLES.items():
        if (env.get(switch) or "true").lower() != "false":
            value = env.get(variable)
            assert value, f"runner settings lack {variable}"
            queues.add(value)
    return queues


def check_scaled_object(scaled: Object) -> list[str]:
    """Problems of a ScaledObject against KEDA's documented fields; [] when none."""
    problems = []
    name = scaled["metadata"]["name"]
    spec = scaled["spec"]
    problems += [f"{name}: unknown spec field {f}" for f in set(spec) - SCALED_OBJECT_SPEC]
    if not spec.get("scaleTargetRef", {}).get("name"):
        problems.append(f"{name}: spec.scaleTargetRef.name is required")
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high):
        problems.append(f"{name}: replica counts {low}..{high}")
    triggers = spec.get("triggers") or []
    if not triggers:
        problems.append(f"{name}: no triggers")
    for index, trigger in enumerate(triggers):
        where = f"{name}: spec.triggers[{index}]"
        problems += [f"{where}: unknown field {f}" for f in set(trigger) - TRIGGER_FIELDS]
        if trigger.get("type") != "temporal":
            problems.append(f"{where}.type is {trigger.get('type')!r}, not 'temporal'")
        metadata = trigger.get("metadata", {})
        problems += [f"{where}.metadata lacks {k}" for k in TEMPORAL_REQUIRED - set(metadata)]
        unknown = set(metadata) - TEMPORAL_REQUIRED - TEMPORAL_OPTIONAL
        problems += [f"{where}.metadata has unknown {k}" for k in unknown]
        problems += [
            f"{where}.metadata.{k} is not a string"
            for k, v in metadata.items()
            if not isinstance(v, str)
        ]
        if metadata.get("queueTypes") != "activity":
            problems.append(f"{where}.metadata.queueTypes must be 'activity' (runners' queues)")
        for size in ("targetQueueSize", "activationTargetQueueSize"):
            if size in metadata and not str(metadata[size]).isdigit():
                problems.append(f"{where}.metadata.{size} is not a whole number")
    return problems


@pytest.mark.parametrize("name", ["base", *OVERLAYS])
def test_builds_and_validates_against_the_kubernetes_schemas(name: str) -> None:
    directory = KUBERNETES / "base" if name == "base" else KUBERNETES / "overlays" / name
    objects = render(directory)
    kinds = {o["kind"] for o in objects}
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap", "ScaledObject"} <= kinds
    for obj in objects:
        if obj["apiVersion"] == KEDA_GROUP:
            continue  # CRDs: checked against KEDA's fields below
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {obj['kind']} {obj['metadata']['name']}: {exc.message}")


@pytest.mark.parametrize("name", OVERLAYS)
def test_keda_objects_have_the_documented_temporal_trigger_fields(
    rendered: dict[str, list[Object]], name: str
) -> None:
    objects = rendered[name]
    keda = [o for o in objects if o["apiVersion"] == KEDA_GROUP]
    assert {o["kind"] for o in keda} <= {"ScaledObject", "TriggerAuthentication"}
    problems = [p for s in find(objects, "ScaledObject") for p in check_scaled_object(s)]
    assert problems == []
    authentications = {a["metadata"]["name"]: a for a in find(objects, "TriggerAuthentication")}
    for auth in authentications.values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["parameter"] in TEMPORAL_AUTH_PARAMETERS
            assert ref["name"] and ref["key"]
    for scaled in find(objects, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            if "authenticationRef" in trigger:
                assert trigger["authenticationRef"]["name"] in authentications


def test_the_keda_check_catches_what_keda_would_refuse() -> None:
    bad = {
        "metadata": {"name": "x"},
        "spec": {
            "scaleTargetRef": {"name": "x"},
            "triggers": [{"type": "temporal", "metadata": {"taskQueue": "q", "queueType": "x"}}],
        },
    }
    problems = check_scaled_object(bad)
    assert any("lacks endpoint" in p for p in problems)
    assert any("unknown queueType" in p for p in problems)
    assert any("queueTypes must be 'activity'" in p for p in problems)


@pytest.mark.parametrize("name", OVERLAYS)
def test_scaled_objects_scale_each_runner_pool_on_the_queues_it_polls(
    rendered: dict[str, list[Object]], name: str
) -> None:
    objects = rendered[name]
    pools = runner_deployments(objects)
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in find(objects, "ScaledObject")}
    assert sorted(scaled) == sorted(d["metadata"]["name"] for d in pools), "one per pool"
    for pool in pools:
        env = container_env(objects, containers(pool)[0])
        triggers = scaled[pool["metadata"]["name"]]["spec"]["triggers"]
        assert {t["metadata"]["taskQueue"] for t in triggers} == polled_queues(env)
        for trigger in triggers:
            assert trigger["metadata"]["endpoint"] == env["TEMPORAL_ADDRESS"]
            assert trigger["metadata"]["namespace"] == env["TEMPORAL_NAMESPACE"]


def test_each_environment_has_its_own_queues(rendered: dict[str, list[Object]]) -> None:
    queues = {}
    for name in OVERLAYS:
        data = settings(rendered[name])
        queues[name] = {v for k, v in data.items() if k.endswith("_TASK_QUEUE")}
        assert len(queues[name]) == 4
    assert not queues["dev"] & queues["staging"]
    assert not queues["staging"] & queues["prod"]
    assert not queues["dev"] & queues["prod"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_runners_get_longer_to_stop_than_their_shutdown_grace(
    rendered: dict[str, list[Object]], name: str
) -> None:
    objects = rendered[name]
    for pool in runner_deployments(objects):
        env = container_env(objects, containers(pool)[0])
        raw = env.get("POLYFLEET_RUNNER_SHUTDOWN_GRACE")
        grace = parse_duration(raw) if raw else RunnerSettings().shutdown_grace
        period = timedelta(
            seconds=pool["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        )
        # A margin for the process to stop after the grace has run out.
        assert period >= grace + timedelta(seconds=30), (pool["metadata"]["name"], period, grace)


@pytest.mark.parametrize("name", OVERLAYS)
def test_secrets_are_references_and_containers_are_locked_down(
    rendered: dict[str, list[Object]], name: str
) -> None:
    objects = rendered[name]
    assert find(objects, "Secret") == [], "the manifests reference Secrets, never hold them"
    workloads = [*find(objects, "Deployment"), *find(objects, "StatefulSet")]
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in containers(workload):
            assert container["image"].startswith("ghcr.io/polyfleet/polyfleet:")
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            for variable in container.get("env", []):
                if variable["name"].endswith(("_TOKEN", "_API_KEY", "_PASSWORD")):
                    assert "valueFrom" in variable, variable["name"]
    data = settings(objects)
    assert not [k for k in data if k.endswith(("_TOKEN", "_API_KEY", "_KEY"))]


def test_the_overlays_differ_where_environments_do(rendered: dict[str, list[Object]]) -> None:
    tags = {
        name: containers(one(rendered[name], "StatefulSet", "polyfleet-orchestrator"))[0]["image"]
        for name in OVERLAYS
    }
    assert tags["dev"].endswith(":dev")
    dev_runners = one(rendered["dev"], "ScaledObject", "polyfleet-runner")["spec"]
    assert dev_runners["minReplicaCount"] == 0, "dev scales to zero"
    prod = rendered["prod"]
    prod_env = container_env(prod, containers(one(prod, "Deployment", "polyfleet-runner"))[0])
    assert prod_env["TEMPORAL_ADDRESS"].endswith(".tmprl.cloud:7233")  # type: ignore[union-attr]
    for workload in [*runner_deployments(prod), one(prod, "StatefulSet", "polyfleet-orchestrator")]:
        env = {v["name"]: v for v in containers(workload)[0]["env"]}
        assert env["TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "polyfleet-temporal"
    for scaled in find(prod, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["authenticationRef"]["name"] == "polyfleet-temporal"
    assert "polyfleet-gpu-runner" not in {
        d["metadata"]["name"] for d in find(rendered["dev"], "Deployment")
    }
    gpu = one(prod, "Deployment", "polyfleet-gpu-runner")["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["tolerations"] and gpu["nodeSelector"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_hpa_fallback_replaces_keda(tmp_path: Path, name: str) -> None:
    objects = hpa_variant(tmp_path, name)
    assert [o for o in objects if o["apiVersion"] == KEDA_GROUP] == []
    hpa = one(objects, "HorizontalPodAutoscaler", "polyfleet-runner")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "polyfleet-runner"
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_polyfleet_variable_is_a_setting(
    rendered: dict[str, list[Object]], name: str
) -> None:
    objects = rendered[name]
    workloads = [*find(objects, "Deployment"), *find(objects, "StatefulSet")]
    for workload in workloads:
        env = container_env(objects, containers(workload)[0])
        assert unknown_variables(dict.fromkeys(env, "")) == {}, workload["metadata"]["name"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_orchestrator_serves_grpc_and_http_through_its_services(
    rendered: dict[str, list[Object]], name: str
) -> None:
    objects = rendered[name]
    orchestrator = containers(one(objects, "StatefulSet", "polyfleet-orchestrator"))[0]
    env = container_env(objects, orchestrator)
    ports = {p["name"]: p["containerPort"] for p in orchestrator["ports"]}
    # Each API listens on all interfaces at the port its container declares.
    for port_name, variable in (
        ("grpc", "POLYFLEET_API_ADDRESS"),
        ("http", "POLYFLEET_HTTP_ADDRESS"),
    ):
        address = env[variable]
        assert address is not None, variable
        host, port = address.rsplit(":", 1)
        assert (host, int(port)) == ("0.0.0.0", ports[port_name]), variable
    # The HTTP API is on unless a setting turns it off, and then it would not be served.
    assert (env.get("POLYFLEET_HTTP_ENABLED") or "true").lower() == "true"
    for service_name in ("polyfleet-orchestrator", "polyfleet-orchestrator-headless"):
        service = one(objects, "Service", service_name)
        for port in service["spec"]["ports"]:
            assert port["targetPort"] == port["name"], service_name
            assert port["port"] == ports[port["name"]], service_name
    service = one(objects, "Service", "polyfleet-orchestrator")
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(by_name) == {"grpc", "http"}
    # Served with the API's certificate.
    assert by_name["http"]["appProtocol"] == "https"
