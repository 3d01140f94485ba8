"""The Kubernetes manifests (deploy/kubernetes/) are valid, and in step with docker-compose.yml.

- every document validates, strictly (no unknown field), against the schemas of KUBERNETES_VERSION
  (kubernetes-validate: the API's OpenAPI schemas, offline);
- the workloads run from the image are the compose file's services built from the Dockerfile
  (gateway, worker, beat, migrate), each with the same command and the same environment variable
  names, bar the commented ones in K8S_ONLY and COMPOSE_ONLY; every name is one the gateway reads;
- a pod is killed terminationGracePeriodSeconds after its stop began (the preStop sleep, then
  SIGTERM and the drain), so that must exceed the sleep plus GATEWAY_SHUTDOWN_DRAIN_SECONDS
  (tests/core/test_serve_drain.py: what the drain does); compose's stop_grace_period too;
- the probes ask routes that exist and answer without a key, as the kubelet asks them.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33"  # the oldest version the manifests are meant for (deploy/kubernetes/README.md)
IMAGE = "llm-gateway:latest"  # built from the Dockerfile
ROLES = {"gateway", "worker", "beat", "migrate"}
COMPONENT = "app.kubernetes.io/component"

# Environment variables only one side sets, on purpose. Each entry: the name, the roles it is
# given to, and why. A name set on one side only and not listed here fails the test, and so does
# an entry that no longer differs.
K8S_ONLY = {
    # JSON log lines for the cluster's log shipper; compose keeps the plain lines people read
    # with `docker compose logs`.
    "GATEWAY_LOG_FORMAT": ROLES,
    # The provider keys the example config.yaml of the llm-gateway-config ConfigMap names as
    # os.environ/NAME (from the llm-gateway-provider-keys Secret). docker-compose.yml mounts the
    # operator's own config.yaml instead, whose keys are theirs to provide.
    "OPENAI_API_KEY": {"gateway"},
    "GROQ_API_KEY": {"gateway"},
}
COMPOSE_ONLY: dict[str, set[str]] = {}


# --- reading the files ----------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def load_documents() -> list[tuple[str, dict]]:
    return [(path.name, document) for path in manifest_files()
            for document in yaml.safe_load_all(path.read_text()) if document is not None]


DOCUMENTS = load_documents()


def documents(kind: str) -> list[dict]:
    return [document for _, document in DOCUMENTS if document["kind"] == kind]


def named(kind: str, name: str) -> dict:
    found = [d for d in documents(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"the manifests have {len(found)} {kind} named {name!r}"
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def workloads() -> dict[str, dict]:
    """The Deployments and Jobs running the gateway's image, by their component label (their role)."""
    found = {}
    for workload in documents("Deployment") + documents("Job"):
        containers = pod_spec(workload)["containers"]
        if not any(c["image"] == IMAGE for c in containers):
            continue
        assert len(containers) == 1, f"{workload['metadata']['name']}: one container a pod"
        role = workload["spec"]["template"]["metadata"]["labels"][COMPONENT]
        assert role not in found, f"two workloads for {role}"
        found[role] = workload
    return found


def container(workload: dict) -> dict:
    return pod_spec(workload)["containers"][0]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # merge keys (<<) resolved


def compose_services() -> dict[str, dict]:
    """The compose services built from the Dockerfile (postgres and redis are the cluster's own)."""
    return {name: service for name, service in compose()["services"].items() if "build" in service}


def k8s_environment(workload: dict) -> dict[str, str]:
    """Name -> value (None for a Secret's) of every variable the workload's container gets."""
    spec = container(workload)
    names: dict[str, str | None] = {}
    for source in spec.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = named("ConfigMap", source["configMapRef"]["name"]).get("data", {})
        else:
            secret = named("Secret", source["secretRef"]["name"])
            data = dict.fromkeys({**secret.get("data", {}), **secret.get("stringData", {})})
        names.update({prefix + key: value for key, value in data.items()})
    for variable in spec.get("env", []):
        names[variable["name"]] = variable.get("value")
    return names


def compose_environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    return environment


def settings_source() -> str:
    return (ROOT / "gateway_project" / "settings.py").read_text()


def names_settings_read() -> set[str]:
    return set(re.findall(r'(?:env_\w+|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"', settings_source()))


def drain_default() -> float:
    match = re.search(r'^GATEWAY_SHUTDOWN_DRAIN_SECONDS = env_\w+\(\s*"GATEWAY_SHUTDOWN_DRAIN_SECONDS",'
                      r"\s*([\d.]+)\)", settings_source(), re.MULTILINE)
    assert match, "gateway_project/settings.py no longer reads GATEWAY_SHUTDOWN_DRAIN_SECONDS as expected"
    return float(match.group(1))


def gateway_config_text() -> str:
    return named("ConfigMap", "llm-gateway-config")["data"]["config.yaml"]


