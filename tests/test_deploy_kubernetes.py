"""deploy/kubernetes: `kubectl kustomize` renders it, the Kubernetes schemas accept it, the policy holds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from processes import skip_or_fail

# The schema version the output must satisfy (kubernetes-validate ships its schemas; no network).
KUBERNETES_VERSION = "1.32.0"
OVERLAYS = ["base", "overlays/example"]


def render(project: Path, target: str) -> list[dict[str, Any]]:
    """The manifests `kubectl kustomize` renders for `deploy/kubernetes/<target>`."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        skip_or_fail("kubectl is not installed (Debian: apt-get install kubernetes-client)")
    result = subprocess.run(
        [kubectl, "kustomize", str(project / "deploy" / "kubernetes" / target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def only(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one manifest of `kind`."""
    found = [doc for doc in manifests if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def example(project: Path) -> list[dict[str, Any]]:
    """The example overlay, rendered."""
    return render(project, "overlays/example")


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_rendered_manifest_validates_against_the_kubernetes_schemas(project: Path, target: str) -> None:
    manifests = render(project, target)
    assert manifests
    for doc in manifests:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_example_overlay_has_the_deployment_secret_budget_and_autoscaler(
    example: list[dict[str, Any]],
) -> None:
    kinds = sorted(doc["kind"] for doc in example)
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret"]
    assert only(example, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        "/inventory-worker:1.0.0"
    )


def test_pod_runs_non_root_read_only_without_capabilities_or_token(example: list[dict[str, Any]]) -> None:
    pod = only(example, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["livenessProbe"]["exec"]["command"] == ["python", "-m", "avtomatika_worker.health"]


def test_writable_paths_and_the_spool_are_volumes(example: list[dict[str, Any]]) -> None:
    pod = only(example, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    env = {item["name"]: item for item in container["env"]}
    assert "/tmp" in mounts  # the health file and scratch files
    assert env["WORKER_SPOOL_DIR"]["value"] in mounts
    assert env["WORKER_HEALTH_FILE"]["value"].startswith("/tmp/")
    volumes = {volume["name"] for volume in pod["volumes"]}
    assert {mount["name"] for mount in mounts.values()} <= volumes


def test_token_is_a_file_from_the_secret_not_an_env_value(example: list[dict[str, Any]]) -> None:
    pod = only(example, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert "WORKER_TOKEN" not in env
    token_file = Path(env["WORKER_TOKEN_FILE"]["value"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(token_file.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    secret = only(example, "Secret")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert [item["path"] for item in volume["secret"]["items"]] == [token_file.name]


def test_grace_period_exceeds_the_shutdown_timeout(example: list[dict[str, Any]]) -> None:
    pod = only(example, "Deployment")["spec"]["template"]["spec"]
    config = only(example, "ConfigMap")["data"]
    assert pod["terminationGracePeriodSeconds"] > float(config["WORKER_SHUTDOWN_TIMEOUT"])


def test_disruptions_and_updates_keep_idle_capacity(example: list[dict[str, Any]]) -> None:
    deployment = only(example, "Deployment")
    labels = deployment["spec"]["selector"]["matchLabels"]
    budget = only(example, "PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"] == labels
    assert budget["maxUnavailable"] == 1
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    autoscaler = only(example, "HorizontalPodAutoscaler")["spec"]
    assert autoscaler["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert autoscaler["minReplicas"] >= 2
