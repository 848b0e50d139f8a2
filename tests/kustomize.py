"""Rendering deploy/kubernetes with `kubectl kustomize`, and reading what the manifests say.

kubectl is installed by the Makefile (`make kubectl`, part of `make setup`). A test that needs
it fails when it is missing, unless that target recorded why it could not be installed here
(``.tools/kubectl.unavailable``): only then does it skip, with that reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import system_tool

REPO = Path(__file__).resolve().parents[1]
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ("dev", "staging", "prod")

Object = dict[str, Any]


def kubectl() -> str:
    """The kubectl executable; fails the test (or skips it, see the module) when missing."""
    return system_tool("kubectl", "kubectl")


def render(directory: Path) -> list[Object]:
    """The objects ``kubectl kustomize directory`` renders; fails the test on an error."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def overlay(name: str) -> list[Object]:
    """The rendered objects of overlay ``name``."""
    return render(KUBERNETES / "overlays" / name)


def find(objects: list[Object], kind: str, name: str | None = None) -> list[Object]:
    """The objects of ``kind`` (and ``name``, when given)."""
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[Object], kind: str, name: str) -> Object:
    """The one object of ``kind`` named ``name``."""
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def containers(workload: Object) -> list[Object]:
    """The containers of a Deployment's or StatefulSet's pod template."""
    return list(workload["spec"]["template"]["spec"]["containers"])


def container_env(objects: list[Object], container: Object) -> dict[str, str | None]:
    """The environment Kubernetes gives ``container``: its ConfigMaps, then its ``env``.

    Later sources win, as in Kubernetes. A value from a Secret is None (the manifests hold
    references, never values); an ``envFrom`` Secret adds nothing here.
    """
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = one(objects, "ConfigMap", source["configMapRef"]["name"])
            env.update({k: str(v) for k, v in config.get("data", {}).items()})
    for variable in container.get("env", []):
        env[variable["name"]] = variable.get("value")
    return env


def settings(objects: list[Object], name: str = "polyfleet-settings") -> dict[str, str]:
    """The data of the generated ConfigMap ``name`` (its rendered name has a hash suffix)."""
    found = [
        o for o in find(objects, "ConfigMap") if o["metadata"]["name"].rsplit("-", 1)[0] == name
    ]
    assert len(found) == 1, f"expected one ConfigMap generated as {name}, found {len(found)}"
    return {k: str(v) for k, v in found[0].get("data", {}).items()}