def config_references(text: str) -> set[str]:
    return set(re.findall(r"os\.environ/([A-Za-z_][A-Za-z0-9_]*)", text))


# --- the manifests are valid Kubernetes ------------------------------------------------------


def test_the_manifests_are_there():
    assert (MANIFESTS / "README.md").is_file()
    kinds = sorted({document["kind"] for _, document in DOCUMENTS})
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job", "PodDisruptionBudget",
                     "Secret", "Service"]
    keys = [(document["kind"], document["metadata"]["name"]) for _, document in DOCUMENTS]
    assert len(keys) == len(set(keys)), "two documents of the same kind and name"


@pytest.mark.parametrize(
    "document", [document for _, document in DOCUMENTS],
    ids=[f"{name}:{document['kind']}/{document['metadata']['name']}" for name, document in DOCUMENTS],
)
def test_each_manifest_is_valid_for_the_stated_kubernetes_version(document):
    # Raises kubernetes_validate.ValidationError (field path and message) on an invalid document.
    assert kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION


def test_the_validation_is_strict():
    """An unknown field (a typo) fails: the check above would catch a misspelt probe or limit."""
    document = copy.deepcopy(workloads()["gateway"])
    pod_spec(document)["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


# --- in step with docker-compose.yml --------------------------------------------------------


def test_the_same_roles_as_docker_compose():
    assert set(workloads()) == set(compose_services()) == ROLES
    assert workloads()["migrate"]["kind"] == "Job"


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_same_command_as_docker_compose(role):
    spec = container(workloads()[role])
    assert spec.get("command", []) + spec.get("args", []) == compose_services()[role]["command"]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_same_environment_names_as_docker_compose(role):
    k8s = set(k8s_environment(workloads()[role]))
    composed = set(compose_environment(compose_services()[role]))
    k8s_only = {name for name, roles in K8S_ONLY.items() if role in roles}
    compose_only = {name for name, roles in COMPOSE_ONLY.items() if role in roles}
    assert k8s - composed == k8s_only, "set on Kubernetes only (add it to compose, or to K8S_ONLY with why)"
    assert composed - k8s == compose_only, "set in compose only (add it to the manifests, or to COMPOSE_ONLY)"


def test_every_environment_name_is_read_by_the_gateway():
    """Each variable is a setting of gateway_project/settings.py, or a key config.yaml names."""
    known = names_settings_read() | config_references(gateway_config_text())
    for role, workload in workloads().items():
        assert set(k8s_environment(workload)) <= known, role
    for role, service in compose_services().items():
        assert set(compose_environment(service)) <= known, role
    for name in ("SECRET_KEY", "GATEWAY_ENCRYPTION_KEY", "GATEWAY_MASTER_KEY", "DATABASE_URL", "REDIS_URL",
                 "CELERY_BROKER_URL", "GATEWAY_SHUTDOWN_DRAIN_SECONDS", "GATEWAY_CONFIG", "ALLOWED_HOSTS"):
        assert name in known


def test_secrets_are_in_secrets_and_marked_for_replacing():
    secret_names = set()
    for secret in documents("Secret"):
        assert "data" not in secret, "stringData only: the placeholders must be readable"
        for name, value in secret["stringData"].items():
            assert value == "" or "replace" in value.lower(), f"{name}: not a placeholder"
            secret_names.add(name)
    assert {"SECRET_KEY", "GATEWAY_ENCRYPTION_KEY", "GATEWAY_MASTER_KEY", "DATABASE_URL", "REDIS_URL",
            "CELERY_BROKER_URL"} <= secret_names
    for config_map in documents("ConfigMap"):
        assert not secret_names & set(config_map["data"]), "a secret in a ConfigMap"


def test_the_gateway_loads_the_config_map_s_config_yaml(tmp_path, monkeypatch):
    from apps.providers.config import config_read

    gateway = workloads()["gateway"]
    environment = k8s_environment(gateway)
    path = environment["GATEWAY_CONFIG"]
    assert path == "/config/config.yaml"
    assert compose_environment(compose_services()["gateway"])["GATEWAY_CONFIG"] == path
    # The ConfigMap's config.yaml key, mounted at that path.
    volumes = {v["name"]: v for v in pod_spec(gateway)["volumes"]}
    (mount,) = [m for m in container(gateway)["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert volumes[mount["name"]]["configMap"]["name"] == "llm-gateway-config"
    assert path.removeprefix(mount["mountPath"] + "/") == "config.yaml"
    assert any(volume.endswith(":" + path + ":ro") for volume in compose_services()["gateway"]["volumes"])
    # Every variable it names reaches the gateway (an unset one stops `serve` at start), and it parses.
    text = gateway_config_text()
    assert config_references(text) <= set(environment)
    for name in config_references(text):
        monkeypatch.setenv(name, "sk-placeholder")
    (tmp_path / "config.yaml").write_text(text)
    assert {d.model_name for d in config_read(tmp_path / "config.yaml").deployments} == {
        "gpt-4o-mini", "llama-3.3-70b"}


# --- stopping: the drain, and the deadlines after it ---------------------------------------


def duration_seconds(value: str) -> float:
    """A compose duration: 40s, 1m30s, 1m, 500ms."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    assert parts and "".join(n + u for n, u in parts) == str(value), f"not a duration: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_termination_outlasts_the_drain():
    default = drain_default()
    assert default == 30
    gateway = workloads()["gateway"]
    service = compose_services()["gateway"]
    # The drain both set, if they set one: the same.
    k8s_drain = k8s_environment(gateway).get("GATEWAY_SHUTDOWN_DRAIN_SECONDS")
    compose_drain = compose_environment(service).get("GATEWAY_SHUTDOWN_DRAIN_SECONDS")
    assert k8s_drain == compose_drain
    drain = float(k8s_drain) if k8s_drain is not None else default

    grace = pod_spec(gateway)["terminationGracePeriodSeconds"]
    assert grace > default
    # The kubelet counts the grace from the preStop hook on: the sleep, then SIGTERM and the drain.
    pre_stop = container(gateway)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and 1 <= float(pre_stop[1]) <= 15
    assert grace >= float(pre_stop[1]) + drain + 5, "no margin for the shutdown after the drain"
    # compose: SIGTERM at once, SIGKILL stop_grace_period later.
    assert duration_seconds(service["stop_grace_period"]) >= drain + 5


def test_one_beat_and_a_scaled_gateway():
    beat = workloads()["beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    gateway = workloads()["gateway"]
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    (autoscaler,) = documents("HorizontalPodAutoscaler")
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": gateway["metadata"]["name"]}
    assert [m["resource"]["name"] for m in autoscaler["spec"]["metrics"]] == ["cpu"]
    assert container(gateway)["resources"]["requests"]["cpu"]  # what CPU utilization is measured against
    assert autoscaler["spec"]["minReplicas"] >= 2
    (budget,) = documents("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < autoscaler["spec"]["minReplicas"]  # a node can still be drained
    (service,) = documents("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in container(gateway)["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports or port["targetPort"] in ports.values()
    for role, workload in workloads().items():
        template_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"].get("selector", {}).get("matchLabels", {}).items() <= template_labels.items()
        assert {"requests", "limits"} <= set(container(workload)["resources"]), role


def test_the_image_s_user_directory_and_port():
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"useradd .*--uid (\d+) gateway", dockerfile).group(1))
    assert re.search(r"^USER gateway$", dockerfile, re.MULTILINE)
    # The commands run `manage.py` from the image's working directory, where it is copied.
    assert re.findall(r"^WORKDIR (\S+)$", dockerfile, re.MULTILINE)[-1] == "/app"
    assert re.search(r"^COPY .*manage\.py .*\./$", dockerfile, re.MULTILINE)
    for role, workload in workloads().items():
        assert pod_spec(workload)["securityContext"]["runAsUser"] == uid, role
        assert "workingDir" not in container(workload), role
    exposed = int(re.search(r"^EXPOSE (\d+)$", dockerfile, re.MULTILINE).group(1))
    command = container(workloads()["gateway"])["command"]
    assert int(command[command.index("--port") + 1]) == exposed
    assert [p["containerPort"] for p in container(workloads()["gateway"])["ports"]] == [exposed]


# --- the probes ------------------------------------------------------------------------------


def gateway_probes() -> dict[str, dict]:
    spec = container(workloads()["gateway"])
    return {kind: spec[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}


def test_the_probes_resolve_to_data_plane_routes(settings):
    from django.urls import resolve

    from apps.routing.urls import CONTROL_PLANE_PATHS, DATA_PLANE_PREFIXES

    probes = gateway_probes()
    assert probes["readinessProbe"]["path"] == "/health/readiness"
    assert probes["livenessProbe"]["path"] == "/health/liveliness"
    ports = {p["name"]: p["containerPort"] for p in container(workloads()["gateway"])["ports"]}
    for probe in probes.values():
        assert probe["port"] in ports or probe["port"] in ports.values()
        path = probe["path"]
        # gateway_project.asgi sends it down the data plane, which resolves it in its own URLconf.
        assert path.startswith(DATA_PLANE_PREFIXES) and path not in CONTROL_PLANE_PATHS
        assert resolve(path, urlconf=settings.DATA_PLANE_URLCONF).func


def test_the_probes_answer_without_a_key_as_the_kubelet_asks(gateway):
    for kind, probe in gateway_probes().items():
        # The kubelet sends no credentials, and the pod's address as Host (not in ALLOWED_HOSTS).
        response = httpx.get(gateway.url + probe["path"], headers={"Host": "10.1.2.3:4000"}, timeout=10)
        assert response.status_code == 200, (kind, response.status_code, response.text)
