"""The Kubernetes manifests, checked client-side: both overlays render with ``kubectl kustomize``
and every object validates against the published Kubernetes JSON schemas (the
``kubernetes-validate`` package, strict: no unknown field passes); each service is a Deployment
with probes, resources and its ServiceAccount; the autoscaler may only scale the worker-pool."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hms_contracts import topology
from hms_devtools import natsconf
from hms_kit.settings import env_prefix
from hms_stack.natsserver import nats_server_binary

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
#: the oldest Kubernetes the manifests promise to fit
KUBERNETES_VERSION = "1.29.0"


def find_kubectl() -> tuple[str | None, str]:
    """kubectl with a kustomize of version 4 or later (``labels``, ``replicas``, inline
    ``patches``), or None and why not."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None, "kubectl is not installed (apt-get install kubernetes-client)"
    out = subprocess.run(
        [kubectl, "version", "--client"], capture_output=True, text=True, timeout=30, check=False
    )
    found = re.search(r"Kustomize Version: v(\d+)", out.stdout)
    if found is None or int(found.group(1)) < 4:
        return None, f"kubectl's kustomize is older than v4: {out.stdout.strip()[:200]!r}"
    return kubectl, ""


KUBECTL, WHY_NOT = find_kubectl()
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason=WHY_NOT)


def render(overlay: str, tmp_path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` on a copy with the example secrets in place of the real ones."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("*.env"))
    for example in (tree / "overlays" / overlay).glob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module", params=["staging", "prod"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    if KUBECTL is None:
        pytest.skip(WHY_NOT)
    overlay: str = request.param
    return overlay, render(overlay, tmp_path_factory.mktemp(overlay))


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_object_validates_against_the_kubernetes_schemas(rendered: Any) -> None:
    _, docs = rendered
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_a_broken_manifest_is_caught_by_the_schemas() -> None:
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "five", "selector": {}, "template": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_each_service_is_a_deployment_with_probes_resources_and_its_account(
    rendered: Any,
) -> None:
    overlay, docs = rendered
    deployments = by_kind(docs, "Deployment")
    accounts = by_kind(docs, "ServiceAccount")
    namespace = {"staging": "hms-ops-staging", "prod": "hms-ops"}[overlay]
    for svc in topology.SERVICES:
        dep = deployments[svc.name]
        assert dep["metadata"]["namespace"] == namespace
        pod = dep["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == svc.name
        assert svc.name in accounts
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]
        assert container["image"].startswith("registry.example.gov/hms-ops/")
        env = {e["name"]: e for e in container["env"]}
        prefix = env_prefix(svc.name)
        assert env[prefix + "NATS_USER"]["value"] == f"hms-{svc.name}"
        secret = env[prefix + "NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert secret["name"].startswith("hms-nats-credentials")
        assert secret["key"] == natsconf.password_variable(f"hms-{svc.name}")
        assert env[prefix + "STREAM_REPLICAS"]["value"] == "3"
        if overlay == "prod":
            assert env[prefix + "NATS_TLS_CA"]["value"].endswith("ca.crt")
    replicas = deployments["worker-pool"]["spec"]["replicas"]
    assert replicas == {"staging": 1, "prod": 5}[overlay]


def test_the_autoscaler_may_only_scale_the_worker_pool(rendered: Any) -> None:
    _, docs = rendered
    roles = by_kind(docs, "Role")
    assert not by_kind(docs, "ClusterRole")
    (role,) = roles.values()
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": ["worker-pool"],
            "verbs": ["get", "update", "patch"],
        }
    ]
    (binding,) = by_kind(docs, "RoleBinding").values()
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert [s["name"] for s in binding["subjects"]] == ["autoscaler"]
    # only the autoscaler's pods carry a token to the API
    for name, dep in by_kind(docs, "Deployment").items():
        mounted = dep["spec"]["template"]["spec"]["automountServiceAccountToken"]
        assert mounted is (name == "autoscaler")


def test_secrets_hold_the_nats_credentials_and_smtp(rendered: Any) -> None:
    _, docs = rendered
    secrets = {name.rsplit("-", 1)[0]: doc for name, doc in by_kind(docs, "Secret").items()}
    users = [natsconf.ADMIN_USER, *(natsconf.service_user(s.name) for s in topology.SERVICES)]
    assert set(secrets["hms-nats-credentials"]["data"]) == {
        natsconf.password_variable(u) for u in users
    }
    smtp = set(secrets["hms-smtp"]["data"])
    assert {"HMS_INCIDENT_ENGINE_SMTP_HOST", "HMS_INCIDENT_ENGINE_SMTP_PASSWORD"} <= smtp
    engine = by_kind(docs, "Deployment")["incident-engine"]["spec"]["template"]["spec"]
    (source,) = engine["containers"][0]["envFrom"]
    assert source["secretRef"]["name"].startswith("hms-smtp")


def test_nats_is_a_three_node_jetstream_cluster_on_files(rendered: Any) -> None:
    overlay, docs = rendered
    nats = by_kind(docs, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3
    (claim,) = nats["spec"]["volumeClaimTemplates"]
    assert (
        claim["spec"]["resources"]["requests"]["storage"]
        == {"staging": "5Gi", "prod": "100Gi"}[overlay]
    )
    (config,) = by_kind(docs, "ConfigMap").values()
    assert '"sync_interval": "always"' in config["data"]["nats.conf"]
    assert config["data"]["auth.conf"] == (ROOT / "infra" / "nats" / "auth.conf").read_text()
    assert ("tls {" in config["data"]["tls.conf"]) is (overlay == "prod")
    provision = by_kind(docs, "Job")["provision"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "HMS_STREAM_REPLICAS", "value": "3"} in provision["env"]


def test_the_kubernetes_nats_config_is_valid_for_nats_server(tmp_path: Path) -> None:
    for name in ("nats.conf", "auth.conf", "tls.conf"):
        shutil.copy(K8S / "base" / "nats" / name, tmp_path / name)
    users = [natsconf.ADMIN_USER, *(natsconf.service_user(s.name) for s in topology.SERVICES)]
    env = {natsconf.password_variable(u): natsconf.new_password() for u in users}
    out = subprocess.run(
        [str(nats_server_binary()), "-c", str(tmp_path / "nats.conf"), "-t"],
        env={"PATH": os.environ.get("PATH", ""), "POD_NAME": "nats-0", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr + out.stdout


def test_the_helm_values_ask_for_three_replicas_on_file_storage() -> None:
    values = yaml.safe_load((K8S / "nats-helm-values.yaml").read_text())
    assert values["config"]["cluster"] == {"enabled": True, "replicas": 3}
    assert values["config"]["jetstream"]["fileStore"]["enabled"] is True
    assert values["config"]["jetstream"]["merge"]["sync_interval"] == "always"


@needs_kubectl
def test_an_overlay_without_its_secrets_does_not_render(tmp_path: Path) -> None:
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("*.env"))
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(tree / "overlays" / "prod")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "nats-credentials.env" in out.stderr
